//! `lazyforge run` (the same runner as `cargo run --example llama`) as a user runs it.

mod common;

use std::process::{Command, Output};

fn lazyforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lazyforge"))
        .args(args)
        .output()
        .expect("the lazyforge binary runs")
}

#[test]
fn run_prints_the_reference_greedy_continuation() {
    let model = common::smollm2_path();
    let refs = common::smollm2_refs();
    let case = refs["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["prompt"] == "The capital of France is")
        .expect("the fixture has the France prompt");
    let out = lazyforge(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "16",
        "--temperature",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let want = case["text"].as_str().unwrap();
    assert_eq!(
        text.trim_end_matches('\n'),
        want.trim_end_matches('\n'),
        "{text:?}"
    );
}

#[test]
fn run_json_reports_ids_text_and_statistics() {
    let model = common::smollm2_path();
    let dir = tempfile::tempdir().unwrap();
    let logits = dir.path().join("logits.npy");
    let out = lazyforge(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        "504,3575,282,4649,314",
        "--max-tokens",
        "3",
        "--json",
        "--dump-logits",
        logits.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["prompt_ids"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    assert_eq!(doc["generated_ids"], serde_json::json!([7042, 30, 198]));
    assert!(doc["stats"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(doc["stats"]["bytes_materialized"].as_u64().unwrap() > 0);
    let dumped = lazyforge_models::npy::read_f32(&logits).unwrap();
    assert_eq!(dumped.shape, vec![49152]);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let model = common::smollm2_path();
    let m = model.to_str().unwrap();
    for args in [
        vec!["run", "--model", m, "--device", "tpu:0", "--prompt", "x"],
        vec!["run", "--model", m, "--device", "cuda:0", "--prompt", "x"],
        vec!["run", "--model", "/nonexistent/model.gguf", "--prompt", "x"],
        vec![
            "run",
            "--model",
            m,
            "--prompt-ids",
            "1,999999",
            "--max-tokens",
            "1",
        ],
        vec!["run", "--model", m, "--temperature=-1", "--prompt", "x"],
    ] {
        let out = lazyforge(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lazyforge: error:"), "{err}");
    }
}

/// `run --json` with the given extra arguments: the parsed document.
fn run_json(extra: &[&str]) -> serde_json::Value {
    let model = common::smollm2_path();
    let mut args = vec![
        "run",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = lazyforge(&args);
    assert!(
        out.status.success(),
        "{:?}: {}",
        extra,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

#[test]
fn a_budget_evicts_and_gives_the_same_ids_in_every_load_mode() {
    let want = run_json(&["--load", "lazy"]);
    assert_eq!(want["stats"]["evictions"], 0);
    assert_eq!(want["stats"]["budget_bytes"], serde_json::Value::Null);
    for extra in [
        &["--budget", "40%"][..],
        &["--budget", "40%", "--load", "lazy"],
        &["--load", "eager"],
        &["--load", "prefetch", "--cold"],
    ] {
        let got = run_json(extra);
        assert_eq!(got["generated_ids"], want["generated_ids"], "{extra:?}");
        let stats = &got["stats"];
        if extra.contains(&"--budget") {
            let budget = stats["budget_bytes"].as_u64().unwrap();
            let model = stats["model_bytes"].as_u64().unwrap();
            assert_eq!(budget, model * 2 / 5, "{stats}");
            assert!(stats["evictions"].as_u64().unwrap() > 0, "{stats}");
            assert!(stats["reloads"].as_u64().unwrap() > 0, "{stats}");
            assert!(
                stats["peak_resident_bytes"].as_u64().unwrap() <= budget,
                "{stats}"
            );
        } else {
            assert_eq!(stats["evictions"], 0, "{stats}");
            assert_eq!(
                stats["peak_resident_bytes"], stats["model_bytes"],
                "{stats}"
            );
        }
    }
}

#[test]
fn a_bad_budget_is_a_one_line_error() {
    let model = common::smollm2_path();
    for (budget, needle) in [("12 parsecs", "unknown unit"), ("1MiB", "module `Llama`")] {
        let out = lazyforge(&[
            "run",
            "--model",
            model.to_str().unwrap(),
            "--prompt-ids",
            "1,2",
            "--max-tokens",
            "1",
            "--budget",
            budget,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{budget}: {err}");
    }
    let out = lazyforge(&[
        "run",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        "1,2",
        "--load",
        "eager",
        "--budget",
        "50%",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--load eager") && err.contains("prefetch"),
        "{err}"
    );
}

#[test]
fn prompt_ids_run_a_checkpoint_without_a_tokenizer() {
    // The tiny Mistral fixture has config.json and safetensors, no tokenizer.
    let dir = common::fixtures_dir().join("tiny-mistral");
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("refs.json")).unwrap()).unwrap();
    let prompt = common::ids(&refs["input_ids"]);
    let want = common::ids(&refs["greedy_generated_ids"]);
    let prompt_arg = prompt
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = lazyforge(&[
        "run",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        &prompt_arg,
        "--max-tokens",
        &want.len().to_string(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["text"], serde_json::Value::Null);
    assert_eq!(doc["architecture"], "llama");
    assert_eq!(common::ids(&doc["generated_ids"]), want);

    // Stop strings need a tokenizer: a clear error, not silence.
    let out = lazyforge(&[
        "run",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        "1,2",
        "--stop",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop strings need the model's tokenizer")
    );
}

#[test]
fn an_unknown_architecture_or_model_name_lists_the_known_ones() {
    let dir = std::env::temp_dir().join(format!("lazyforge-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let out = lazyforge(&["run", "--model", dir.to_str().unwrap(), "--prompt-ids", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown architecture 'mamba'"), "{err}");
    for known in ["gemma3", "llama", "mistral", "phi3", "qwen2", "qwen3"] {
        assert!(err.contains(known), "{known} missing from: {err}");
    }
    let out = lazyforge(&["run", "--model", "no-such-model-7b", "--prompt-ids", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a known model (smollm2-135m, gemma3-270m)"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gemma3_by_name_prints_the_reference_continuation() {
    // `--model gemma3-270m` resolves to the cached file (fetched by tools/fetch_test_model.sh).
    common::gemma3_path();
    let refs = common::gemma3_refs();
    let case = &refs["greedy"][0];
    assert_eq!(case["prompt"], "The capital of France is");
    let out = lazyforge(&[
        "run",
        "--model",
        "gemma3-270m",
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "16",
        "--temperature",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim_end_matches('\n'), case["text"].as_str().unwrap());
}
