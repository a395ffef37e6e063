//! lazyforge: neural-network modules whose weights load lazily, exactly once, on first use,
//! from memory-mapped GGUF or safetensors checkpoints.

// Generated code names this crate `::lazyforge`; this lets the macros be used inside it too
// (its own tests and docs).
extern crate self as lazyforge;

pub mod device;
pub mod dtype;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod lazy;
pub mod module;
pub mod ops;
pub mod source;

pub use device::{Device, Tensor};
pub use dtype::DType;
pub use error::{Error, Result};
pub use lazy::{Checkpoint, LazyTensor};
pub use module::{Bind, ExecutionMode, LazyModule, Scope, Strategy, Weight};
pub use source::TensorInfo;

pub use lazyforge_macros::{lazy_module, strategy};

/// serde, re-exported so that a crate depending only on lazyforge can derive its configs'
/// `Serialize`/`Deserialize` (`#[serde(crate = "lazyforge::serde")]`).
pub use serde;

/// serde_json, re-exported: specs are JSON values (`LazyModule::spec`, `Bind::bind_spec`).
pub use serde_json;
