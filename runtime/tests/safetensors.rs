//! safetensors single files, shards, hostile indexes, and pickle refusal.

use lazyforge::source::checkpoint::Format;
use lazyforge::{Checkpoint, DType, Device, Error};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

fn f32_bytes(n: usize, seed: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (seed + i as f32).to_le_bytes())
        .collect()
}

fn write(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn single_file_lists_tensors_and_loads_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.safetensors");
    let bf: Vec<u8> = (0..6)
        .flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes())
        .collect();
    write(
        &p,
        &[
            ("a.weight", Dtype::F32, vec![2, 3], f32_bytes(6, 1.0)),
            ("b.weight", Dtype::BF16, vec![6], bf),
            ("ids", Dtype::I64, vec![2], vec![0; 16]),
        ],
    );
    // Opening the directory finds model.safetensors.
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.format(), Format::Safetensors);
    assert_eq!(ckpt.tensors().len(), 2);
    let a = ckpt.tensor("a.weight").unwrap();
    assert_eq!(
        (a.dtype, a.shape.as_slice(), a.len),
        (DType::F32, &[2, 3][..], 24)
    );
    let b = ckpt.lazy_as("b.weight", Device::Cpu, DType::F32).unwrap();
    assert_eq!(
        b.get().unwrap().as_f32().unwrap(),
        &[0., 1., 2., 3., 4., 5.]
    );
    // An integer tensor is listed as not loadable, and asking for it says why.
    let err = ckpt.tensor("ids").unwrap_err();
    assert!(err.to_string().contains("I64"), "{err}");
}

fn write_shards(dir: &Path, index: &str) {
    write(
        &dir.join("model-00001-of-00002.safetensors"),
        &[("x", Dtype::F32, vec![4], f32_bytes(4, 0.0))],
    );
    write(
        &dir.join("model-00002-of-00002.safetensors"),
        &[("y", Dtype::F32, vec![2, 2], f32_bytes(4, 10.0))],
    );
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
}

#[test]
fn sharded_checkpoint_reads_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    write_shards(
        dir.path(),
        r#"{"metadata": {"total_size": 32}, "weight_map": {
            "x": "model-00001-of-00002.safetensors",
            "y": "model-00002-of-00002.safetensors"}}"#,
    );
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.format(), Format::ShardedSafetensors);
    assert_eq!(ckpt.files().len(), 2);
    assert_eq!(ckpt.tensor("y").unwrap().file, 1);
    let y = ckpt.lazy("y", Device::Cpu).unwrap();
    assert_eq!(y.get().unwrap().as_f32().unwrap(), &[10., 11., 12., 13.]);
}

#[test]
fn shard_names_that_escape_the_directory_are_refused() {
    for bad in [
        "../model.safetensors",
        "/etc/passwd",
        "sub/../../x.safetensors",
        "./../x.safetensors",
        "..",
        "",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let index = format!(r#"{{"weight_map": {{"x": {bad:?}}}}}"#);
        write_shards(dir.path(), &index);
        let err = Checkpoint::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("refused"), "{bad}: {err}");
    }
}

/// How a Hugging Face cache snapshot looks: the snapshot directory holds symlinks to
/// content-addressed blobs in a sibling directory. Shard names are checked as names (no
/// `..`, not absolute), not by where a link points, so the links are followed.
#[cfg(unix)]
#[test]
fn symlinked_shards_are_followed_like_a_hub_cache_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let blobs = root.path().join("blobs");
    let snapshot = root.path().join("snapshots").join("abc123");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    write_shards(&blobs, "{}");
    for (i, name) in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    .iter()
    .enumerate()
    {
        let blob = blobs.join(format!("sha256-{i}"));
        std::fs::rename(blobs.join(name), &blob).unwrap();
        // Relative links up and across, as the hub's cache writes them.
        std::os::unix::fs::symlink(
            Path::new("../..").join("blobs").join(format!("sha256-{i}")),
            snapshot.join(name),
        )
        .unwrap();
    }
    std::fs::write(
        snapshot.join("model.safetensors.index.json"),
        r#"{"weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let ckpt = Checkpoint::open(&snapshot).unwrap();
    let y = ckpt.lazy("y", Device::Cpu).unwrap();
    assert_eq!(y.get().unwrap().as_f32().unwrap(), &[10., 11., 12., 13.]);
    // A name that climbs out is still refused, even where the target exists.
    std::fs::write(
        snapshot.join("model.safetensors.index.json"),
        r#"{"weight_map": {"x": "../abc123/model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = Checkpoint::open(&snapshot).unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[test]
fn index_naming_a_tensor_missing_from_its_shard_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_shards(
        dir.path(),
        r#"{"weight_map": {"x": "model-00002-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}"#,
    );
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("'x'"), "{err}");
}

#[test]
fn pickle_checkpoints_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pytorch_model.bin", "model.pt", "weights.pth"] {
        let p = dir.path().join(name);
        std::fs::write(&p, b"\x80\x02}q\x00.").unwrap();
        let err = Checkpoint::open(&p).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Unsupported { .. }));
        assert!(
            msg.contains("arbitrary code") && msg.contains("safetensors"),
            "{msg}"
        );
    }
    // A directory with only a pickle says the same.
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("arbitrary code"), "{err}");
    // A pickle under an innocent name is recognised by its first bytes.
    let p = dir.path().join("weights.data");
    std::fs::write(&p, b"PK\x03\x04rest-of-zip").unwrap();
    assert!(Checkpoint::open(&p)
        .unwrap_err()
        .to_string()
        .contains("arbitrary code"));
}

#[test]
fn corrupt_headers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.safetensors");
    write(&p, &[("a", Dtype::F32, vec![8], f32_bytes(8, 0.0))]);
    let good = std::fs::read(&p).unwrap();
    for cut in 0..good.len() {
        std::fs::write(&p, &good[..cut]).unwrap();
        assert!(Checkpoint::open(&p).is_err(), "cut at {cut} opened");
    }
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &huge).unwrap();
    assert!(Checkpoint::open(&p).is_err());
    let mut garbage = good.clone();
    let colon = 8 + good[8..].iter().position(|&b| b == b':').unwrap();
    garbage[colon] = b'!';
    std::fs::write(&p, &garbage).unwrap();
    assert!(Checkpoint::open(&p).is_err());
}
