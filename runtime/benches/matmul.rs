//! Prefill's hot path: `ops::matmul` of 128 `f32` activation rows against a weight matrix in
//! its stored format, on the global rayon pool (all threads), as prefill runs it.
//! Shapes are SmolLM2-135M's `ffn_up` (576 -> 1536) and Gemma 3 270M's (640 -> 2048).
//!
//! `cargo bench -p lazyforge --bench matmul` (throughput in FLOPs per second, 2·n·m·k per
//! product; add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lazyforge::device::Storage;
use lazyforge::source::AlignedBytes;
use lazyforge::{ops, DType, Tensor};
use std::hint::black_box;
use std::time::Duration;

/// xorshift64, so the bench needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A `[rows, cols]` weight of `dtype`: random bytes whose f16 scales are overwritten with
/// small finite numbers (f32 weights are random values).
fn weight(dtype: DType, rows: usize, cols: usize) -> Tensor {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    if dtype == DType::F32 {
        let v = (0..rows * cols).map(|_| 0.01 * rng.unit()).collect();
        return Tensor::from_f32([rows, cols], v).expect("sizes");
    }
    let n_bytes = dtype.bytes_for(rows * cols).expect("whole blocks");
    let mut bytes: Vec<u8> = (0..n_bytes).map(|_| rng.next() as u8).collect();
    let f16_fields: &[usize] = match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 => &[0, 2],
        _ => &[],
    };
    for b in bytes.chunks_exact_mut(dtype.type_size()) {
        for &off in f16_fields {
            let v = half::f16::from_f32(0.01 * rng.unit());
            b[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    let storage = Storage::Bytes(AlignedBytes::from_slice(&bytes));
    Tensor::from_storage(vec![rows, cols], dtype, storage).expect("sizes")
}

fn bench_matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let n = 128;
    let cases = [
        (DType::Q4_1, 1536, 576),
        (DType::F32, 1536, 576),
        (DType::Q5_0, 2048, 640),
    ];
    for (dtype, m, k) in cases {
        let w = weight(dtype, m, k);
        let mut rng = Rng(42);
        let x = Tensor::from_f32([n, k], (0..n * k).map(|_| rng.unit()).collect()).expect("n·k");
        group.throughput(Throughput::Elements((2 * n * m * k) as u64));
        let name = format!("{}_{n}x{k}_by_{m}x{k}", dtype.name().to_lowercase());
        group.bench_function(name, |b| {
            b.iter(|| black_box(ops::matmul(black_box(&x), black_box(&w)).expect("sizes")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
