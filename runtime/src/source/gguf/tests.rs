//! Round trips through [`GgufWriter`] and [`GgufFile`].

use super::*;
use std::time::Instant;

const POLICIES: [MapPolicy; 2] = [MapPolicy::Auto, MapPolicy::ForceRead];

fn write(w: &GgufWriter) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    w.write_to_path(&path).unwrap();
    (dir, path)
}

fn bytes_for(dtype: DType, shape: &[usize], seed: u8) -> Vec<u8> {
    let n = dtype.bytes_for(shape.iter().product()).unwrap();
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn all_scalars() -> Vec<(&'static str, WriteValue)> {
    vec![
        ("t.u8", WriteValue::U8(200)),
        ("t.i8", WriteValue::I8(-100)),
        ("t.u16", WriteValue::U16(60_000)),
        ("t.i16", WriteValue::I16(-30_000)),
        ("t.u32", WriteValue::U32(4_000_000_000)),
        ("t.i32", WriteValue::I32(-2_000_000_000)),
        ("t.f32", WriteValue::F32(1.5e-5)),
        ("t.bool", WriteValue::Bool(true)),
        ("t.string", WriteValue::String("héllo\n\"wörld\"".into())),
        ("t.u64", WriteValue::U64(u64::MAX)),
        ("t.i64", WriteValue::I64(i64::MIN)),
        ("t.f64", WriteValue::F64(-2.5e300)),
    ]
}

#[test]
fn every_metadata_type_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in all_scalars() {
        w.add_metadata(k, v).unwrap();
    }
    for (k, v) in all_scalars() {
        // An array of each scalar type, two elements.
        let items = vec![v.clone(), v.clone()];
        w.add_array(format!("{k}.array"), v.meta_type(), items)
            .unwrap();
    }
    let nested = WriteValue::array(
        MetaType::Array,
        vec![
            WriteValue::from(vec![1i32, 2, 3]),
            WriteValue::from(Vec::<i32>::new()),
            WriteValue::from(vec!["a", "bc"]),
            WriteValue::array(MetaType::Array, vec![WriteValue::from(vec![7u8])]).unwrap(),
        ],
    )
    .unwrap();
    w.add_metadata("t.nested", nested.clone()).unwrap();
    w.add_array("t.empty", MetaType::String, vec![]).unwrap();
    w.add_tensor("x", DType::F32, &[1], &[0; 4]).unwrap();
    let (_dir, path) = write(&w);

    for policy in POLICIES {
        let f = GgufFile::open(&path, policy).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(f.alignment(), 32);
        let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys.len(), 12 + 12 + 2);
        assert_eq!(keys[0], "t.u8");
        assert_eq!(keys[25], "t.empty");
        for (k, v) in all_scalars() {
            let read = f.get(k).unwrap();
            assert_eq!(f.to_write_value(read).unwrap(), v, "{k}");
            assert_eq!(read.meta_type(), v.meta_type());
            let arr = f.get(&format!("{k}.array")).unwrap();
            let arr_w = f.to_write_value(arr).unwrap();
            assert_eq!(
                arr_w,
                WriteValue::array(v.meta_type(), vec![v.clone(), v]).unwrap()
            );
            assert_eq!(arr.type_name(), "array");
        }
        assert_eq!(
            f.to_write_value(f.get("t.nested").unwrap()).unwrap(),
            nested
        );
        let MetaValue::Array(outer) = f.get("t.nested").unwrap() else {
            panic!("t.nested is not an array")
        };
        assert_eq!(
            (outer.elem_type(), outer.len(), outer.depth()),
            (MetaType::Array, 4, 0)
        );
        let inner = f.array_values(outer).unwrap();
        let first = inner[0].as_array().unwrap();
        assert_eq!(first.depth(), 1);
        assert_eq!(
            f.array_values(first).unwrap(),
            vec![MetaValue::I32(1), MetaValue::I32(2), MetaValue::I32(3)]
        );
        assert!(f.get_string_array("t.empty").unwrap().is_empty());
    }
}

#[test]
fn typed_getters_convert_and_explain_mismatches() {
    let mut w = GgufWriter::new();
    w.add_metadata("u8", 7u8).unwrap();
    w.add_metadata("neg", -1i32).unwrap();
    w.add_metadata("big", u64::MAX).unwrap();
    w.add_metadata("f64", 0.25f64).unwrap();
    w.add_metadata("flag", false).unwrap();
    w.add_metadata("name", "smol").unwrap();
    w.add_metadata("tokens", vec!["a", "b", "ü"]).unwrap();
    w.add_metadata("scores", vec![0.5f32, -1.0]).unwrap();
    w.add_metadata("types", vec![1i32, 2, 3]).unwrap();
    w.add_metadata("small", vec![1u8, 255]).unwrap();
    w.add_metadata("wide", vec![1u64 << 40]).unwrap();
    let (_dir, path) = write(&w);
    let f = GgufFile::open(&path, MapPolicy::Auto).unwrap();

    assert_eq!(f.get_u64("u8").unwrap(), 7);
    assert_eq!(f.get_u32("u8").unwrap(), 7);
    assert_eq!(f.get_u64("big").unwrap(), u64::MAX);
    assert_eq!(f.get_f32("f64").unwrap(), 0.25);
    assert!(!f.get_bool("flag").unwrap());
    assert_eq!(f.get_str("name").unwrap(), "smol");
    assert_eq!(f.get_string_array("tokens").unwrap(), ["a", "b", "ü"]);
    assert_eq!(f.get_f32_array("scores").unwrap(), [0.5, -1.0]);
    assert_eq!(f.get_i32_array("types").unwrap(), [1, 2, 3]);
    assert_eq!(f.get_i32_array("small").unwrap(), [1, 255]);

    let message = |r: Result<()>| match r {
        Err(e @ Error::Metadata { .. }) => e.to_string(),
        other => panic!("expected a metadata error, got {other:?}"),
    };
    let m = message(f.get_u64("missing").map(drop));
    assert!(m.contains("'missing'") && m.contains("not present"), "{m}");
    let m = message(f.get_u64("neg").map(drop));
    assert!(m.contains("'neg'") && m.contains("unsigned"), "{m}");
    let m = message(f.get_u32("big").map(drop));
    assert!(m.contains("u32"), "{m}");
    let m = message(f.get_str("u8").map(drop));
    assert!(m.contains("expected a string"), "{m}");
    let m = message(f.get_string_array("types").map(drop));
    assert!(m.contains("array of i32"), "{m}");
    let m = message(f.get_f32("name").map(drop));
    assert!(m.contains("found a string"), "{m}");
    let m = message(f.get_i32_array("wide").map(drop));
    assert!(m.contains("does not fit in i32"), "{m}");
    let m = message(f.get_bool("tokens").map(drop));
    assert!(m.contains("array of string"), "{m}");
}

#[test]
fn every_dtype_round_trips_with_shape_outermost_first() {
    let mut w = GgufWriter::new();
    let mut expected = Vec::new();
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        let shape = [3, 2, dtype.block_size() * 2];
        let data = bytes_for(dtype, &shape, i as u8);
        let name = format!("t.{}", dtype.name());
        w.add_tensor(&name, dtype, &shape, &data).unwrap();
        expected.push((name, dtype, shape.to_vec(), data));
    }
    w.add_tensor("vector", DType::F16, &[5], &[9; 10]).unwrap();
    expected.push(("vector".into(), DType::F16, vec![5], vec![9; 10]));
    let (_dir, path) = write(&w);
    assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes());

    for policy in POLICIES {
        let f = GgufFile::open(&path, policy).unwrap();
        assert_eq!(f.tensors().len(), expected.len());
        assert_eq!(f.data_offset() % 32, 0);
        for (t, (name, dtype, shape, data)) in f.tensors().iter().zip(&expected) {
            assert_eq!((&t.name, t.dtype, &t.shape), (name, *dtype, shape));
            assert_eq!(t.len as usize, data.len());
            assert_eq!(t.offset % 32, 0);
            assert_eq!(t.file, 0);
            let mut buf = vec![0; data.len()];
            f.mapping().read_exact_at(t.offset, &mut buf).unwrap();
            assert_eq!(&buf, data, "{name}");
            assert_eq!(f.tensor(name), Some(t));
        }
        let last = f.tensors().last().unwrap();
        assert_eq!(
            last.offset + last.len,
            f.mapping().len(),
            "no trailing padding"
        );
    }
}

#[test]
fn version_2_and_custom_alignment_are_read() {
    for alignment in [1u32, 8, 64, 4096] {
        let mut w = GgufWriter::with_alignment(alignment).unwrap();
        w.set_version(2).unwrap();
        w.add_tensor("a", DType::F32, &[3], &[1; 12]).unwrap();
        w.add_tensor("b", DType::Q8_0, &[32], &[2; 34]).unwrap();
        let (_dir, path) = write(&w);
        let f = GgufFile::open(&path, MapPolicy::ForceRead).unwrap();
        assert_eq!(f.version(), 2);
        assert_eq!(f.alignment(), alignment as u64);
        assert_eq!(f.get_u32(ALIGNMENT_KEY).unwrap(), alignment);
        for t in f.tensors() {
            assert_eq!(t.offset % alignment as u64, 0);
        }
        assert_eq!(f.data_offset() % alignment as u64, 0);
    }
    assert!(GgufWriter::with_alignment(0).is_err());
    assert!(GgufWriter::with_alignment(48).is_err());
    assert!(GgufWriter::new()
        .add_metadata(ALIGNMENT_KEY, 64u32)
        .is_err());
}

#[test]
fn forced_reads_cross_read_ahead_windows() {
    // 30 000 strings (~600 KiB) and one string longer than a window: the unmapped cursor
    // refills several times and once with a field larger than its usual chunk.
    let tokens: Vec<String> = (0..30_000).map(|i| format!("token-{i:08}")).collect();
    let long = "x".repeat(200_000);
    let mut w = GgufWriter::new();
    w.add_metadata("tokens", tokens.clone()).unwrap();
    w.add_metadata("long", long.as_str()).unwrap();
    w.add_metadata("after", 42u32).unwrap();
    w.add_tensor("t", DType::F32, &[1], &[0; 4]).unwrap();
    let (_dir, path) = write(&w);
    for policy in POLICIES {
        let f = GgufFile::open(&path, policy).unwrap();
        assert_eq!(f.get_str("long").unwrap(), long);
        assert_eq!(f.get_u32("after").unwrap(), 42);
        assert_eq!(f.get_string_array("tokens").unwrap(), tokens);
        let arr = f.get("tokens").unwrap().as_array().unwrap();
        assert_eq!(arr.len(), 30_000);
        assert_eq!(
            arr.byte_len(),
            tokens.iter().map(|t| 8 + t.len() as u64).sum::<u64>()
        );
    }
}

#[test]
fn writer_refuses_inconsistent_tensors_and_values() {
    let mut w = GgufWriter::new();
    assert!(
        w.add_tensor("a", DType::F32, &[2], &[0; 4]).is_err(),
        "wrong byte count"
    );
    assert!(
        w.add_tensor("a", DType::Q4_0, &[2, 16], &[0; 18]).is_err(),
        "partial block"
    );
    assert!(
        w.add_tensor("a", DType::F32, &[], &[]).is_err(),
        "no dimensions"
    );
    assert!(
        w.add_tensor("a", DType::F32, &[1, 1, 1, 1, 1], &[0; 4])
            .is_err(),
        "5 dims"
    );
    assert!(
        w.add_tensor("a", DType::F32, &[0], &[]).is_err(),
        "zero dim"
    );
    w.add_tensor("a", DType::F32, &[1], &[0; 4]).unwrap();
    assert!(
        w.add_tensor("a", DType::F32, &[1], &[0; 4]).is_err(),
        "duplicate name"
    );
    w.add_metadata("k", 1u8).unwrap();
    assert!(w.add_metadata("k", 2u8).is_err(), "duplicate key");
    let mixed = WriteValue::Array {
        elem_type: MetaType::U8,
        items: vec![WriteValue::U8(1), WriteValue::I8(1)],
    };
    assert!(w.add_metadata("mixed", mixed).is_err());
}

#[test]
fn huge_sparse_file_is_written_and_opened_instantly() {
    // ~31 GB of Q8_0 placeholders across 700 tensors: the file is a hole, not zeros.
    let start = Instant::now();
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama").unwrap();
    for i in 0..700 {
        w.add_tensor_placeholder(format!("blk.{i}.ffn.weight"), DType::Q8_0, &[5120, 8192])
            .unwrap();
    }
    let (_dir, path) = write(&w);
    let f = GgufFile::open(&path, MapPolicy::Auto).unwrap();
    assert_eq!(f.tensors().len(), 700);
    assert!(f.mapping().len() > 30_000_000_000);
    let last = f.tensors().last().unwrap();
    assert_eq!(last.offset + last.len, f.mapping().len());
    let mut buf = [1u8; 34];
    f.mapping().read_exact_at(last.offset, &mut buf).unwrap();
    assert_eq!(buf, [0; 34]);
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
}

#[test]
fn forged_counts_in_a_huge_file_fail_fast_without_reserving_memory() {
    // A 31 GB sparse file lets a billion-entry count pass the "fits in the file" check; the
    // parser must still not reserve memory for a billion entries up front.
    use std::io::{Seek, SeekFrom, Write};
    let mut w = GgufWriter::new();
    for i in 0..700 {
        w.add_tensor_placeholder(format!("t{i}"), DType::Q8_0, &[5120, 8192])
            .unwrap();
    }
    let (_dir, path) = write(&w);
    for (field_at, count) in [(8u64, 900_000_000u64), (16, 2_000_000_000)] {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(8)).unwrap();
        file.write_all(&700u64.to_le_bytes()).unwrap();
        file.write_all(&0u64.to_le_bytes()).unwrap();
        file.seek(SeekFrom::Start(field_at)).unwrap();
        file.write_all(&count.to_le_bytes()).unwrap();
        drop(file);
        for policy in POLICIES {
            let start = Instant::now();
            let err = GgufFile::open(&path, policy).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
        }
    }
}
