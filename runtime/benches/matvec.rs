//! Decode's hot path: one activation vector against a weight matrix in its stored format,
//! on one thread, so that the row-dot kernels' own speed is what is measured.
//! Shapes are SmolLM2-135M's (hidden 576, intermediate 1536, vocab 49152); K-quant rows
//! need a multiple of 256 values, so those use the 576x1536 `ffn_down` shape only.
//!
//! Two paths per weight: `dot_rows` (the batch kernel: checks, CPU-feature dispatch and
//! activation block sums once per matvec) and `dot` (the per-row entry point, called once
//! per row as a naive caller would).
//!
//! `cargo bench -p lazyforge --bench matvec` (throughput in weight bytes per second;
//! add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lazyforge::dtype;
use lazyforge::DType;
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

/// `rows` rows of `cols` values of `dtype`: random bytes whose float fields (scales, plain
/// values) are overwritten with small finite numbers.
fn weight(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let n_bytes = dtype.bytes_for(rows * cols).expect("whole blocks");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut bytes: Vec<u8> = (0..n_bytes).map(|_| rng.next() as u8).collect();
    let f16_fields: &[usize] = match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 | DType::F16 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q2_K => &[80, 82],
        DType::Q3_K => &[108],
        DType::Q6_K => &[208],
        _ => &[],
    };
    for b in bytes.chunks_exact_mut(dtype.type_size()) {
        for &off in f16_fields {
            let v = half::f16::from_f32(0.01 * rng.unit());
            b[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
        match dtype {
            DType::F32 | DType::Q8_K => b[0..4].copy_from_slice(&(0.01 * rng.unit()).to_le_bytes()),
            DType::BF16 => b.copy_from_slice(&half::bf16::from_f32(rng.unit()).to_le_bytes()),
            _ => {}
        }
    }
    bytes
}

fn bench_matvec(c: &mut Criterion) {
    let mut group = c.benchmark_group("matvec");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    let blocks32 = [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::F16,
        DType::BF16,
        DType::F32,
    ];
    let kquants = [
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
        DType::Q8_K,
    ];
    let mut cases = Vec::new();
    for dtype in blocks32 {
        cases.push((dtype, "ffn_up", 1536, 576));
        cases.push((dtype, "ffn_down", 576, 1536));
    }
    cases.push((DType::Q8_0, "lm_head", 49152, 576));
    for dtype in kquants {
        cases.push((dtype, "ffn_down", 576, 1536));
    }
    for (dtype, what, rows, cols) in cases {
        let w = weight(dtype, rows, cols);
        let stride = dtype.bytes_for(cols).expect("whole blocks");
        let mut rng = Rng(42);
        let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
        let mut y = vec![0f32; rows];
        let name = format!("{}_{what}_{rows}x{cols}", dtype.name().to_lowercase());
        group.throughput(Throughput::Bytes(w.len() as u64));
        group.bench_function(format!("{name}/dot_rows"), |b| {
            b.iter(|| {
                dtype::dot_rows(dtype, black_box(&w), black_box(&x), &mut y).expect("sizes");
                black_box(&y);
            })
        });
        group.bench_function(format!("{name}/dot"), |b| {
            b.iter(|| {
                for (y, row) in y.iter_mut().zip(black_box(&w).chunks_exact(stride)) {
                    *y = dtype::dot(dtype, row, black_box(&x)).expect("sizes");
                }
                black_box(&y);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matvec);
criterion_main!(benches);
