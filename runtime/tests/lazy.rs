//! Exactly-once materialization, shared failures, retry, eviction and counters.

use lazyforge::source::checkpoint::OpenOptions;
use lazyforge::{Checkpoint, DType, Device, Error};
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

const N: usize = 64 * 48;

fn values() -> Vec<f32> {
    (0..N).map(|i| (i as f32 * 0.37).sin()).collect()
}

/// Writes a safetensors file with an f32 tensor `w` [64, 48] and an f16 tensor `h` [48].
fn write_checkpoint(dir: &Path) -> PathBuf {
    let w: Vec<u8> = values().iter().flat_map(|v| v.to_le_bytes()).collect();
    let h: Vec<u8> = (0..48)
        .flat_map(|i| half::f16::from_f32(i as f32 / 4.0).to_le_bytes())
        .collect();
    let path = dir.join("model.safetensors");
    let tensors = vec![
        ("w", TensorView::new(Dtype::F32, vec![64, 48], &w).unwrap()),
        ("h", TensorView::new(Dtype::F16, vec![48], &h).unwrap()),
    ];
    safetensors::serialize_to_file(tensors, None, &path).unwrap();
    path
}

#[test]
fn open_and_lazy_handles_read_no_tensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::open(write_checkpoint(dir.path())).unwrap();
    let w = ckpt.lazy("w", Device::Cpu).unwrap();
    assert!(!w.is_materialized());
    assert_eq!(w.shape(), &[64, 48]);
    assert_eq!(ckpt.stats().bytes_read, 0);
    assert_eq!(ckpt.stats().loads, 0);
}

#[test]
fn materializes_once_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::open(write_checkpoint(dir.path())).unwrap();
    let w = Arc::new(ckpt.lazy("w", Device::Cpu).unwrap());
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (w, barrier) = (Arc::clone(&w), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let t = w.get().unwrap();
                (
                    &*t as *const lazyforge::Tensor as usize,
                    t.as_f32().unwrap().to_vec(),
                )
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let expected = values();
    for (addr, data) in &results {
        assert_eq!(*addr, results[0].0, "every caller sees the one tensor");
        assert_eq!(data, &expected);
    }
    let stats = w.stats();
    assert_eq!(stats.loads, 1, "exactly one load: {stats:?}");
    assert_eq!(stats.hits, 63);
    assert_eq!(stats.bytes_read, (N * 4) as u64);
    assert_eq!(ckpt.stats().loads, 1);
}

#[test]
fn failed_load_errors_for_all_and_a_later_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_checkpoint(dir.path());
    let original = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Positioned reads, so that truncating the file makes the reads themselves fail (a
    // mapped file is refused before reading: see tests/changed_files.rs).
    let ckpt = OpenOptions::new().force_read(true).open(&path).unwrap();
    let w = Arc::new(ckpt.lazy("w", Device::Cpu).unwrap());

    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (w, barrier) = (Arc::clone(&w), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                w.get().map(|_| ()).unwrap_err()
            })
        })
        .collect();
    for t in threads {
        let err = t.join().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, Error::Load { .. }), "{err:?}");
        assert!(
            msg.contains("'w'") && msg.contains("model.safetensors"),
            "{msg}"
        );
    }
    assert!(!w.is_materialized());
    assert_eq!(w.stats().loads, 0);
    assert!(w.stats().failures >= 1);

    // Back as it was when opened, time included (a file rewritten since it was opened is
    // refused), so the retry succeeds.
    std::fs::write(&path, &original).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(w.get().unwrap().as_f32().unwrap(), values().as_slice());
    assert_eq!(w.stats().loads, 1);
}

#[test]
fn mapped_weights_are_zero_copy_and_conversions_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_checkpoint(dir.path());
    let mapped = Checkpoint::open(&path).unwrap();
    let read = OpenOptions::new().force_read(true).open(&path).unwrap();

    let w = mapped.lazy("w", Device::Cpu).unwrap();
    let t = w.get().unwrap();
    // The header length keeps f32 data 4-byte aligned in files written by the crate.
    assert!(t.is_zero_copy());
    let w2 = read.lazy("w", Device::Cpu).unwrap();
    assert!(!w2.get().unwrap().is_zero_copy());
    assert_eq!(w2.get().unwrap().as_f32().unwrap(), t.as_f32().unwrap());

    let h = mapped.lazy_as("h", Device::Cpu, DType::F32).unwrap();
    let ht = h.get().unwrap();
    assert_eq!(ht.dtype(), DType::F32);
    assert!(!ht.is_zero_copy());
    assert_eq!(ht.as_f32().unwrap()[5], 1.25);
    assert_eq!(h.stats().bytes_resident, 48 * 4);
    assert_eq!(h.stats().bytes_read, 48 * 2);
}

#[test]
fn evict_frees_and_the_next_access_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::open(write_checkpoint(dir.path())).unwrap();
    let w = ckpt.lazy("w", Device::Cpu).unwrap();
    w.get().unwrap();
    assert_eq!(ckpt.stats().bytes_resident, (N * 4) as u64);
    assert!(w.evict());
    assert!(!w.is_materialized());
    assert!(!w.evict());
    assert_eq!(ckpt.stats().bytes_resident, 0);
    w.get().unwrap();
    assert_eq!(w.stats().loads, 2);
}

#[test]
fn unavailable_devices_and_conversions_fail_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::open(write_checkpoint(dir.path())).unwrap();
    let err = ckpt.lazy("w", Device::Cuda(0)).unwrap_err();
    assert!(err.to_string().contains("cuda:0"), "{err}");
    let err = ckpt.lazy_as("w", Device::Cpu, DType::Q8_0).unwrap_err();
    assert!(err.to_string().contains("'w'"), "{err}");
    let err = ckpt.lazy("nope", Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }), "{err}");
    assert_eq!(ckpt.stats().bytes_read, 0);
}
