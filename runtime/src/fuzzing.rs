//! What the fuzz targets run (`fuzz/fuzz_targets/*.rs`), here so that the corpus replay
//! test (`runtime/tests/fuzz_corpus.rs`) runs exactly the same code on stable. Not part of
//! the public API.
//!
//! Every function takes arbitrary bytes and must return without panicking, hanging or
//! allocating in proportion to a size the bytes claim; errors are fine and ignored. The
//! functions panic only where an internal consistency check (an oracle) fails.

use crate::device::Device;
use crate::dtype::{self, DType};
use crate::source::gguf::{GgufFile, MetaType, MetaValue};
use crate::source::safetensors::{SafetensorsFile, ShardIndex};
use crate::source::Mapping;
use crate::{Checkpoint, Error, Result};
use std::path::Path;
use std::sync::Arc;

/// Tensors bigger than this are not loaded by the harness (their bytes are in the input
/// anyway, so this only bounds the time spent per input).
const MAX_LOAD_BYTES: u64 = 1 << 20;

/// Tensors loaded per input, at most.
const MAX_LOADS: usize = 16;

/// Array elements decoded per input, at most (nested arrays included).
const MAX_ELEMENTS: usize = 1 << 16;

/// A [`Mapping`] over `data`, named `name` in messages.
pub fn mapping(name: &str, data: &[u8]) -> Arc<Mapping> {
    Arc::new(Mapping::from_bytes(name, data))
}

/// Parses `data` as a GGUF file held in memory.
pub fn gguf_from_bytes(data: &[u8]) -> Result<GgufFile> {
    GgufFile::from_mapping(mapping("fuzz.gguf", data))
}

/// Target `gguf`: open, decode every metadata value and array (bounded), read every typed
/// getter, then open it as a checkpoint and load its small tensors, stored and as `f32`.
pub fn gguf(data: &[u8]) {
    let Ok(file) = gguf_from_bytes(data) else {
        return;
    };
    let mut budget = MAX_ELEMENTS;
    for (key, value) in file.metadata() {
        let _ = file.get_u64(key);
        let _ = file.get_u32(key);
        let _ = file.get_f32(key);
        let _ = file.get_bool(key);
        let _ = file.get_str(key);
        if let MetaValue::Array(arr) = value {
            if arr.elem_type() == MetaType::String {
                let _ = file.get_string_array(key);
            }
            let _ = file.get_i32_array(key);
            let _ = file.get_f32_array(key);
            walk_array(&file, value, &mut budget);
        }
    }
    let _ = format!("{file:?}");
    if let Ok(ckpt) = Checkpoint::from_gguf(file) {
        load_some(&ckpt);
    }
}

fn walk_array(file: &GgufFile, value: &MetaValue, budget: &mut usize) {
    let MetaValue::Array(arr) = value else {
        return;
    };
    if arr.len() > *budget as u64 {
        return;
    }
    *budget -= arr.len() as usize;
    if let Ok(values) = file.array_values(arr) {
        for v in &values {
            walk_array(file, v, budget);
        }
    }
}

/// Target `safetensors`: the first byte picks the input's kind. Even: a single
/// `.safetensors` file (opened as a checkpoint, small tensors loaded). Odd: a sharded
/// index (`model.safetensors.index.json`), parsed and its shard names resolved.
pub fn safetensors(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        let m = mapping("fuzz.safetensors", rest);
        if let Ok(file) = SafetensorsFile::from_mapping(Arc::clone(&m), 0) {
            for t in file.tensors() {
                assert!(
                    t.offset.checked_add(t.len).is_some_and(|e| e <= m.len()),
                    "safetensors tensor '{}' lies outside the file",
                    t.name
                );
            }
            let _ = file.metadata();
        }
        if let Ok(ckpt) = Checkpoint::from_mapping(Path::new("fuzz.safetensors"), m) {
            load_some(&ckpt);
        }
    } else {
        let dir = Path::new("/nonexistent/fuzz");
        let index_path = dir.join("model.safetensors.index.json");
        if let Ok(index) = ShardIndex::parse(&index_path, rest) {
            if let Ok(paths) = index.shard_paths(&index_path, dir) {
                for (_, p) in paths {
                    // Inside `dir` (subdirectories are fine), with nothing that climbs.
                    let rel = p.strip_prefix(dir).ok();
                    assert!(
                        rel.is_some_and(|r| r
                            .components()
                            .all(|c| matches!(c, std::path::Component::Normal(_)))),
                        "shard path {} left {}",
                        p.display(),
                        dir.display()
                    );
                }
            }
        }
    }
}

/// Loads up to [`MAX_LOADS`] small tensors of `ckpt`, as stored and as `f32`, and checks
/// that the two agree on the values.
fn load_some(ckpt: &Checkpoint) {
    let names: Vec<String> = ckpt
        .tensors()
        .iter()
        .filter(|t| t.len <= MAX_LOAD_BYTES && t.elem_count() <= MAX_LOAD_BYTES)
        .take(MAX_LOADS)
        .map(|t| t.name.clone())
        .collect();
    for name in names {
        let Ok(stored) = ckpt.lazy(&name, Device::Cpu) else {
            continue;
        };
        let Ok(as_f32) = ckpt.lazy_as(&name, Device::Cpu, DType::F32) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (stored.get(), as_f32.get()) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.to_f32_vec(), b.as_f32()) else {
            continue;
        };
        assert_eq!(a.len(), b.len(), "tensor '{name}': value counts differ");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "tensor '{name}' value {i}: {x} stored vs {y} converted"
            );
        }
    }
}

/// Values per input of the `dequant` target, at most.
const MAX_DEQUANT_VALUES: usize = 8192;

/// Target `dequant`: the first byte picks a dtype ([`DType::ALL`]), the rest is whole
/// blocks of it. Dequantizes them (whole, and block by block: they must agree), computes
/// the fused dot product with fixed activations, one row and as two rows, and checks it
/// against the dequantized values within the rounding bound of a reordered `f32` sum.
pub fn dequant(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let dtype = DType::ALL[pick as usize % DType::ALL.len()];
    let (bs, ts) = (dtype.block_size(), dtype.type_size());
    let blocks = (rest.len() / ts).min(MAX_DEQUANT_VALUES / bs);
    let bytes = &rest[..blocks * ts];
    let n = blocks * bs;
    let mut values = vec![0f32; n];
    dtype::dequantize(dtype, bytes, &mut values).expect("whole blocks dequantize");
    let mut one = vec![0f32; bs];
    for (b, block) in bytes.chunks_exact(ts).enumerate() {
        dtype::dequantize_block(dtype, block, &mut one);
        for (i, (x, y)) in one.iter().zip(&values[b * bs..]).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{dtype} block {b} value {i}: {x} alone vs {y} in bulk"
            );
        }
    }
    // Wrong lengths are errors, not panics.
    if n > 0 {
        assert!(dtype::dequantize(dtype, bytes, &mut values[1..]).is_err());
        assert!(dtype::dot(dtype, &bytes[1..], &values[..n - bs]).is_err());
    }
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7 + 3) % 17) as f32 / 4.0 - 2.0)
        .collect();
    let Ok(fused) = dtype::dot(dtype, bytes, &x) else {
        panic!("{dtype}: dot of {blocks} whole blocks failed");
    };
    check_dot(dtype, &values, &x, fused);
    if blocks >= 2 && blocks.is_multiple_of(2) {
        let half = n / 2;
        let mut out = [f32::NAN; 2];
        dtype::dot_rows(dtype, bytes, &x[..half], &mut out).expect("two whole rows");
        check_dot(dtype, &values[..half], &x[..half], out[0]);
        check_dot(dtype, &values[half..], &x[..half], out[1]);
    }
}

/// Whether `fused` is `sum(w * x)` within the error bound of summing in another order
/// and of the kernels' factoring of block scales, offsets and minimums out of the sum
/// (which can cancel: `d * q + m` may be near zero while `d * q` and `m` are not, so the
/// bound also scales with the largest value and the activations).
fn check_dot(dtype: DType, w: &[f32], x: &[f32], fused: f32) {
    let exact: f64 = w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
    let magnitude: f64 = w
        .iter()
        .zip(x)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    let largest = w.iter().fold(0f64, |m, &a| m.max((a as f64).abs()));
    let spread: f64 = x.iter().map(|&b| (b as f64).abs()).sum::<f64>() * largest;
    if !exact.is_finite() || !spread.is_finite() || spread > f32::MAX as f64 / 64.0 {
        return; // Infinities and NaNs in the data: any result is fair.
    }
    if magnitude == 0.0 {
        return; // All zero: the only error is how exactly the kernel's terms cancel.
    }
    let bound = 1e-2 * (magnitude + spread) + 1e-30;
    assert!(
        (fused as f64 - exact).abs() <= bound,
        "{dtype}: fused dot {fused} vs {exact} (|w·x| sums to {magnitude}) over {} values",
        w.len()
    );
}

/// Starting inputs for target `target` (`gguf`, `safetensors`, `dequant`): small valid
/// files and blocks that reach past the format checks. The corpus under `fuzz/corpus/`
/// grew from these. An error only if the writer refuses these fixed inputs.
pub fn seeds(target: &str) -> crate::Result<Vec<Vec<u8>>> {
    use crate::source::gguf::{GgufWriter, WriteValue};
    Ok(match target {
        "gguf" => {
            let mut out = Vec::new();
            for dtype in [
                DType::F32,
                DType::F16,
                DType::Q4_0,
                DType::Q8_0,
                DType::Q4_K,
            ] {
                let mut w = GgufWriter::new();
                w.add_metadata("general.architecture", "llama")?;
                w.add_metadata("llama.block_count", 1u32)?;
                w.add_metadata("general.name", "seed")?;
                let strings = ["a", "bc", "<s>"]
                    .iter()
                    .map(|s| WriteValue::from(*s))
                    .collect();
                w.add_array("tokenizer.ggml.tokens", MetaType::String, strings)?;
                let ints = (0..4).map(WriteValue::I32).collect();
                w.add_array("tokenizer.ggml.token_type", MetaType::I32, ints)?;
                let cols = dtype.block_size().max(4);
                let bytes = dtype
                    .bytes_for(2 * cols)
                    .ok_or_else(|| Error::Invalid(format!("{dtype}: {cols} columns")))?;
                let data: Vec<u8> = (0..bytes).map(|i| (i * 37 % 251) as u8).collect();
                w.add_tensor("blk.0.w", dtype, &[2, cols], &data)?;
                w.add_tensor("norm", DType::F32, &[4], &[0u8; 16])?;
                out.push(w.to_bytes());
            }
            out
        }
        "safetensors" => {
            let header = br#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"I64","shape":[1],"data_offsets":[22,30]}}"#;
            let mut file = vec![0u8];
            file.extend((header.len() as u64).to_le_bytes());
            file.extend_from_slice(header);
            file.extend((0..30u8).map(|i| i.wrapping_mul(29)));
            let index = br#"{"metadata":{"total_size":30},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"../x.safetensors"}}"#;
            let mut sharded = vec![1u8];
            sharded.extend_from_slice(index);
            vec![file, sharded]
        }
        "dequant" => DType::ALL
            .iter()
            .enumerate()
            .map(|(i, dtype)| {
                let mut v = vec![i as u8];
                v.extend((0..2 * dtype.type_size()).map(|j| (j * 73 % 256) as u8));
                v
            })
            .collect(),
        _ => Vec::new(),
    })
}
