//! Opening a checkpoint costs its metadata, not its size: a sparse ~33 GB GGUF with 700
//! tensors opens as fast as a ~1 MB GGUF with the same 700-entry tensor table and metadata.
//!
//! `cargo bench -p lazyforge --bench open`

use criterion::{criterion_group, criterion_main, Criterion};
use lazyforge::source::gguf::{GgufWriter, MetaType, WriteValue};
use lazyforge::{Checkpoint, DType};
use std::hint::black_box;
use std::path::Path;

/// A Llama-like table: 700 tensors, each `[rows, cols]` in `dtype`, with a tokenizer-sized
/// string array in the metadata. Tensor data is not written: the file is extended sparsely.
fn write_synthetic(path: &Path, rows: usize, cols: usize, dtype: DType) {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", WriteValue::String("llama".into()))
        .unwrap();
    w.add_metadata("llama.block_count", WriteValue::U32(100))
        .unwrap();
    let tokens = (0..32000)
        .map(|i| WriteValue::String(format!("tok{i}")))
        .collect();
    w.add_array("tokenizer.ggml.tokens", MetaType::String, tokens)
        .unwrap();
    for i in 0..700 {
        w.add_tensor_placeholder(
            format!("blk.{}.t{}.weight", i / 7, i % 7),
            dtype,
            &[rows, cols],
        )
        .unwrap();
    }
    w.write_to_path(path).unwrap();
}

fn bench_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.gguf");
    let large = dir.path().join("large.gguf");
    write_synthetic(&small, 16, 32, DType::F16); // 700 × 1 KiB
    write_synthetic(&large, 4096, 11008, DType::Q8_0); // 700 × 47.9 MB, sparse
    for (name, path) in [("small", &small), ("large", &large)] {
        let bytes = std::fs::metadata(path).unwrap().len();
        let ckpt = Checkpoint::open(path).unwrap();
        assert_eq!(ckpt.tensors().len(), 700);
        assert_eq!(ckpt.stats().bytes_read, 0);
        eprintln!("{name}: {bytes} bytes, {} tensors", ckpt.tensors().len());
    }
    let mut group = c.benchmark_group("open_gguf");
    group.bench_function("1MB_700_tensors", |b| {
        b.iter(|| black_box(Checkpoint::open(&small).unwrap()))
    });
    group.bench_function("33GB_sparse_700_tensors", |b| {
        b.iter(|| black_box(Checkpoint::open(&large).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench_open);
criterion_main!(benches);
