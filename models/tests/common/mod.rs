//! Helpers shared by the models crate's integration tests: where the real test model and the
//! reference fixtures live.

#![allow(dead_code)]

use std::path::PathBuf;

// Where the real test model lives, and the message when it is missing: one definition,
// shared with the runtime's tests.
#[path = "../../../runtime/tests/common/mod.rs"]
mod model_path;
#[allow(unused_imports)]
pub use model_path::{smollm2_path, SMOLLM2_FILE};

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

/// Token ids from a JSON array in a fixture.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

/// File name of the Gemma 3 270M test model (Q4_K_M GGUF).
pub const GEMMA3_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// Path of the Gemma 3 test model in lazyforge's cache; panics, saying how to get it, when
/// it is not there.
pub fn gemma3_path() -> PathBuf {
    let path = lazyforge::source::cache_dir().join(GEMMA3_FILE);
    if !path.is_file() {
        panic!(
            "test model not found at {}.\nGet it with `bash tools/fetch_test_model.sh` (or \
             `cargo run --release --example llama -- --model gemma3-270m`).",
            path.display()
        );
    }
    path
}

/// `fixtures/gemma3/refs.json`, written by `tools/make_gemma3_refs.py`.
pub fn gemma3_refs() -> serde_json::Value {
    let path = fixtures_dir().join("gemma3").join("refs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate it with `tools/make_gemma3_refs.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("refs.json is valid JSON")
}
