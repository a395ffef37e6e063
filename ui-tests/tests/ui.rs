//! The macros' contract, pinned: every feature compiles (`ui/pass`), and every misuse fails
//! with the one spanned error checked in beside it (`ui/<topic>/*.stderr`). Regenerate the
//! expected output with `TRYBUILD=overwrite cargo test -p ui-tests`, then read it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    for topic in ["item", "field", "weight", "strategy", "send_sync"] {
        t.compile_fail(format!("tests/ui/{topic}/*.rs"));
    }
}
