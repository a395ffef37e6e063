//! Row-dot kernel speed that survives a loaded machine: the *fastest* of many repetitions
//! (a repetition that no other process interrupted), single thread, for the formats of the
//! two reference models at their shapes, plus the same weights through `ops::cpu::matvec`
//! (the decode team) and a copy-free read of a buffer larger than the last-level cache
//! (the memory bandwidth the kernels are bound by).
//!
//! `cargo bench -p lazyforge --bench rowdot_min` (weight bytes per second; `REPS=N` sets
//! the repetitions, default 300; `LAZYFORGE_CPU_KERNELS=avx2` caps the kernels' instruction
//! set, to compare the AVX-512 and AVX2 builds on one machine).

use lazyforge::device::Storage;
use lazyforge::ops::cpu::matvec;
use lazyforge::source::AlignedBytes;
use lazyforge::{dtype, DType, Tensor};
use std::hint::black_box;
use std::time::Instant;

/// xorshift64, so the bench needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random blocks with small finite scales.
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
        if dtype == DType::F32 {
            b[0..4].copy_from_slice(&(0.01 * rng.unit()).to_le_bytes());
        }
    }
    bytes
}

/// A `[rows, cols]` weight tensor over `bytes`.
fn tensor(dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> Tensor {
    let storage = Storage::Bytes(AlignedBytes::from_slice(bytes));
    Tensor::from_storage(vec![rows, cols], dtype, storage).expect("sizes")
}

/// This thread's CPU time in seconds (time it was descheduled does not count).
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The fastest of `reps` runs of `f`, in seconds of this thread's CPU time.
fn fastest_cpu(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = thread_cpu();
            f();
            thread_cpu() - t
        })
        .fold(f64::INFINITY, f64::min)
}

/// The fastest of `reps` runs of `f`, in seconds of wall-clock time.
fn fastest(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let cases = [
        (DType::Q4_1, 1536, 576),
        (DType::Q4_1, 576, 1536),
        (DType::Q4_1, 576, 576),
        (DType::Q8_0, 1536, 576),
        (DType::Q5_0, 2048, 640),
        (DType::Q5_0, 1024, 640),
        (DType::Q4_K, 640, 2048),
        (DType::Q6_K, 640, 2048),
        (DType::Q8_0, 2048, 640),
        (DType::F32, 576, 576),
    ];
    println!("single thread, in cache (fastest of {reps}, thread CPU time), and through matvec (the team, wall time):");
    for (dt, rows, cols) in cases {
        let name = format!("{}_{rows}x{cols}", dt.name().to_lowercase());
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let w = weight(dt, rows, cols);
        let mut rng = Rng(42);
        let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
        let mut y = vec![0f32; rows];
        let t1 = fastest_cpu(reps, || {
            dtype::dot_rows(dt, black_box(&w), black_box(&x), &mut y).expect("sizes");
            black_box(&y);
        });
        let wt = tensor(dt, rows, cols, &w);
        let tt = fastest(reps, || {
            black_box(matvec(black_box(&wt), black_box(&x)).expect("sizes"));
        });
        let gbs = |t: f64| w.len() as f64 / t / 1e9;
        println!(
            "  {name:<18} {:<8} {:>8.1} us {:>6.1} GB/s | matvec {:>8.1} us {:>6.1} GB/s",
            dtype::kernel_isa(dt),
            t1 * 1e6,
            gbs(t1),
            tt * 1e6,
            gbs(tt)
        );
    }
    // Streaming from memory: the LM heads (SmolLM2 49152 x 576, Gemma 3 262144 x 640 Q8_0).
    for (dt, rows, cols) in [(DType::Q8_0, 49152, 576), (DType::Q8_0, 262144, 640)] {
        let name = format!("{}_{rows}x{cols}", dt.name().to_lowercase());
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let w = weight(dt, rows, cols);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
        let wt = tensor(dt, rows, cols, &w);
        let tt = fastest(reps / 10 + 3, || {
            black_box(matvec(black_box(&wt), black_box(&x)).expect("sizes"));
        });
        println!(
            "  {name:<18} matvec from memory {:>8.1} us {:>6.1} GB/s",
            tt * 1e6,
            w.len() as f64 / tt / 1e9
        );
    }
}
