//! The GGUF reader against a real model, SmolLM2-135M-Instruct Q4_1, compared field by field
//! with what gguf-py reads from the same file (`fixtures/smollm2_gguf.json`, written by
//! `tools/gguf_fixture.py`).

mod common;

use lazyforge::source::gguf::{GgufFile, MetaArray, MetaType, MetaValue};
use lazyforge::source::MapPolicy;
use serde_json::Value;
use sha2::{Digest, Sha256};

const POLICIES: [MapPolicy; 2] = [MapPolicy::Auto, MapPolicy::ForceRead];

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../fixtures/smollm2_gguf.json"))
        .expect("fixtures/smollm2_gguf.json is valid JSON")
}

fn open(policy: MapPolicy) -> GgufFile {
    GgufFile::open(common::smollm2_path(), policy).expect("SmolLM2 opens")
}

fn int(v: &Value) -> i128 {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// Whether `ours` is the value the fixture recorded (floats compared at their own precision:
/// the fixture holds the stored value exactly, and the f32 check tolerates JSON parsing that
/// is off by an ulp of the double).
fn same_value(ours: &MetaValue, theirs: &Value) -> bool {
    match ours {
        MetaValue::String(s) => theirs.as_str() == Some(s),
        MetaValue::Bool(b) => theirs.as_bool() == Some(*b),
        MetaValue::F32(f) => theirs.as_f64().map(|t| t as f32) == Some(*f),
        MetaValue::F64(f) => theirs
            .as_f64()
            .is_some_and(|t| (t - f).abs() <= f.abs() * 1e-15),
        MetaValue::Array(_) => false,
        scalar => scalar.as_integer() == Some(int(theirs)),
    }
}

/// An element's canonical text, as `tools/gguf_fixture.py` defines it for the hash.
fn canonical(v: &MetaValue) -> String {
    match v {
        MetaValue::String(s) => serde_json::to_string(s).unwrap(),
        MetaValue::Bool(b) => b.to_string(),
        MetaValue::F32(f) => format!("{:08x}", f.to_bits()),
        MetaValue::F64(f) => format!("{:016x}", f.to_bits()),
        MetaValue::Array(_) => panic!("the fixture describes no nested arrays"),
        scalar => scalar.as_integer().unwrap().to_string(),
    }
}

fn check_array(file: &GgufFile, key: &str, arr: &MetaArray, want: &Value) {
    assert_eq!(arr.elem_type().name(), want["element_type"], "{key}");
    assert_eq!(arr.len(), want["length"].as_u64().unwrap(), "{key}");
    assert_eq!(arr.offset(), want["offset"].as_u64().unwrap(), "{key}");
    assert_eq!(arr.byte_len(), want["byte_len"].as_u64().unwrap(), "{key}");
    let values = file.array_values(arr).unwrap();
    assert_eq!(values.len() as u64, arr.len());
    let first = want["first"].as_array().unwrap();
    let last = want["last"].as_array().unwrap();
    for (ours, theirs) in values.iter().zip(first) {
        assert!(same_value(ours, theirs), "{key}: {ours:?} vs {theirs}");
    }
    for (ours, theirs) in values[values.len() - last.len()..].iter().zip(last) {
        assert!(same_value(ours, theirs), "{key}: {ours:?} vs {theirs}");
    }
    let text: Vec<String> = values.iter().map(canonical).collect();
    let digest = Sha256::digest(text.join("\n").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, want["sha256"].as_str().unwrap(), "{key}: element hash");
}

#[test]
fn header_matches_gguf_py() {
    let want = fixture();
    for policy in POLICIES {
        let f = open(policy);
        assert_eq!(f.version() as u64, want["version"].as_u64().unwrap());
        assert_eq!(f.alignment(), want["alignment"].as_u64().unwrap());
        assert_eq!(f.data_offset(), want["data_offset"].as_u64().unwrap());
        assert_eq!(f.mapping().len(), want["file_size"].as_u64().unwrap());
        assert_eq!(f.tensors().len(), 272);
        assert_eq!(
            f.tensors().len() as u64,
            want["tensor_count"].as_u64().unwrap()
        );
        assert_eq!(
            f.metadata().len() as u64,
            want["kv_count"].as_u64().unwrap()
        );
        assert_eq!(f.mapping().is_mapped(), policy == MapPolicy::Auto);
    }
}

#[test]
fn metadata_matches_gguf_py_key_by_key() {
    let want = fixture();
    let entries = want["metadata"].as_array().unwrap();
    for policy in POLICIES {
        let f = open(policy);
        assert_eq!(f.metadata().len(), entries.len());
        for ((key, value), entry) in f.metadata().iter().zip(entries) {
            assert_eq!(key, entry["key"].as_str().unwrap(), "keys in file order");
            assert_eq!(value.type_name(), entry["type"], "{key}");
            assert_eq!(f.get(key), Some(value));
            match value {
                MetaValue::Array(arr) => check_array(&f, key, arr, entry),
                scalar => assert!(
                    same_value(scalar, &entry["value"]),
                    "{key}: {scalar:?} vs {}",
                    entry["value"]
                ),
            }
        }
    }
}

#[test]
fn tensor_table_matches_gguf_py_with_shapes_reversed() {
    let want = fixture();
    let tensors = want["tensors"].as_array().unwrap();
    for policy in POLICIES {
        let f = open(policy);
        assert_eq!(f.tensors().len(), tensors.len());
        for (t, w) in f.tensors().iter().zip(tensors) {
            assert_eq!(t.name, w["name"].as_str().unwrap());
            assert_eq!(t.dtype.name(), w["type"].as_str().unwrap(), "{}", t.name);
            let mut ne: Vec<usize> = w["ne"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            ne.reverse();
            assert_eq!(t.shape, ne, "{}: shape is outermost first", t.name);
            assert_eq!(t.offset, w["offset"].as_u64().unwrap(), "{}", t.name);
            assert_eq!(t.len, w["n_bytes"].as_u64().unwrap(), "{}", t.name);
            assert_eq!(t.file, 0);
        }
    }
    let f = open(MapPolicy::Auto);
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.shape, vec![49152, 576]);
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
}

#[test]
fn tokenizer_arrays_are_located_at_open_and_decoded_on_request() {
    // A located array is a few numbers and nothing else: `Copy` proves it owns no elements.
    fn holds_no_elements<T: Copy>() {}
    holds_no_elements::<MetaArray>();
    assert!(std::mem::size_of::<MetaArray>() <= 48);

    for policy in POLICIES {
        let f = open(policy);
        let tokens = f.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
        assert_eq!(
            (tokens.elem_type(), tokens.len()),
            (MetaType::String, 49152)
        );
        let vocab = f.get_string_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(vocab.len(), 49152);
        assert_eq!(vocab[0], "<|endoftext|>");
        let merges = f.get_string_array("tokenizer.ggml.merges").unwrap();
        assert_eq!(merges.len(), 48900);
        assert_eq!(merges[0], "Ġ t");
        let types = f.get_i32_array("tokenizer.ggml.token_type").unwrap();
        assert_eq!(types.len(), 49152);
        let bos = f.get_u32("tokenizer.ggml.bos_token_id").unwrap() as usize;
        assert!(bos < vocab.len());
    }
}
