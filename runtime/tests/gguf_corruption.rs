//! Corrupt and truncated GGUF files give errors, never panics, hangs or huge allocations.
//!
//! A small valid file is written with [`GgufWriter`]; a walker that knows the format lists
//! every header field's position; then each field is overwritten with hostile values and
//! the file is cut at every byte, and each variant is opened with both map policies.

use lazyforge::dtype::DType;
use lazyforge::source::gguf::{GgufFile, GgufWriter, MetaType, MetaValue, WriteValue};
use lazyforge::source::MapPolicy;
use lazyforge::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const POLICIES: [MapPolicy; 2] = [MapPolicy::Auto, MapPolicy::ForceRead];

/// Runs `body` on its own thread and fails the test if it takes longer than `secs`
/// (a parser that loops on hostile counts shows up here instead of hanging CI).
fn within_seconds(secs: u64, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
    }
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// A valid file: every kind of metadata the walker knows, and four tensors of different
/// dtypes (one quantized with 32-value blocks, one with 256-value blocks) that end at EOF.
fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::with_alignment(32).unwrap();
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("llama.block_count", 1u32).unwrap();
    w.add_metadata("llama.rope.freq_base", 10000.0f32).unwrap();
    w.add_metadata("tokenizer.ggml.add_bos_token", true)
        .unwrap();
    w.add_metadata("tokenizer.ggml.tokens", vec!["a", "bc", "déf"])
        .unwrap();
    w.add_metadata("test.nested", {
        let rows = vec![
            WriteValue::from(vec![1i32, 2]),
            WriteValue::from(vec![3i32]),
        ];
        WriteValue::array(MetaType::Array, rows).unwrap()
    })
    .unwrap();
    w.add_metadata("test.u64", 1u64 << 40).unwrap();
    w.add_tensor(
        "token_embd.weight",
        DType::F32,
        &[4, 8],
        &f32_bytes((0..32).map(|i| i as f32)),
    )
    .unwrap();
    w.add_tensor("blk.0.attn_q.weight", DType::Q4_0, &[2, 64], &[7; 72])
        .unwrap();
    w.add_tensor("blk.0.ffn_up.weight", DType::Q4_K, &[1, 256], &[3; 144])
        .unwrap();
    w.add_tensor("output_norm.weight", DType::F16, &[8], &[1; 16])
        .unwrap();
    w
}

/// What a header field is, so the corruption loop knows which values must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Magic,
    Version,
    TensorCount,
    KvCount,
    KeyLen,
    KeyByte,
    ValueType,
    StrLen,
    StrByte,
    ArrStrByte,
    ArrType,
    ArrLen,
    Scalar,
    Alignment,
    NameLen,
    NameByte,
    NDims,
    Dim,
    TensorType,
    TensorOffset,
}

/// One field of the sample file.
#[derive(Debug, Clone)]
struct Field {
    label: String,
    at: usize,
    width: usize,
    kind: Kind,
}

/// Lists the fields of a valid GGUF file, in order. Test code: it trusts its input.
struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    fields: Vec<Field>,
}

impl Walker<'_> {
    fn field(&mut self, label: String, width: usize, kind: Kind) -> u64 {
        let at = self.pos;
        self.pos += width;
        self.fields.push(Field {
            label,
            at,
            width,
            kind,
        });
        let mut v = [0u8; 8];
        v[..width].copy_from_slice(&self.bytes[at..at + width]);
        u64::from_le_bytes(v)
    }

    fn string(&mut self, label: &str, len_kind: Kind, byte_kind: Kind) -> String {
        let len = self.field(format!("{label}.len"), 8, len_kind) as usize;
        if len > 0 {
            // The first byte stands for all of them.
            self.fields.push(Field {
                label: format!("{label}.byte0"),
                at: self.pos,
                width: 1,
                kind: byte_kind,
            });
        }
        let s = String::from_utf8(self.bytes[self.pos..self.pos + len].to_vec()).unwrap();
        self.pos += len;
        s
    }

    fn value(&mut self, label: &str, ty: u64, key: &str) {
        let scalar = |width| (width, Kind::Scalar);
        let (width, kind) = match ty {
            0 | 1 | 7 => scalar(1),
            2 | 3 => scalar(2),
            4..=6 if key == "general.alignment" => (4, Kind::Alignment),
            4..=6 => scalar(4),
            10..=12 => scalar(8),
            // Strings inside arrays are only located at open, so their bytes are not
            // checked until the array is decoded.
            8 if label.ends_with(']') => {
                self.string(label, Kind::StrLen, Kind::ArrStrByte);
                return;
            }
            8 => {
                self.string(label, Kind::StrLen, Kind::StrByte);
                return;
            }
            9 => {
                let elem = self.field(format!("{label}.elem_type"), 4, Kind::ArrType);
                let len = self.field(format!("{label}.len"), 8, Kind::ArrLen);
                for i in 0..len {
                    self.value(&format!("{label}[{i}]"), elem, key);
                }
                return;
            }
            other => panic!("walker: unknown type {other}"),
        };
        self.field(label.into(), width, kind);
    }

    fn walk(bytes: &[u8]) -> Vec<Field> {
        let mut w = Walker {
            bytes,
            pos: 0,
            fields: Vec::new(),
        };
        w.field("magic".into(), 4, Kind::Magic);
        w.field("version".into(), 4, Kind::Version);
        let n_tensors = w.field("tensor_count".into(), 8, Kind::TensorCount);
        let n_kv = w.field("kv_count".into(), 8, Kind::KvCount);
        for i in 0..n_kv {
            let key = w.string(&format!("kv[{i}].key"), Kind::KeyLen, Kind::KeyByte);
            let ty = w.field(format!("kv[{i}].type"), 4, Kind::ValueType);
            w.value(&format!("kv[{i}]({key})"), ty, &key);
        }
        for i in 0..n_tensors {
            let name = w.string(&format!("tensor[{i}].name"), Kind::NameLen, Kind::NameByte);
            let n_dims = w.field(format!("tensor[{i}]({name}).n_dims"), 4, Kind::NDims);
            for d in 0..n_dims {
                w.field(format!("tensor[{i}]({name}).ne[{d}]"), 8, Kind::Dim);
            }
            w.field(format!("tensor[{i}]({name}).type"), 4, Kind::TensorType);
            w.field(format!("tensor[{i}]({name}).offset"), 8, Kind::TensorOffset);
        }
        w.fields
    }
}

fn read_field(bytes: &[u8], f: &Field) -> u64 {
    let mut v = [0u8; 8];
    v[..f.width].copy_from_slice(&bytes[f.at..f.at + f.width]);
    u64::from_le_bytes(v)
}

fn write_field(bytes: &mut [u8], f: &Field, value: u64) {
    bytes[f.at..f.at + f.width].copy_from_slice(&value.to_le_bytes()[..f.width]);
}

/// Values to try in a field, each with whether the reader must refuse it.
fn hostile_values(f: &Field, original: u64) -> Vec<(u64, bool)> {
    let max = if f.width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * f.width)) - 1
    };
    let mut v: Vec<(u64, bool)> = [0, 1, 2, 3, 5, 7, 31, 32, 33, 0x80, 0xFF, max, max - 1]
        .into_iter()
        .chain([
            original.wrapping_add(1),
            original.wrapping_sub(1),
            original.wrapping_mul(2),
        ])
        .chain(if f.width >= 4 {
            vec![0x7FFF_FFFF, 1 << 16]
        } else {
            vec![]
        })
        .chain(if f.width == 8 {
            vec![1 << 32, 1 << 40, 1 << 62, i64::MAX as u64]
        } else {
            vec![]
        })
        .map(|x| (x & max, false))
        .filter(|&(x, _)| x != original)
        .collect();
    for (x, must_fail) in &mut v {
        let x = *x;
        *must_fail = match f.kind {
            Kind::Magic => true,
            Kind::Version => x != 2 && x != 3,
            Kind::TensorCount | Kind::KvCount => x >= 1 << 32,
            Kind::KeyLen | Kind::StrLen | Kind::NameLen | Kind::ArrLen => x >= 1 << 16,
            Kind::ValueType | Kind::ArrType => x > 12,
            Kind::Alignment => !x.is_power_of_two(),
            Kind::NDims => x == 0 || x > 4,
            Kind::Dim => x == 0 || x >= 1 << 32,
            Kind::TensorType => x > 39,
            // Tensors are packed: any other aligned offset overlaps or runs past the end.
            Kind::TensorOffset => true,
            Kind::KeyByte | Kind::StrByte | Kind::NameByte => x >= 0x80,
            Kind::Scalar | Kind::ArrStrByte => false,
        };
    }
    v
}

/// Opens `path`; on success, reads every tensor and decodes every array (which may fail,
/// but must stay in bounds and not panic).
fn open_and_touch(path: &Path, policy: MapPolicy) -> Result<(), Error> {
    let file = GgufFile::open(path, policy)?;
    let len = file.mapping().len();
    for t in file.tensors() {
        assert!(
            t.offset + t.len <= len,
            "{} reported outside the file",
            t.name
        );
        let mut buf = vec![0u8; t.len as usize];
        file.mapping().read_exact_at(t.offset, &mut buf)?;
    }
    let mut pending: Vec<MetaValue> = file.metadata().iter().map(|(_, v)| v.clone()).collect();
    while let Some(v) = pending.pop() {
        if let MetaValue::Array(arr) = v {
            if let Ok(values) = file.array_values(&arr) {
                pending.extend(values);
            }
        }
    }
    let _ = file.get_string_array("tokenizer.ggml.tokens");
    Ok(())
}

fn open_guarded(path: &Path, policy: MapPolicy, what: &str) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(|| open_and_touch(path, policy)))
        .unwrap_or_else(|_| panic!("{what} ({policy:?}): the reader panicked"))
}

#[test]
fn sample_file_is_valid_and_the_walker_agrees_with_the_reader() {
    let bytes = sample_writer().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.gguf");
    std::fs::write(&path, &bytes).unwrap();
    for policy in POLICIES {
        open_and_touch(&path, policy).unwrap();
        let f = GgufFile::open(&path, policy).unwrap();
        assert_eq!(f.tensors().len(), 4);
        let last = f.tensors().last().unwrap();
        assert_eq!(
            last.offset + last.len,
            bytes.len() as u64,
            "data ends at EOF"
        );
    }
    let fields = Walker::walk(&bytes);
    let last = fields.last().unwrap();
    assert_eq!(last.kind, Kind::TensorOffset);
    let f = GgufFile::open(&path, MapPolicy::Auto).unwrap();
    assert!(last.at + 8 <= f.data_offset() as usize);
}

#[test]
fn truncated_file_is_an_error_not_a_crash_at_every_length() {
    within_seconds(60, || {
        let bytes = sample_writer().to_bytes();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.gguf");
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            for policy in POLICIES {
                let what = format!("file cut to {cut} of {} bytes", bytes.len());
                match open_guarded(&path, policy, &what) {
                    Err(Error::Corrupt { offset, .. }) => {
                        assert!(offset <= bytes.len() as u64, "{what}: offset {offset}")
                    }
                    Err(other) => panic!("{what} ({policy:?}): not a Corrupt error: {other}"),
                    Ok(()) => panic!("{what} ({policy:?}) opened"),
                }
            }
        }
    });
}

#[test]
fn every_header_field_survives_hostile_values() {
    within_seconds(60, || {
        let original = sample_writer().to_bytes();
        let fields = Walker::walk(&original);
        assert!(fields.len() > 60, "walker found {} fields", fields.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gguf");
        let mut refused = 0;
        for field in &fields {
            let was = read_field(&original, field);
            for (value, must_fail) in hostile_values(field, was) {
                let mut bytes = original.clone();
                write_field(&mut bytes, field, value);
                std::fs::write(&path, &bytes).unwrap();
                for policy in POLICIES {
                    let what = format!("{} = {value:#x} (was {was:#x})", field.label);
                    let result = open_guarded(&path, policy, &what);
                    if must_fail {
                        assert!(result.is_err(), "{what} ({policy:?}) was accepted");
                    }
                    refused += usize::from(result.is_err());
                }
            }
        }
        assert!(refused > 500, "only {refused} variants refused");
    });
}

/// The sample file with the field labelled `label` set to `value`, opened.
fn open_with(label: &str, value: u64) -> Error {
    let mut bytes = sample_writer().to_bytes();
    let fields = Walker::walk(&bytes);
    let field = fields
        .iter()
        .find(|f| f.label == label)
        .unwrap_or_else(|| panic!("no field {label}"));
    write_field(&mut bytes, field, value);
    open_bytes(&bytes)
}

fn open_bytes(bytes: &[u8]) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, bytes).unwrap();
    let errors = POLICIES.map(|p| GgufFile::open(&path, p).expect_err("corrupt file opened"));
    assert_eq!(
        errors[0].to_string(),
        errors[1].to_string(),
        "both policies agree"
    );
    errors[0].clone()
}

fn offset_of(label: &str) -> u64 {
    let bytes = sample_writer().to_bytes();
    let fields = Walker::walk(&bytes);
    let f = fields.iter().find(|f| f.label == label).unwrap();
    read_field(&bytes, f)
}

#[test]
fn overlapping_tensors_are_refused_naming_both() {
    let q_offset = offset_of("tensor[1](blk.0.attn_q.weight).offset");
    let e = open_with("tensor[2](blk.0.ffn_up.weight).offset", q_offset);
    let m = e.to_string();
    assert!(matches!(e, Error::Corrupt { .. }), "{m}");
    assert!(m.contains("overlap"), "{m}");
    assert!(
        m.contains("'blk.0.attn_q.weight'") && m.contains("'blk.0.ffn_up.weight'"),
        "{m}"
    );
}

#[test]
fn duplicate_tensor_names_are_refused() {
    // "blk.0.attn_q.weight" -> "blk.0.ffn_up.weight" needs the same length: rename the
    // second tensor's name bytes in place.
    let mut bytes = sample_writer().to_bytes();
    let from = b"blk.0.ffn_up.weight";
    let to = b"blk.0.attn_q.weight";
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
    let m = open_bytes(&bytes).to_string();
    assert!(
        m.contains("duplicate tensor name 'blk.0.attn_q.weight'"),
        "{m}"
    );
}

#[test]
fn duplicate_metadata_keys_are_refused() {
    let mut w = GgufWriter::new();
    w.add_metadata("key.aaa", 1u8).unwrap();
    w.add_metadata("key.bbb", 2u8).unwrap();
    w.add_tensor("t", DType::F32, &[1], &[0; 4]).unwrap();
    let mut bytes = w.to_bytes();
    let at = bytes.windows(7).position(|w| w == b"key.bbb").unwrap();
    bytes[at..at + 7].copy_from_slice(b"key.aaa");
    let m = open_bytes(&bytes).to_string();
    assert!(m.contains("duplicate metadata key 'key.aaa'"), "{m}");
}

#[test]
fn misaligned_tensor_offset_is_refused_naming_the_tensor() {
    let q_offset = offset_of("tensor[1](blk.0.attn_q.weight).offset");
    let m = open_with("tensor[1](blk.0.attn_q.weight).offset", q_offset + 4).to_string();
    assert!(m.contains("'blk.0.attn_q.weight'"), "{m}");
    assert!(m.contains("not a multiple of the alignment 32"), "{m}");
}

#[test]
fn unknown_and_unsupported_dtype_ids_name_the_tensor_and_the_id() {
    let e = open_with("tensor[2](blk.0.ffn_up.weight).type", 1234);
    let m = e.to_string();
    assert!(matches!(e, Error::Corrupt { .. }), "{m}");
    assert!(
        m.contains("'blk.0.ffn_up.weight'") && m.contains("1234"),
        "{m}"
    );

    // IQ2_XXS exists in ggml but not in this build: unsupported, not corrupt.
    let e = open_with("tensor[2](blk.0.ffn_up.weight).type", 16);
    let m = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{m}");
    assert!(
        m.contains("'blk.0.ffn_up.weight'") && m.contains("IQ2_XXS") && m.contains("16"),
        "{m}"
    );
}

#[test]
fn row_not_a_multiple_of_the_block_size_is_refused() {
    // Q4_0 blocks hold 32 values; the tensor's rows (ne[0]) are 64 long.
    let m = open_with("tensor[1](blk.0.attn_q.weight).ne[0]", 48).to_string();
    assert!(m.contains("'blk.0.attn_q.weight'"), "{m}");
    assert!(
        m.contains("row length 48") && m.contains("block size 32"),
        "{m}"
    );
    let m = open_with("tensor[2](blk.0.ffn_up.weight).ne[0]", 128).to_string();
    assert!(
        m.contains("'blk.0.ffn_up.weight'") && m.contains("block size 256"),
        "{m}"
    );
}

#[test]
fn header_level_errors_say_what_is_wrong() {
    let m = open_with("magic", u32::from_le_bytes(*b"GGML") as u64).to_string();
    assert!(m.contains("not a GGUF file"), "{m}");
    let e = open_with("version", 1);
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("version 1"),
        "{e}"
    );
    let e = open_with("version", 3u32.swap_bytes() as u64);
    assert!(e.to_string().contains("big-endian"), "{e}");
    let m = open_with("tensor_count", u64::MAX).to_string();
    assert!(
        m.contains("tensor count") && m.contains("cannot fit"),
        "{m}"
    );
    let m = open_with("kv_count", 1 << 40).to_string();
    assert!(
        m.contains("metadata count") && m.contains("cannot fit"),
        "{m}"
    );
    let m = open_with("kv[0](general.alignment)", 48).to_string();
    assert!(
        m.contains("general.alignment") && m.contains("power of two"),
        "{m}"
    );
    let m = open_with("kv[5](tokenizer.ggml.tokens).len", u64::MAX).to_string();
    assert!(
        m.contains("tokenizer.ggml.tokens") && m.contains("cannot fit"),
        "{m}"
    );
    let m = open_with("kv[6](test.nested).elem_type", 99).to_string();
    assert!(m.contains("unknown value type id 99"), "{m}");
    let m = open_with("tensor[0](token_embd.weight).n_dims", 5).to_string();
    assert!(m.contains("'token_embd.weight' has 5 dimensions"), "{m}");
    let m = open_with("tensor[0](token_embd.weight).ne[1]", 0).to_string();
    assert!(
        m.contains("'token_embd.weight'") && m.contains("size 0"),
        "{m}"
    );
    let m = open_with("tensor[3](output_norm.weight).offset", 1 << 20).to_string();
    assert!(
        m.contains("'output_norm.weight'") && m.contains("past the end"),
        "{m}"
    );
}

#[test]
fn invalid_utf8_in_a_key_is_an_error_naming_its_offset() {
    let bytes = sample_writer().to_bytes();
    let fields = Walker::walk(&bytes);
    let f = fields
        .iter()
        .find(|f| f.label == "kv[1].key.byte0")
        .unwrap();
    let mut bad = bytes.clone();
    bad[f.at] = 0xFF;
    match open_bytes(&bad) {
        Error::Corrupt { offset, reason, .. } => {
            assert_eq!(offset, f.at as u64);
            assert!(reason.contains("UTF-8"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn invalid_utf8_in_an_array_string_is_found_when_the_array_is_decoded() {
    let bytes = sample_writer().to_bytes();
    let fields = Walker::walk(&bytes);
    let f = fields
        .iter()
        .find(|f| f.label == "kv[5](tokenizer.ggml.tokens)[1].byte0")
        .unwrap();
    let mut bad = bytes.clone();
    bad[f.at] = 0xFF;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, &bad).unwrap();
    for policy in POLICIES {
        let file = GgufFile::open(&path, policy).expect("arrays are only located at open");
        match file.get_string_array("tokenizer.ggml.tokens") {
            Err(Error::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, f.at as u64);
                assert!(
                    reason.contains("UTF-8") && reason.contains("element 1"),
                    "{reason}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
