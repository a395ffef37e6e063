//! Writing GGUF files: synthetic checkpoints for tests, and export.
//!
//! Tensors declared with [`GgufWriter::add_tensor_placeholder`] get space but no bytes: the
//! file is extended with `set_len`, which leaves a hole on filesystems with sparse files, so
//! a header for a 30 GB model with hundreds of tensors is written in milliseconds.

use super::reader::MAX_ARRAY_DEPTH;
use super::value::MetaType;
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// An owned metadata value to write. Unlike [`MetaValue`](super::MetaValue), whose arrays
/// only point into a file, arrays here carry their elements.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteValue {
    /// Unsigned 8-bit integer.
    U8(u8),
    /// Signed 8-bit integer.
    I8(i8),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Signed 16-bit integer.
    I16(i16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Signed 32-bit integer.
    I32(i32),
    /// Single-precision float.
    F32(f32),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Signed 64-bit integer.
    I64(i64),
    /// Double-precision float.
    F64(f64),
    /// An array whose elements all have type `elem_type` (arrays may nest).
    Array {
        /// The type of every element (stated, so that an empty array has one).
        elem_type: MetaType,
        /// The elements.
        items: Vec<WriteValue>,
    },
}

impl WriteValue {
    /// An array of `items`, each of which must have type `elem_type`.
    pub fn array(elem_type: MetaType, items: Vec<WriteValue>) -> Result<WriteValue> {
        let value = WriteValue::Array { elem_type, items };
        value.check(0)?;
        Ok(value)
    }

    /// The value's GGUF type.
    pub fn meta_type(&self) -> MetaType {
        match self {
            WriteValue::U8(_) => MetaType::U8,
            WriteValue::I8(_) => MetaType::I8,
            WriteValue::U16(_) => MetaType::U16,
            WriteValue::I16(_) => MetaType::I16,
            WriteValue::U32(_) => MetaType::U32,
            WriteValue::I32(_) => MetaType::I32,
            WriteValue::F32(_) => MetaType::F32,
            WriteValue::Bool(_) => MetaType::Bool,
            WriteValue::String(_) => MetaType::String,
            WriteValue::U64(_) => MetaType::U64,
            WriteValue::I64(_) => MetaType::I64,
            WriteValue::F64(_) => MetaType::F64,
            WriteValue::Array { .. } => MetaType::Array,
        }
    }

    /// Checks that every array's elements have its declared type and that arrays nest no
    /// deeper than a reader accepts.
    fn check(&self, depth: u32) -> Result<()> {
        if let WriteValue::Array { elem_type, items } = self {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::Invalid(format!(
                    "GGUF arrays may nest at most {MAX_ARRAY_DEPTH} levels deep"
                )));
            }
            for (i, item) in items.iter().enumerate() {
                if item.meta_type() != *elem_type {
                    return Err(Error::Invalid(format!(
                        "array of {elem_type}: element {i} is a {}",
                        item.meta_type()
                    )));
                }
                item.check(depth + 1)?;
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            WriteValue::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::Bool(v) => out.push(u8::from(*v)),
            WriteValue::String(s) => encode_str(out, s),
            WriteValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            WriteValue::Array { elem_type, items } => {
                out.extend_from_slice(&elem_type.id().to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

macro_rules! write_value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for WriteValue {
            fn from(v: $t) -> WriteValue {
                WriteValue::$variant(v.into())
            }
        }

        impl From<Vec<$t>> for WriteValue {
            fn from(items: Vec<$t>) -> WriteValue {
                WriteValue::Array {
                    elem_type: MetaType::$variant,
                    items: items.into_iter().map(WriteValue::from).collect(),
                }
            }
        }
    )*};
}

write_value_from!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, &str => String, u64 => U64, i64 => I64, f64 => F64,
);

/// One tensor to write; `data` is `None` for a placeholder.
#[derive(Debug)]
struct PendingTensor {
    name: String,
    dtype: DType,
    /// Outermost first, as callers give it.
    shape: Vec<usize>,
    len: u64,
    data: Option<Vec<u8>>,
}

/// Builds a GGUF file: metadata, then tensors, written in the order they were added.
///
/// ```
/// # fn main() -> lazyforge::Result<()> {
/// use lazyforge::dtype::DType;
/// use lazyforge::source::gguf::{GgufFile, GgufWriter};
/// use lazyforge::source::MapPolicy;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("tiny.gguf");
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", "llama")?;
/// let ones: Vec<u8> = [1.0f32; 6].iter().flat_map(|x| x.to_le_bytes()).collect();
/// w.add_tensor("w", DType::F32, &[2, 3], &ones)?;
/// w.write_to_path(&path)?;
///
/// let file = GgufFile::open(&path, MapPolicy::Auto)?;
/// assert_eq!(file.get_str("general.architecture")?, "llama");
/// assert_eq!(file.tensors()[0].shape, vec![2, 3]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, WriteValue)>,
    tensors: Vec<PendingTensor>,
    keys: HashSet<String>,
    names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// A GGUF v3 writer with the default alignment (32) and no `general.alignment` key.
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
            keys: HashSet::new(),
            names: HashSet::new(),
        }
    }

    /// A writer whose data alignment is `alignment` (a nonzero power of two), recorded as
    /// the first metadata entry, `general.alignment` (u32).
    pub fn with_alignment(alignment: u32) -> Result<GgufWriter> {
        if !alignment.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "GGUF alignment must be a nonzero power of two, not {alignment}"
            )));
        }
        let mut w = GgufWriter::new();
        w.alignment = alignment.into();
        w.keys.insert(ALIGNMENT_KEY.to_owned());
        w.metadata
            .push((ALIGNMENT_KEY.to_owned(), WriteValue::U32(alignment)));
        Ok(w)
    }

    /// Sets the format version written in the header: 3 (the default) or 2, which has the
    /// same little-endian layout.
    pub fn set_version(&mut self, version: u32) -> Result<()> {
        if !(2..=3).contains(&version) {
            return Err(Error::Invalid(format!(
                "can write GGUF versions 2 and 3, not {version}"
            )));
        }
        self.version = version;
        Ok(())
    }

    /// The data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Adds a metadata entry. Keys must be unique; set the alignment with
    /// [`GgufWriter::with_alignment`], not through this.
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<WriteValue>,
    ) -> Result<()> {
        let key = key.into();
        let value = value.into();
        if key == ALIGNMENT_KEY && !self.keys.contains(ALIGNMENT_KEY) {
            return Err(Error::Invalid(format!(
                "set '{ALIGNMENT_KEY}' with GgufWriter::with_alignment"
            )));
        }
        if self.keys.contains(&key) {
            return Err(Error::Invalid(format!("metadata key '{key}' added twice")));
        }
        value.check(0)?;
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds an array entry: `items` must all have type `elem_type`.
    pub fn add_array(
        &mut self,
        key: impl Into<String>,
        elem_type: MetaType,
        items: Vec<WriteValue>,
    ) -> Result<()> {
        let value = WriteValue::array(elem_type, items)?;
        self.add_metadata(key, value)
    }

    /// Adds a tensor of `shape` (outermost first) whose bytes are `data`, which must be
    /// exactly the size `dtype` and `shape` call for.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: &[usize],
        data: &[u8],
    ) -> Result<()> {
        let name = name.into();
        let len = self.check_tensor(&name, dtype, shape)?;
        if data.len() as u64 != len {
            return Err(Error::Invalid(format!(
                "tensor '{name}': {dtype} {shape:?} takes {len} bytes, {} given",
                data.len()
            )));
        }
        self.push_tensor(name, dtype, shape, len, Some(data.to_vec()));
        Ok(())
    }

    /// Adds a tensor of `shape` (outermost first) that takes its space in the file but
    /// whose bytes are not written (they read as zeros; on most filesystems they take no
    /// disk space).
    pub fn add_tensor_placeholder(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: &[usize],
    ) -> Result<()> {
        let name = name.into();
        let len = self.check_tensor(&name, dtype, shape)?;
        self.push_tensor(name, dtype, shape, len, None);
        Ok(())
    }

    fn check_tensor(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<u64> {
        let bad = |reason: String| Err(Error::Invalid(format!("tensor '{name}': {reason}")));
        if name.is_empty() {
            return Err(Error::Invalid("a GGUF tensor needs a nonempty name".into()));
        }
        if self.names.contains(name) {
            return bad("added twice".into());
        }
        if shape.is_empty() || shape.len() > MAX_DIMS {
            return bad(format!(
                "GGUF tensors have 1 to {MAX_DIMS} dimensions, not {}",
                shape.len()
            ));
        }
        if shape.contains(&0) {
            return bad(format!("shape {shape:?} has a zero dimension"));
        }
        let row = shape[shape.len() - 1];
        if !row.is_multiple_of(dtype.block_size()) {
            return bad(format!(
                "row length {row} is not a multiple of {dtype}'s block size {}",
                dtype.block_size()
            ));
        }
        shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| dtype.bytes_for(n))
            .map(|n| n as u64)
            .map_or_else(|| bad(format!("shape {shape:?} overflows")), Ok)
    }

    fn push_tensor(
        &mut self,
        name: String,
        dtype: DType,
        shape: &[usize],
        len: u64,
        data: Option<Vec<u8>>,
    ) {
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dtype,
            shape: shape.to_vec(),
            len,
            data,
        });
    }

    /// The encoded header (up to, not including, the padding before the data), each
    /// tensor's offset relative to the data section, and the data section's length.
    fn layout(&self) -> (Vec<u8>, Vec<u64>, u64) {
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut end = 0u64;
        for t in &self.tensors {
            let start = end.next_multiple_of(self.alignment);
            offsets.push(start);
            end = start + t.len;
        }
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            encode_str(&mut out, key);
            out.extend_from_slice(&value.meta_type().id().to_le_bytes());
            value.encode(&mut out);
        }
        for (t, offset) in self.tensors.iter().zip(&offsets) {
            encode_str(&mut out, &t.name);
            out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&t.dtype.gguf_id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        (out, offsets, end)
    }

    /// The whole file in memory (placeholders as zeros). The file ends where the last
    /// tensor's data ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut out, offsets, data_len) = self.layout();
        let data_offset = (out.len() as u64).next_multiple_of(self.alignment);
        out.resize((data_offset + data_len) as usize, 0);
        for (t, offset) in self.tensors.iter().zip(offsets) {
            if let Some(data) = &t.data {
                let at = (data_offset + offset) as usize;
                out[at..at + data.len()].copy_from_slice(data);
            }
        }
        out
    }

    /// Writes the file to `path` (replacing it). Padding and placeholder tensors are left
    /// as holes; the file ends where the last tensor's data ends.
    pub fn write_to_path(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |e| Error::io(path, e);
        let (header, offsets, data_len) = self.layout();
        let data_offset = (header.len() as u64).next_multiple_of(self.alignment);
        let file = File::create(path).map_err(io)?;
        let mut out = BufWriter::new(file);
        out.write_all(&header).map_err(io)?;
        for (t, offset) in self.tensors.iter().zip(offsets) {
            if let Some(data) = &t.data {
                out.seek(SeekFrom::Start(data_offset + offset))
                    .map_err(io)?;
                out.write_all(data).map_err(io)?;
            }
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.set_len(data_offset + data_len).map_err(io)
    }
}
