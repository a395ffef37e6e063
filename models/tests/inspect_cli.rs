//! `lazyforge inspect` as a user runs it: on the real model, as JSON, and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn smollm2() -> PathBuf {
    let p = std::env::var_os("LAZYFORGE_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| lazyforge::source::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        p.is_file(),
        "test model missing at {}: run `bash tools/fetch_test_model.sh` (or set LAZYFORGE_TEST_MODEL)",
        p.display()
    );
    p
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lazyforge"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("the lazyforge binary runs")
}

#[test]
fn inspect_lists_the_272_tensors_of_smollm2() {
    let model = smollm2();
    let out = inspect(&[model.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tensors (272):"), "{text}");
    assert!(text.contains("general.architecture = \"llama\""), "{text}");
    assert!(
        text.contains("tokenizer.ggml.tokens = [string; 49152]"),
        "{text}"
    );
    assert!(text.contains("blk.29.ffn_down.weight"), "{text}");
    assert!(text.contains("Q4_1"), "{text}");
}

#[test]
fn inspect_json_is_one_document_with_summarized_arrays() {
    let model = smollm2();
    let out = inspect(&["--json", model.to_str().unwrap()]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tensor_count"], 272);
    assert_eq!(doc["tensors"].as_array().unwrap().len(), 272);
    assert_eq!(doc["metadata"]["llama.block_count"], 30);
    let tokens = &doc["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["array"], "string");
    assert_eq!(tokens["len"], 49152);
    let total: u64 = doc["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["tensors"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 272);

    let full = inspect(&["--json", "--full", model.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(
        doc["metadata"]["tokenizer.ggml.tokens"]
            .as_array()
            .unwrap()
            .len(),
        49152
    );
}

#[test]
fn a_bad_file_is_a_one_line_error_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let missing = dir.path().join("missing.gguf");
    for path in [&bad, &missing] {
        let out = inspect(&[path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("lazyforge: error:") && err.contains(path.to_str().unwrap()),
            "{err}"
        );
    }
}
