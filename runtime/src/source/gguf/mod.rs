//! GGUF checkpoints (versions 2 and 3, little-endian): the header, metadata and tensor table
//! are parsed and validated at open; tensor data and metadata arrays stay in the file.
//!
//! Layout of a GGUF file, all integers little-endian:
//!
//! ```text
//! "GGUF"  u32 version  u64 tensor_count  u64 kv_count
//! kv_count    × { string key, u32 value_type, value }
//! tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor's `offset` is relative to here and aligned
//! ```
//!
//! GGUF lists a tensor's dimensions innermost first (`ne[0]` is the row length). The
//! [`TensorInfo::shape`] this module reports is **outermost first**, the reverse, as in
//! safetensors and PyTorch: a `[n_vocab, n_embd]` embedding is stored with `ne = [n_embd,
//! n_vocab]`.
//!
//! Everything a later read relies on is checked at open, and each failure is an
//! [`Error::Corrupt`] naming the byte offset: counts and lengths that cannot fit in the file
//! are refused before anything is allocated for them, so a hostile header can neither
//! exhaust memory nor make the parser loop for long.

mod reader;
mod value;
mod writer;

pub use value::{MetaArray, MetaType, MetaValue};
pub use writer::{GgufWriter, WriteValue};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{MapPolicy, Mapping, TensorInfo};
use reader::Cursor;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Data alignment when the file has no `general.alignment` key.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Most dimensions a GGUF tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Fewest bytes one tensor-table entry can take: an empty name's length, `n_dims`, one
/// dimension, the type and the offset.
const TENSOR_ENTRY_MIN_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// Fewest bytes one metadata entry can take: an empty key's length, the type, a 1-byte value.
const KV_ENTRY_MIN_BYTES: u64 = 8 + 4 + 1;

/// An opened GGUF file: its metadata (arrays located, not decoded) and its tensor table.
#[derive(Debug)]
pub struct GgufFile {
    mapping: Arc<Mapping>,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufFile {
    /// Opens `path` and reads its header, metadata and tensor table (no tensor data).
    pub fn open(path: impl AsRef<Path>, policy: MapPolicy) -> Result<GgufFile> {
        GgufFile::from_mapping(Arc::new(Mapping::open(path, policy)?))
    }

    /// Reads the header, metadata and tensor table of an opened file.
    pub fn from_mapping(mapping: Arc<Mapping>) -> Result<GgufFile> {
        let header = parse(&mapping)?;
        let meta_index = header
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            mapping,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            metadata: header.metadata,
            meta_index,
            tensors: header.tensors,
            tensor_index,
        })
    }

    /// The file the tensors live in.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.mapping.path()
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of tensor data, from `general.alignment` (default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The tensors, in file order. Shapes are outermost first (the reverse of GGUF's `ne`);
    /// offsets are absolute.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Every metadata entry, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Decodes the elements of `arr`, an array of this file. Elements that are arrays
    /// themselves come back located, not decoded: pass them here again.
    pub fn array_values(&self, arr: &MetaArray) -> Result<Vec<MetaValue>> {
        let mut cur = Cursor::new(&self.mapping, arr.offset);
        let what = |i: u64| format!("element {i} of the array at byte {}", arr.offset);
        let mut out = Vec::with_capacity(capacity_for(arr));
        for i in 0..arr.len {
            out.push(cur.value(arr.elem_type, arr.depth + 1, &|| what(i))?);
        }
        Ok(out)
    }

    /// The value under `key` as a `u64`; any integer type whose value fits is accepted.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.mismatch(key, "an unsigned integer", v))
    }

    /// The value under `key` as a `u32`; any integer type whose value fits is accepted.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_integer()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| self.mismatch(key, "an integer that fits in u32", v))
    }

    /// The value under `key` as an `f32`; `F32` and `F64` values are accepted.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| self.mismatch(key, "a float", v))
    }

    /// The boolean under `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| self.mismatch(key, "a bool", v))
    }

    /// The string under `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.mismatch(key, "a string", v))
    }

    /// The array of strings under `key`, decoded now (e.g. a tokenizer's vocabulary).
    pub fn get_string_array(&self, key: &str) -> Result<Vec<String>> {
        let arr = self.require_array(key, "an array of strings", |t| t == MetaType::String)?;
        let mut cur = Cursor::new(&self.mapping, arr.offset);
        let mut out = Vec::with_capacity(capacity_for(arr));
        for i in 0..arr.len {
            out.push(cur.string(&|| format!("element {i} of metadata array '{key}'"))?);
        }
        Ok(out)
    }

    /// The array of floats under `key`; `F32` and `F64` elements are accepted.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let arr = self.require_array(key, "an array of floats", |t| {
            matches!(t, MetaType::F32 | MetaType::F64)
        })?;
        self.array_values(arr)?
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| self.metadata_error(key, "an element is not a float".into()))
    }

    /// The array of integers under `key` as `i32`; any integer element type is accepted as
    /// long as every value fits.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let arr = self.require_array(key, "an array of integers", |t| {
            !matches!(
                t,
                MetaType::F32 | MetaType::F64 | MetaType::Bool | MetaType::String | MetaType::Array
            )
        })?;
        let values = self.array_values(arr)?;
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let x = v
                .as_integer()
                .and_then(|x| i32::try_from(x).ok())
                .ok_or_else(|| {
                    self.metadata_error(key, format!("element {i} ({v:?}) does not fit in i32"))
                })?;
            out.push(x);
        }
        Ok(out)
    }

    /// Decodes `value` (recursively, for arrays) into an owned [`WriteValue`], e.g. to copy
    /// metadata into a [`GgufWriter`].
    pub fn to_write_value(&self, value: &MetaValue) -> Result<WriteValue> {
        Ok(match value {
            MetaValue::U8(v) => WriteValue::U8(*v),
            MetaValue::I8(v) => WriteValue::I8(*v),
            MetaValue::U16(v) => WriteValue::U16(*v),
            MetaValue::I16(v) => WriteValue::I16(*v),
            MetaValue::U32(v) => WriteValue::U32(*v),
            MetaValue::I32(v) => WriteValue::I32(*v),
            MetaValue::F32(v) => WriteValue::F32(*v),
            MetaValue::Bool(v) => WriteValue::Bool(*v),
            MetaValue::String(v) => WriteValue::String(v.clone()),
            MetaValue::U64(v) => WriteValue::U64(*v),
            MetaValue::I64(v) => WriteValue::I64(*v),
            MetaValue::F64(v) => WriteValue::F64(*v),
            MetaValue::Array(arr) => WriteValue::Array {
                elem_type: arr.elem_type,
                items: self
                    .array_values(arr)?
                    .iter()
                    .map(|v| self.to_write_value(v))
                    .collect::<Result<_>>()?,
            },
        })
    }

    fn require(&self, key: &str) -> Result<&MetaValue> {
        self.get(key)
            .ok_or_else(|| self.metadata_error(key, "not present in the file".into()))
    }

    fn require_array(
        &self,
        key: &str,
        expected: &str,
        accepts: impl Fn(MetaType) -> bool,
    ) -> Result<&MetaArray> {
        let v = self.require(key)?;
        match v {
            MetaValue::Array(arr) if accepts(arr.elem_type) => Ok(arr),
            MetaValue::Array(arr) => Err(self.metadata_error(
                key,
                format!("expected {expected}, found an array of {}", arr.elem_type),
            )),
            _ => Err(self.mismatch(key, expected, v)),
        }
    }

    fn mismatch(&self, key: &str, expected: &str, found: &MetaValue) -> Error {
        let found = match found {
            MetaValue::Array(arr) => format!("an array of {}", arr.elem_type),
            MetaValue::String(_) => "a string".to_owned(),
            other => format!("{other:?}"),
        };
        self.metadata_error(key, format!("expected {expected}, found {found}"))
    }

    fn metadata_error(&self, key: &str, reason: String) -> Error {
        Error::Metadata {
            path: self.mapping.path().to_path_buf(),
            key: key.to_owned(),
            reason,
        }
    }
}

/// A capacity to reserve for `count` decoded entries. Counts were checked against the
/// file's size, but a decoded entry is larger than its smallest encoding, so a forged count
/// in a large file could still ask for many times the file's size: reserve a bounded
/// amount and let the vector grow as entries are actually read.
fn capacity_hint(count: u64) -> usize {
    count.min(1 << 16) as usize
}

/// [`capacity_hint`] for an array's elements.
fn capacity_for(arr: &MetaArray) -> usize {
    capacity_hint(arr.len)
}

/// What [`parse`] found.
struct Header {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<TensorInfo>,
}

/// One tensor-table entry before the data section's start is known.
struct Entry {
    info: TensorInfo,
    /// Where the entry's offset field is, for messages.
    offset_field_at: u64,
}

fn parse(mapping: &Mapping) -> Result<Header> {
    let mut cur = Cursor::new(mapping, 0);
    let file_len = mapping.len();

    let magic = cur.take(4, &|| "the GGUF magic".into())?;
    if magic != GGUF_MAGIC {
        let shown = String::from_utf8_lossy(magic).escape_debug().to_string();
        return Err(cur.corrupt(
            0,
            format!("not a GGUF file: starts with \"{shown}\", not \"GGUF\""),
        ));
    }
    let version = cur.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::Unsupported {
                path: mapping.path().to_path_buf(),
                reason: "GGUF version 1 (32-bit counts, 2023) is not read; re-convert the model \
                         with a current llama.cpp"
                    .into(),
            })
        }
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(Error::Unsupported {
                path: mapping.path().to_path_buf(),
                reason: format!(
                    "big-endian GGUF (version {}) is not read; convert the model on a \
                     little-endian machine",
                    v.swap_bytes()
                ),
            })
        }
        v => return Err(cur.corrupt(4, format!("unknown GGUF version {v}, expected 2 or 3"))),
    }

    let tensor_count = cur.u64(&|| "the tensor count".into())?;
    let kv_count = cur.u64(&|| "the metadata count".into())?;
    // Every entry takes a minimum number of bytes, so counts the file cannot hold are
    // refused here, before anything is sized by them.
    let left = cur.remaining();
    let tensor_min = tensor_count.checked_mul(TENSOR_ENTRY_MIN_BYTES);
    if tensor_min.is_none_or(|min| min > left) {
        return Err(cur.corrupt(
            8,
            format!(
                "tensor count {tensor_count} cannot fit: each entry takes at least \
                 {TENSOR_ENTRY_MIN_BYTES} bytes and {left} bytes follow the header"
            ),
        ));
    }
    let left_for_kv = left - tensor_min.unwrap_or(0);
    if kv_count
        .checked_mul(KV_ENTRY_MIN_BYTES)
        .is_none_or(|min| min > left_for_kv)
    {
        return Err(cur.corrupt(
            16,
            format!(
                "metadata count {kv_count} cannot fit: each entry takes at least \
                 {KV_ENTRY_MIN_BYTES} bytes and {left_for_kv} bytes are left besides the \
                 {tensor_count} tensor entries"
            ),
        ));
    }

    let mut metadata = Vec::with_capacity(capacity_hint(kv_count));
    let mut keys = HashSet::with_capacity(capacity_hint(kv_count));
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..kv_count {
        let entry_at = cur.pos();
        let key = cur.string(&|| format!("metadata key {i}"))?;
        if keys.contains(&key) {
            return Err(cur.corrupt(entry_at, format!("duplicate metadata key '{key}'")));
        }
        let what = || format!("metadata '{key}'");
        let ty = cur.meta_type(&what)?;
        let value_at = cur.pos();
        let value = cur.value(ty, 0, &what)?;
        if key == ALIGNMENT_KEY {
            alignment = match value.as_u64() {
                Some(a) if a.is_power_of_two() => a,
                _ => {
                    return Err(cur.corrupt(
                        value_at,
                        format!(
                            "'{ALIGNMENT_KEY}' is {value:?}; it must be a nonzero power of two"
                        ),
                    ))
                }
            };
        }
        keys.insert(key.clone());
        metadata.push((key, value));
    }

    let mut entries: Vec<Entry> = Vec::with_capacity(capacity_hint(tensor_count));
    let mut names = HashSet::with_capacity(capacity_hint(tensor_count));
    for i in 0..tensor_count {
        let entry_at = cur.pos();
        let name = cur.string(&|| format!("the name of tensor {i}"))?;
        if name.is_empty() {
            return Err(cur.corrupt(entry_at, format!("tensor {i} has an empty name")));
        }
        if names.contains(&name) {
            return Err(cur.corrupt(entry_at, format!("duplicate tensor name '{name}'")));
        }
        let entry = tensor_entry(&mut cur, name.clone(), alignment)?;
        names.insert(name);
        entries.push(entry);
    }

    let header_end = cur.pos();
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| {
            cur.corrupt(
                header_end,
                format!("aligning the data section to {alignment} overflows"),
            )
        })?;

    let mut tensors = Vec::with_capacity(entries.len());
    let mut spans = Vec::with_capacity(entries.len());
    for Entry {
        mut info,
        offset_field_at,
    } in entries
    {
        let start = data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(info.len));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                info.offset = start;
                spans.push((start, end, tensors.len()));
                tensors.push(info);
            }
            _ => {
                return Err(cur.corrupt(
                    offset_field_at,
                    format!(
                        "tensor '{}': {} bytes at data offset {} (absolute {}) run past the end \
                         of the file ({file_len} bytes)",
                        info.name,
                        info.len,
                        info.offset,
                        data_offset as u128 + info.offset as u128
                    ),
                ))
            }
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((a_start, a_end, a), (b_start, b_end, b)) = (pair[0], pair[1]);
        if b_start < a_end {
            return Err(cur.corrupt(
                b_start,
                format!(
                    "tensors '{}' (bytes {a_start}..{a_end}) and '{}' (bytes {b_start}..{b_end}) \
                     overlap",
                    tensors[a].name, tensors[b].name
                ),
            ));
        }
    }

    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// Reads one tensor-table entry after its name: dimensions, type and relative offset, each
/// checked on its own (the data range is checked once the data section's start is known).
fn tensor_entry(cur: &mut Cursor<'_>, name: String, alignment: u64) -> Result<Entry> {
    let n_dims_at = cur.pos();
    let n_dims = cur.u32(&|| format!("tensor '{name}'"))?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(cur.corrupt(
            n_dims_at,
            format!("tensor '{name}' has {n_dims} dimensions; GGUF allows 1 to {MAX_DIMS}"),
        ));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        let dim_at = cur.pos();
        let dim = cur.u64(&|| format!("dimension {d} of tensor '{name}'"))?;
        if dim == 0 {
            return Err(cur.corrupt(
                dim_at,
                format!("tensor '{name}' has dimension {d} of size 0 (empty tensors are not read)"),
            ));
        }
        ne.push(dim);
    }
    let elems = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            cur.corrupt(
                n_dims_at,
                format!("tensor '{name}' has dimensions {ne:?} whose product overflows"),
            )
        })?;
    let type_at = cur.pos();
    let type_id = cur.u32(&|| format!("the type of tensor '{name}'"))?;
    let dtype = DType::from_gguf_id(type_id).ok_or_else(|| match ggml_type_name(type_id) {
        Some(known) => Error::Unsupported {
            path: cur.path().to_path_buf(),
            reason: format!(
                "tensor '{name}' has ggml type {known} (type id {type_id}), which this build \
                 does not read"
            ),
        },
        None => cur.corrupt(
            type_at,
            format!("tensor '{name}' has unknown ggml type id {type_id}"),
        ),
    })?;
    let block = dtype.block_size() as u64;
    if !ne[0].is_multiple_of(block) {
        return Err(cur.corrupt(
            n_dims_at + 4,
            format!(
                "tensor '{name}': row length {} is not a multiple of {dtype}'s block size {block}",
                ne[0]
            ),
        ));
    }
    let len = dtype
        .bytes_for(elems)
        .map(|n| n as u64)
        .ok_or_else(|| cur.corrupt(n_dims_at, format!("tensor '{name}': byte size overflows")))?;
    let offset_field_at = cur.pos();
    let offset = cur.u64(&|| format!("the data offset of tensor '{name}'"))?;
    if !offset.is_multiple_of(alignment) {
        return Err(cur.corrupt(
            offset_field_at,
            format!(
                "tensor '{name}' data offset {offset} is not a multiple of the alignment \
                 {alignment}"
            ),
        ));
    }
    let shape = ne.iter().rev().map(|&d| d as usize).collect();
    Ok(Entry {
        info: TensorInfo {
            name,
            dtype,
            shape,
            offset,
            len,
            file: 0,
        },
        offset_field_at,
    })
}

/// Names of ggml tensor types this build does not read, so that a file using one gets
/// "unsupported" rather than "corrupt".
fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        4 => "Q4_2 (removed from ggml)",
        5 => "Q4_3 (removed from ggml)",
        9 => "Q8_1",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
