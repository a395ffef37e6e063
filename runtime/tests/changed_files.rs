//! A checkpoint truncated or rewritten by someone else after it was opened gives errors
//! naming the file, never a SIGBUS (see `source/mapping.rs` for what is checked, and the
//! window that remains).

use lazyforge::source::checkpoint::OpenOptions;
use lazyforge::source::gguf::GgufWriter;
use lazyforge::{Checkpoint, DType, Device, Error};
use std::path::{Path, PathBuf};

/// Values per tensor: 64 KiB of f32, so each tensor spans whole pages.
const N: usize = 16 * 1024;

fn values(seed: usize) -> Vec<f32> {
    (0..N).map(|i| ((i + seed) % 97) as f32 / 8.0).collect()
}

/// A GGUF with tensors `a`, `b`, `c` (f32, in that order in the file) and `q` (Q8_0).
fn write(dir: &Path) -> PathBuf {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "test").unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let bytes: Vec<u8> = values(i).iter().flat_map(|v| v.to_le_bytes()).collect();
        w.add_tensor(*name, DType::F32, &[N / 64, 64], &bytes)
            .unwrap();
    }
    let q = vec![0x3cu8; DType::Q8_0.bytes_for(N).unwrap()];
    w.add_tensor("q", DType::Q8_0, &[N / 64, 64], &q).unwrap();
    let path = dir.join("model.gguf");
    w.write_to_path(&path).unwrap();
    path
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// The load error's innermost reason must be `Changed`, and its message name the file.
fn assert_changed(err: Error, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    let inner = match err {
        Error::Load { reason, .. } => *reason,
        other => other,
    };
    assert!(matches!(inner, Error::Changed { .. }), "{inner:?}");
    assert!(inner.to_string().contains("changed"), "{inner}");
}

#[test]
fn truncated_between_open_and_first_use_is_an_error_naming_the_file() {
    for force_read in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path());
        let ckpt = OpenOptions::new()
            .force_read(force_read)
            .open(&path)
            .unwrap();
        assert_eq!(ckpt.files()[0].is_mapped(), !force_read);
        let first = ckpt.tensor("a").unwrap().offset;
        let len = std::fs::metadata(&path).unwrap().len();
        set_len(&path, first + 10);
        for (name, dtype) in [("a", DType::F32), ("c", DType::F32), ("q", DType::F32)] {
            let t = ckpt.lazy_as(name, Device::Cpu, dtype).unwrap();
            assert_changed(t.get().map(|_| ()).unwrap_err(), &path);
            assert!(!t.is_materialized());
        }
        // Back at its old size (zeros past the cut) it is still refused: it was rewritten.
        set_len(&path, len);
        let c = ckpt.lazy("c", Device::Cpu).unwrap();
        assert_changed(c.get().map(|_| ()).unwrap_err(), &path);
    }
}

#[test]
fn truncated_after_some_weights_are_resident() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let ckpt = Checkpoint::open(&path).unwrap();
    // `a` is resident as a view of the map, `q` as an owned f32 copy (dequantized); `b`
    // and `c` are not loaded.
    let a = ckpt.lazy("a", Device::Cpu).unwrap();
    let q = ckpt.lazy_as("q", Device::Cpu, DType::F32).unwrap();
    let pa = a.get().unwrap();
    assert!(pa.is_zero_copy());
    let pq = q.get().unwrap();
    assert!(!pq.is_zero_copy());
    let q_values = pq.as_f32().unwrap().to_vec();
    drop(pq);

    // Cut the file right after `a`'s data: `a`'s pages are still in the file.
    let info = ckpt.tensor("a").unwrap();
    set_len(&path, info.offset + info.len);

    // The resident ones keep working.
    assert_eq!(pa.as_f32().unwrap(), values(0).as_slice());
    assert_eq!(q.get().unwrap().as_f32().unwrap(), q_values.as_slice());
    drop(pa);
    // The missing ones are errors naming the file.
    for name in ["b", "c"] {
        let t = ckpt.lazy(name, Device::Cpu).unwrap();
        assert_changed(t.get().map(|_| ()).unwrap_err(), &path);
    }
    // A resident one that is evicted is not reloaded from the changed file.
    assert!(a.evict());
    assert_changed(a.get().map(|_| ()).unwrap_err(), &path);
}

#[test]
fn rewritten_in_place_at_the_same_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let ckpt = Checkpoint::open(&path).unwrap();
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // Make sure the time moved even on a filesystem with coarse timestamps.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before + std::time::Duration::from_secs(2))
        .unwrap();
    let q = ckpt.lazy("q", Device::Cpu).unwrap();
    let err = q.get().map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("modified"), "{err}");
    assert_changed(err, &path);
}

#[test]
fn replaced_by_a_rename_keeps_reading_the_file_that_was_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let ckpt = Checkpoint::open(&path).unwrap();
    // The usual way to update a file: write a new one and rename it over the old one.
    let other = dir.path().join("new.gguf");
    std::fs::write(&other, b"GGUF but not really").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let c = ckpt.lazy("c", Device::Cpu).unwrap();
    assert_eq!(c.get().unwrap().as_f32().unwrap(), values(2).as_slice());
}
