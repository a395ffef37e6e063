//! lazyforge: neural-network modules whose weights load lazily, exactly once, on first use,
//! from memory-mapped GGUF or safetensors checkpoints.

pub mod device;
pub mod dtype;
pub mod error;
pub mod lazy;
pub mod ops;
pub mod source;

pub use device::{Device, Tensor};
pub use dtype::DType;
pub use error::{Error, Result};
pub use lazy::{Checkpoint, LazyTensor};
pub use source::TensorInfo;
