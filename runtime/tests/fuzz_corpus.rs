//! Replays the committed fuzz corpora (`fuzz/corpus/{gguf,safetensors,dequant}/`) and the
//! seeds they grew from through the code the fuzz targets run (`lazyforge::fuzzing`), so
//! every input the fuzzer kept stays an error-not-a-crash on stable, in CI, without
//! cargo-fuzz. `cargo test -p lazyforge --test fuzz_corpus -- --ignored` rewrites the seeds.

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
    for seed in lazyforge::fuzzing::seeds(target).unwrap() {
        run(&seed);
    }
}

#[test]
fn gguf_corpus_replays_without_a_crash() {
    replay("gguf", lazyforge::fuzzing::gguf);
}

#[test]
fn safetensors_corpus_replays_without_a_crash() {
    replay("safetensors", lazyforge::fuzzing::safetensors);
}

#[test]
fn dequant_corpus_replays_without_a_crash() {
    replay("dequant", lazyforge::fuzzing::dequant);
}

#[test]
#[ignore = "writes the seeds into fuzz/corpus; run by hand before fuzzing"]
fn write_seeds() {
    for target in ["gguf", "safetensors", "dequant"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in lazyforge::fuzzing::seeds(target)
            .unwrap()
            .iter()
            .enumerate()
        {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
