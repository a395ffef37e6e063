//! safetensors checkpoints: one file, or shards listed by `model.safetensors.index.json`.
//! The header is parsed and validated by the `safetensors` crate; data stays in the file.

use super::{MapPolicy, Mapping, TensorInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// A file's loadable tensors, its tensors of other dtypes (name, dtype), and its metadata.
pub(crate) type SafetensorsParts = (
    Vec<TensorInfo>,
    Vec<(String, String)>,
    BTreeMap<String, String>,
);

/// Headers larger than this are refused (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One safetensors file's header: its tensors, and the free-form `__metadata__`.
#[derive(Debug)]
pub struct SafetensorsFile {
    mapping: Arc<Mapping>,
    tensors: Vec<TensorInfo>,
    unsupported: Vec<(String, String)>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Opens `path` and reads its header (only the header).
    pub fn open(path: impl AsRef<Path>, policy: MapPolicy) -> Result<SafetensorsFile> {
        SafetensorsFile::from_mapping(Arc::new(Mapping::open(path, policy)?), 0)
    }

    /// Reads the header of an opened file; `file_index` is recorded in each [`TensorInfo`].
    pub fn from_mapping(mapping: Arc<Mapping>, file_index: usize) -> Result<SafetensorsFile> {
        let corrupt = |offset: u64, reason: String| Error::Corrupt {
            path: mapping.path().to_path_buf(),
            format: "safetensors",
            offset,
            reason,
        };
        let mut len_bytes = [0u8; 8];
        if mapping.len() < 8 {
            return Err(corrupt(
                0,
                format!(
                    "file is {} bytes, shorter than the 8-byte header length",
                    mapping.len()
                ),
            ));
        }
        mapping.read_exact_at(0, &mut len_bytes)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > mapping.len() - 8 {
            return Err(corrupt(
                0,
                format!(
                    "header length {header_len} exceeds the file ({} bytes) or the {MAX_HEADER_BYTES}-byte limit",
                    mapping.len()
                ),
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        mapping.read_exact_at(8, &mut header)?;
        let parsed: safetensors::tensor::Metadata = serde_json::from_slice(&header)
            .map_err(|e| corrupt(8, format!("invalid header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = parsed.data_len() as u64;
        if data_start
            .checked_add(data_len)
            .is_none_or(|end| end > mapping.len())
        {
            return Err(corrupt(
                data_start,
                format!(
                    "tensor data needs {data_len} bytes after the header, file has {}",
                    mapping.len() - data_start
                ),
            ));
        }
        let mut tensors = Vec::new();
        let mut unsupported = Vec::new();
        for name in parsed.offset_keys() {
            let info = parsed
                .info(&name)
                .expect("offset_keys lists names present in the header");
            let (start, end) = info.data_offsets;
            match dtype_of(info.dtype) {
                Some(dtype) => tensors.push(TensorInfo {
                    name,
                    dtype,
                    shape: info.shape.clone(),
                    offset: data_start + start as u64,
                    len: (end - start) as u64,
                    file: file_index,
                }),
                None => unsupported.push((name, format!("{:?}", info.dtype))),
            }
        }
        let metadata = parsed
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(SafetensorsFile {
            mapping,
            tensors,
            unsupported,
            metadata,
        })
    }

    /// The file.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    /// Tensors with a dtype lazyforge loads, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Tensors with a dtype lazyforge does not load (integers, fp8, ...): name and dtype.
    pub fn unsupported(&self) -> &[(String, String)] {
        &self.unsupported
    }

    /// The header's `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Consumes the file into its parts.
    pub(crate) fn into_parts(self) -> SafetensorsParts {
        (self.tensors, self.unsupported, self.metadata)
    }
}

fn dtype_of(d: safetensors::Dtype) -> Option<DType> {
    match d {
        safetensors::Dtype::F32 => Some(DType::F32),
        safetensors::Dtype::F16 => Some(DType::F16),
        safetensors::Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// A sharded checkpoint's index (`model.safetensors.index.json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ShardIndex {
    /// Free-form metadata (`total_size`, ...).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Tensor name → shard file name, relative to the index's directory.
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Reads and parses an index file.
    pub fn read(path: &Path) -> Result<ShardIndex> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        ShardIndex::parse(path, &text)
    }

    /// Parses an index's bytes; `path` names it in messages.
    pub fn parse(path: &Path, text: &[u8]) -> Result<ShardIndex> {
        serde_json::from_slice(text).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            format: "safetensors index",
            offset: e.column() as u64,
            reason: format!("line {}: {e}", e.line()),
        })
    }

    /// The distinct shard files, each resolved inside `dir`, in name order. A shard name
    /// that is absolute or climbs out of `dir` (`..`) is refused.
    pub fn shard_paths(&self, index_path: &Path, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let mut names: Vec<&String> = self.weight_map.values().collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let rel = Path::new(name);
                let escapes = rel.as_os_str().is_empty()
                    || rel.components().any(|c| !matches!(c, Component::Normal(_)));
                if escapes {
                    return Err(Error::Corrupt {
                        path: index_path.to_path_buf(),
                        format: "safetensors index",
                        offset: 0,
                        reason: format!(
                            "shard name '{name}' is not a plain file name inside {}: refused",
                            dir.display()
                        ),
                    });
                }
                Ok((name.clone(), dir.join(rel)))
            })
            .collect()
    }
}
