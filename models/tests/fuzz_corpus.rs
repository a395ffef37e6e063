//! Replays the committed fuzz corpora (`fuzz/corpus/{tokenizer,chat_template}/`) and the
//! seeds they grew from through the code the fuzz targets run (`lazyforge_models::fuzzing`), so
//! every input the fuzzer kept stays an error-not-a-crash on stable, in CI, without
//! cargo-fuzz. `cargo test -p lazyforge-models --test fuzz_corpus -- --ignored` rewrites the seeds.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(!inputs.is_empty(), "no corpus for {target}");
    for (path, bytes) in &inputs {
        let r = std::panic::catch_unwind(|| run(bytes));
        assert!(r.is_ok(), "{target}: {} panicked", path.display());
    }
    for seed in lazyforge_models::fuzzing::seeds(target) {
        run(&seed);
    }
}

#[test]
fn tokenizer_corpus_replays_without_a_crash() {
    replay("tokenizer", lazyforge_models::fuzzing::tokenizer);
}

#[test]
fn chat_template_corpus_replays_without_a_crash() {
    replay("chat_template", lazyforge_models::fuzzing::chat_template);
}

#[test]
#[ignore = "writes the seeds into fuzz/corpus; run by hand before fuzzing"]
fn write_seeds() {
    for target in ["tokenizer", "chat_template"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in lazyforge_models::fuzzing::seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
