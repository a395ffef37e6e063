//! The CUDA backend against the CPU backend, op by op, on random data (feature `cuda`).
//! Where no CUDA device is usable (no driver, no device, no NVRTC) every test prints
//! "skipped: no CUDA device (...)" with the reason and passes.
#![cfg(feature = "cuda")]

use lazyforge::device::kernels;
use lazyforge::ops::{self, KvCache, RopeStyle, RopeTable};
use lazyforge::{DType, Device, Tensor};

const CUDA: Device = Device::Cuda(0);

fn cuda_or_skip() -> bool {
    match CUDA.ensure_available() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            false
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(gpu.device(), CUDA, "{what}: result not on the GPU");
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    let (g, c) = (gpu.to_f32_vec().unwrap(), cpu.to_f32_vec().unwrap());
    let e = rel_l2(&g, &c);
    assert!(e <= tol, "{what}: relative L2 {e:e} > {tol:e}");
}

/// Random weight bytes of `dtype` with small finite f16 scales.
fn weight(rng: &mut Rng, dtype: DType, rows: usize, cols: usize) -> Tensor {
    let f = Tensor::from_f32([rows, cols], rng.vec(rows * cols)).unwrap();
    if dtype == DType::F32 {
        return f;
    }
    let bytes = dtype.bytes_for(rows * cols).unwrap();
    let mut b: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
    let offsets: &[usize] = match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q6_K => &[208],
        _ => &[],
    };
    if offsets.is_empty() {
        // F16 / BF16: convert the f32 values.
        b = match dtype {
            DType::F16 => f
                .to_f32_vec()
                .unwrap()
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            _ => f
                .to_f32_vec()
                .unwrap()
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
        };
    } else {
        for block in b.chunks_exact_mut(dtype.type_size()) {
            for &at in offsets {
                block[at..at + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
        }
    }
    let mut aligned = lazyforge::source::AlignedBytes::zeroed(b.len());
    aligned.as_mut_slice().copy_from_slice(&b);
    Tensor::from_storage(
        vec![rows, cols],
        dtype,
        lazyforge::device::Storage::Bytes(aligned),
    )
    .unwrap()
}

#[test]
fn matvec_matmul_and_embedding_match_the_cpu_for_every_dtype() {
    if !cuda_or_skip() {
        return;
    }
    let mut rng = Rng(7);
    for (dtype, _) in kernels::TYPED {
        let (m, k) = (300, 512);
        let w = weight(&mut rng, dtype, m, k);
        let wg = w.to_device(CUDA).unwrap();
        let x = Tensor::from_f32([1, k], rng.vec(k)).unwrap();
        let y = ops::matvec(&w, &x).unwrap();
        let yg = ops::matvec(&wg, &x.to_device(CUDA).unwrap()).unwrap();
        close(&format!("matvec {dtype}"), &yg, &y, 1e-5);
        let xs = Tensor::from_f32([7, k], rng.vec(7 * k)).unwrap();
        let z = ops::matmul(&xs, &w).unwrap();
        let zg = ops::matmul(&xs.to_device(CUDA).unwrap(), &wg).unwrap();
        close(&format!("matmul {dtype}"), &zg, &z, 1e-5);
        let ids = [3u32, 0, 299, 17];
        let e = ops::embedding(&w, &ids).unwrap();
        let eg = ops::embedding(&wg, &ids).unwrap();
        close(&format!("embedding {dtype}"), &eg, &e, 0.0);
    }
}

#[test]
fn norms_rope_activations_and_adds_match_the_cpu() {
    if !cuda_or_skip() {
        return;
    }
    let mut rng = Rng(11);
    let (n, d) = (5, 384);
    let x = Tensor::from_f32([n, d], rng.vec(n * d)).unwrap();
    let xg = x.to_device(CUDA).unwrap();
    let w = Tensor::from_f32([d], rng.vec(d)).unwrap();
    let b = Tensor::from_f32([d], rng.vec(d)).unwrap();
    let (wg, bg) = (w.to_device(CUDA).unwrap(), b.to_device(CUDA).unwrap());
    close(
        "rms_norm",
        &ops::rms_norm(&xg, &wg, 1e-5).unwrap(),
        &ops::rms_norm(&x, &w, 1e-5).unwrap(),
        1e-6,
    );
    close(
        "layer_norm",
        &ops::layer_norm(&xg, &wg, Some(&bg), 1e-5).unwrap(),
        &ops::layer_norm(&x, &w, Some(&b), 1e-5).unwrap(),
        1e-6,
    );
    let mut table = RopeTable::new(64, 10000.0, 8).unwrap();
    table.reserve(64);
    let gtable = RopeTable::on_demand(CUDA, 64, 10000.0).unwrap();
    let positions = [0, 1, 2, 40, 100];
    for style in [RopeStyle::Interleaved, RopeStyle::SplitHalf] {
        let (mut a, mut ag) = (x.clone(), xg.clone());
        ops::rope(&mut a, style, 6, 64, &positions, &table).unwrap();
        ops::rope(&mut ag, style, 6, 64, &positions, &gtable).unwrap();
        close(&format!("rope {style:?}"), &ag, &a, 1e-6);
    }
    let y = Tensor::from_f32([n, d], rng.vec(n * d)).unwrap();
    let yg = y.to_device(CUDA).unwrap();
    type Op = fn(&mut Tensor, &Tensor) -> lazyforge::Result<()>;
    for (name, f) in [
        ("swiglu", ops::swiglu_in_place as Op),
        ("geglu", ops::geglu_in_place as Op),
        ("add", ops::add_in_place as Op),
    ] {
        let (mut a, mut ag) = (x.clone(), xg.clone());
        f(&mut a, &y).unwrap();
        f(&mut ag, &yg).unwrap();
        close(name, &ag, &a, 1e-6);
        close(
            &format!("{name} leaves the source clone alone"),
            &xg,
            &x,
            0.0,
        );
    }
    let (mut a, mut ag) = (x.clone(), xg.clone());
    ops::add_bias_in_place(&mut a, &b).unwrap();
    ops::add_bias_in_place(&mut ag, &bg).unwrap();
    close("bias", &ag, &a, 0.0);
    let (mut a, mut ag) = (x.clone(), xg.clone());
    ops::gelu_erf_in_place(&mut a).unwrap();
    ops::gelu_erf_in_place(&mut ag).unwrap();
    close("gelu_erf", &ag, &a, 1e-6);
    close(
        "narrow",
        &ops::narrow(&xg, 1, 10, 50).unwrap(),
        &ops::narrow(&x, 1, 10, 50).unwrap(),
        0.0,
    );
}

#[test]
fn attention_over_the_device_cache_matches_the_cpu_with_gqa_and_a_window() {
    if !cuda_or_skip() {
        return;
    }
    let mut rng = Rng(13);
    let (n_heads, n_kv, hd) = (8, 2, 64);
    for window in [None, Some(5)] {
        let mut cpu = KvCache::new(n_kv, hd, window).unwrap();
        let mut gpu = KvCache::new_on(CUDA, n_kv, hd, window).unwrap();
        let mut next = 0;
        // A prefill of 12, then 30 decode steps (growing the ring, wrapping the window).
        for n in std::iter::once(12).chain(std::iter::repeat_n(1, 30)) {
            let positions: Vec<usize> = (next..next + n).collect();
            next += n;
            let q = Tensor::from_f32([n, n_heads * hd], rng.vec(n * n_heads * hd)).unwrap();
            let k = Tensor::from_f32([n, n_kv * hd], rng.vec(n * n_kv * hd)).unwrap();
            let v = Tensor::from_f32([n, n_kv * hd], rng.vec(n * n_kv * hd)).unwrap();
            cpu.append(&k, &v, &positions).unwrap();
            gpu.append(
                &k.to_device(CUDA).unwrap(),
                &v.to_device(CUDA).unwrap(),
                &positions,
            )
            .unwrap();
            let a = ops::attention(&q, &positions, n_heads, &cpu, window).unwrap();
            let ag = ops::attention(
                &q.to_device(CUDA).unwrap(),
                &positions,
                n_heads,
                &gpu,
                window,
            )
            .unwrap();
            close(
                &format!("attention window {window:?} at {positions:?}"),
                &ag,
                &a,
                1e-5,
            );
        }
        assert_eq!(
            cpu.positions().collect::<Vec<_>>(),
            gpu.positions().collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_device_reports_its_memory_and_bad_input_is_an_error() {
    if !cuda_or_skip() {
        return;
    }
    let b = CUDA.backend().unwrap();
    let (free, total) = b.memory_info().expect("a GPU reports its memory");
    assert!(free > 0 && free <= total);
    let t = Tensor::zeros([2, 32]).to_device(CUDA).unwrap();
    assert!(ops::embedding(&t, &[2]).is_err());
    assert!(Device::Cuda(1000).ensure_available().is_err());
}
