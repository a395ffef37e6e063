//! Opening a huge checkpoint reads only its metadata (timing lives in `benches/open.rs`).

use lazyforge::source::gguf::{GgufWriter, WriteValue};
use lazyforge::{Checkpoint, DType, Device};

#[test]
fn opening_a_sparse_33_gb_gguf_reads_no_tensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", WriteValue::String("llama".into()))
        .unwrap();
    for i in 0..700 {
        w.add_tensor_placeholder(format!("t{i}"), DType::Q8_0, &[4096, 11008])
            .unwrap();
    }
    w.write_to_path(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 30_000_000_000, "{size}");

    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.tensors().len(), 700);
    let handles: Vec<_> = (0..700)
        .map(|i| ckpt.lazy(&format!("t{i}"), Device::Cpu).unwrap())
        .collect();
    assert!(handles.iter().all(|h| !h.is_materialized()));
    let stats = ckpt.stats();
    assert_eq!(
        (stats.loads, stats.bytes_read, stats.bytes_resident),
        (0, 0, 0)
    );
}
