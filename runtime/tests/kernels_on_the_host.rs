//! The GPU kernels' dequantization and dot products, compiled for the host with the C++
//! compiler (through `host_shim.h`, which defines CUDA's qualifiers away) and checked against
//! the Rust CPU reference on random blocks of every type the kernels read: dequantized values
//! bit for bit (compiled without contraction into multiply-adds, as the reference computes),
//! dot products to a relative 1e-5 of the sum of magnitudes.
//!
//! The attention kernel's algorithm (4 warps striding over the cache's slots, each with the
//! kernel's online softmax, merged at the end) runs on the host with the kernel's own
//! functions (`softmax.cuh`) and is checked against the CPU attention.
//!
//! This checks the kernels' arithmetic, not the GPU: launches, indexing across threads and
//! warp reductions run only on a device (see docs/gpu.md). Without `c++`/`g++` the test
//! prints why and passes, unless `LAZYFORGE_REQUIRE_CXX=1`.

use half::{bf16, f16};
use lazyforge::device::kernels;
use lazyforge::dtype::{dequantize, dot};
use lazyforge::DType;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
}

/// Byte offsets of the f16 scales in a block of `dtype` (set to finite values so the dot
/// products are meaningful; the rest of the block is random bytes).
fn scale_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q6_K => &[208],
        _ => &[],
    }
}

fn random_rows(rng: &mut Rng, dtype: DType, k: usize, rows: usize) -> Vec<u8> {
    let n = k * rows;
    match dtype {
        DType::F32 => (0..n).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        DType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.unit()).to_le_bytes())
            .collect(),
        DType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.unit()).to_le_bytes())
            .collect(),
        _ => {
            let bytes = dtype.bytes_for(n).unwrap();
            let mut b: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
            for block in b.chunks_exact_mut(dtype.type_size()) {
                for &at in scale_offsets(dtype) {
                    let s = f16::from_f32(rng.unit() * 0.1).to_le_bytes();
                    block[at..at + 2].copy_from_slice(&s);
                }
            }
            b
        }
    }
}

fn compiler() -> Option<&'static str> {
    ["c++", "g++", "clang++"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn build_driver(cxx: &str, dir: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = dir.join("host_driver");
    let out = Command::new(cxx)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-Wall", "-Werror"])
        .arg("-I")
        .arg(manifest.join("tests"))
        .arg("-I")
        .arg(manifest.join("src/device/kernels"))
        .arg(manifest.join("tests/host_driver.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running the C++ compiler");
    assert!(
        out.status.success(),
        "{cxx} failed on the kernel sources:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The driver's dequantized rows and dot products.
fn run_driver(
    exe: &Path,
    dtype: DType,
    k: usize,
    rows: usize,
    w: &[u8],
    x: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for v in [dtype.gguf_id() as i32, k as i32, rows as i32] {
        input.extend(v.to_le_bytes());
    }
    input.extend_from_slice(w);
    input.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "driver failed for {dtype}: {:?}",
        out.status
    );
    let values: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values.len(), k * rows + rows);
    let (deq, dots) = values.split_at(k * rows);
    (deq.to_vec(), dots.to_vec())
}

/// The driver, built once per test (or `None`: no compiler, the test skips).
fn driver(dir: &Path) -> Option<PathBuf> {
    let Some(cxx) = compiler() else {
        if std::env::var("LAZYFORGE_REQUIRE_CXX").as_deref() == Ok("1") {
            panic!("LAZYFORGE_REQUIRE_CXX=1 but no C++ compiler (c++, g++, clang++) was found");
        }
        eprintln!("skipped: no C++ compiler (c++, g++, clang++) to build the kernels for the host");
        return None;
    };
    Some(build_driver(cxx, dir))
}

#[test]
fn attention_kernel_on_the_host_matches_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let Some(exe) = driver(dir.path()) else {
        return;
    };
    let mut rng = Rng(0x51ed_2701_a3c4_9f11);
    for (hd, slots, window) in [
        (64, 37, None),
        (256, 200, Some(50)),
        (80, 9, Some(1)),
        (32, 1, None),
    ] {
        // A ring: slot i holds position base + (i + shift) % slots, a few slots free.
        let shift = slots / 3;
        let mut slot_pos: Vec<i32> = (0..slots)
            .map(|i| (100 + (i + shift) % slots) as i32)
            .collect();
        for i in (0..slots).step_by(7).skip(1) {
            slot_pos[i] = -1;
        }
        // The query is at the newest position, whose slot is always held.
        let pos = 100 + slots as i32 - 1;
        slot_pos[(2 * slots - 1 - shift) % slots] = pos;
        let q: Vec<f32> = (0..hd).map(|_| rng.unit()).collect();
        let k: Vec<f32> = (0..slots * hd).map(|_| rng.unit()).collect();
        let v: Vec<f32> = (0..slots * hd).map(|_| rng.unit()).collect();
        let scale = (hd as f64).powf(-0.5) as f32;
        let mut input = Vec::new();
        for x in [
            -1i32,
            hd as i32,
            slots as i32,
            pos,
            window.unwrap_or(0) as i32,
        ] {
            input.extend(x.to_le_bytes());
        }
        input.extend(scale.to_le_bytes());
        for x in q.iter().chain(&k).chain(&v) {
            input.extend(x.to_le_bytes());
        }
        for p in &slot_pos {
            input.extend(p.to_le_bytes());
        }
        let mut child = Command::new(&exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "attention driver failed: {:?}",
            out.status
        );
        let got: Vec<f32> = out
            .stdout
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // The CPU attention over the held slots only.
        let keep: Vec<usize> = (0..slots).filter(|&i| slot_pos[i] >= 0).collect();
        let positions: Vec<usize> = keep.iter().map(|&i| slot_pos[i] as usize).collect();
        let gather = |x: &[f32]| -> Vec<f32> {
            keep.iter()
                .flat_map(|&i| x[i * hd..(i + 1) * hd].iter().copied())
                .collect()
        };
        let (kk, vv) = (gather(&k), gather(&v));
        let view = lazyforge::ops::cpu::KvView::from_tokens(&kk, &vv, &positions, 1, hd).unwrap();
        let want = lazyforge::ops::cpu::attention(&q, &[pos as usize], 1, &view, window).unwrap();
        let num: f64 = got
            .iter()
            .zip(&want)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
        let e = (num / den).sqrt();
        assert!(
            e <= 1e-5,
            "hd {hd}, {slots} slots, window {window:?}: relative L2 {e:e}"
        );
        eprintln!("attention hd {hd}, {slots} slots, window {window:?}: relative L2 {e:.1e}");
    }
}

#[test]
fn kernels_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let Some(exe) = driver(dir.path()) else {
        return;
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (dtype, _) in kernels::TYPED {
        for (k, rows) in [
            (dtype.block_size().max(32) * 3, 5),
            (dtype.block_size().max(32) * 8, 3),
        ] {
            let k = if dtype.block_size() == 1 { k + 7 } else { k }; // a tail for plain floats
            let w = random_rows(&mut rng, dtype, k, rows);
            let x: Vec<f32> = (0..k).map(|_| rng.unit()).collect();
            let (deq, dots) = run_driver(&exe, dtype, k, rows, &w, &x);
            let mut want = vec![0.0f32; k * rows];
            dequantize(dtype, &w, &mut want).unwrap();
            for (i, (g, e)) in deq.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                    "{dtype} k={k}: value {i}: kernel {g} vs reference {e}"
                );
            }
            let row_bytes = w.len() / rows;
            for r in 0..rows {
                let row = &w[r * row_bytes..(r + 1) * row_bytes];
                let reference = dot(dtype, row, &x).unwrap();
                let magnitude: f32 = want[r * k..(r + 1) * k]
                    .iter()
                    .zip(&x)
                    .map(|(a, b)| (a * b).abs())
                    .sum();
                assert!(
                    (dots[r] - reference).abs() <= 1e-5 * magnitude + 1e-30,
                    "{dtype} k={k} row {r}: kernel dot {} vs reference {reference} (sum |w x| = {magnitude})",
                    dots[r]
                );
            }
        }
        eprintln!("{dtype}: dequantization bit-exact, dot products within 1e-5");
    }
}
