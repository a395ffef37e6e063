//! Decode's hot path: one activation vector against a weight matrix in its stored format.
//! Shapes are SmolLM2-135M's (hidden 576, intermediate 1536, vocab 49152).
//!
//! `cargo bench -p lazyforge --bench matvec` (throughput in weight bytes per second). The
//! kernel is `ops::cpu::matvec`, which the CPU backend runs for `ops::matvec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lazyforge::device::Storage;
use lazyforge::ops::cpu::matvec;
use lazyforge::source::AlignedBytes;
use lazyforge::{DType, Tensor};
use std::hint::black_box;

/// A `[rows, cols]` weight of `dtype` with random blocks whose f16 scales are small and finite.
fn weight(dtype: DType, rows: usize, cols: usize) -> Tensor {
    let n_bytes = dtype.bytes_for(rows * cols).expect("whole blocks");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes: Vec<u8> = (0..n_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let one = half::f16::from_f32(0.01).to_le_bytes();
    match dtype {
        DType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&(c[0] as f32 / 255.0).to_le_bytes());
            }
        }
        // Every block of these formats starts with f16 scale fields.
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => {
            let scales = if dtype == DType::Q4_1 { 2 } else { 1 };
            for b in bytes.chunks_exact_mut(dtype.type_size()) {
                for s in 0..scales {
                    b[2 * s..2 * s + 2].copy_from_slice(&one);
                }
            }
        }
        _ => unreachable!("bench covers F32, Q8_0, Q4_0, Q4_1"),
    }
    Tensor::from_storage(
        vec![rows, cols],
        dtype,
        Storage::Bytes(AlignedBytes::from_slice(&bytes)),
    )
    .expect("sizes match")
}

fn bench_matvec(c: &mut Criterion) {
    let mut group = c.benchmark_group("matvec");
    for (name, dtype, rows, cols) in [
        ("q4_1_ffn_up_1536x576", DType::Q4_1, 1536, 576),
        ("q4_0_ffn_up_1536x576", DType::Q4_0, 1536, 576),
        ("q8_0_lm_head_49152x576", DType::Q8_0, 49152, 576),
        ("f32_576x576", DType::F32, 576, 576),
    ] {
        let w = weight(dtype, rows, cols);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
        group.throughput(Throughput::Bytes(w.bytes().len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(matvec(&w, &x).expect("shapes match")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matvec);
criterion_main!(benches);
