//! Checkpoint files: GGUF, safetensors (single and sharded), all read through one
//! [`Mapping`] type. Opening reads metadata only.

mod cache;
pub mod checkpoint;
pub mod gguf;
mod mapping;
pub mod safetensors;

pub use cache::cache_dir;
pub use mapping::{AlignedBytes, MapPolicy, Mapping};

use crate::dtype::DType;

/// What a checkpoint file says about one tensor (no data is read to know this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name in the file (`blk.0.attn_q.weight`, `model.layers.0.mlp.up_proj.weight`).
    pub name: String,
    /// Storage format.
    pub dtype: DType,
    /// Dimensions, outermost first (GGUF files list them innermost first; this is reversed).
    pub shape: Vec<usize>,
    /// Absolute byte offset of the data in its file.
    pub offset: u64,
    /// Byte length of the data.
    pub len: u64,
    /// Index of the file holding the data, among the checkpoint's files (0 for single files).
    pub file: usize,
}

impl TensorInfo {
    /// Number of values.
    pub fn elem_count(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}
