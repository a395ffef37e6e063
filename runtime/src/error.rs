//! The one error type of the runtime. Messages name the file, the tensor and the numbers.

use std::path::PathBuf;
use std::sync::Arc;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, validating, loading or computing.
///
/// `Error` is `Clone` (I/O errors are shared behind an `Arc`) so that one failed load can be
/// reported to every thread that was waiting for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The file is not in the format it claims, or is corrupt. `offset` is where reading
    /// stopped making sense.
    #[error("{path}: corrupt {format} file at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// "GGUF", "safetensors", ...
        format: &'static str,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A file changed on disk after it was opened (truncated, extended or rewritten), so the
    /// offsets read at open no longer describe it. Reopen the checkpoint.
    #[error("{path}: the file changed after it was opened ({reason}); reopen the checkpoint")]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },

    /// A well-formed file in a format or version this build does not read.
    #[error("{path}: unsupported: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported, and what to do instead.
        reason: String,
    },

    /// A tensor that was asked for is not in the checkpoint.
    #[error("tensor '{tensor}' not found in {path}")]
    MissingTensor {
        /// The tensor's name.
        tensor: String,
        /// The checkpoint.
        path: PathBuf,
    },

    /// A metadata key that was asked for is missing or has another type.
    #[error("{path}: metadata key '{key}': {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Missing, or the type found.
        reason: String,
    },

    /// A shape that does not fit what the operation or declaration expects.
    #[error("{context}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// Which tensor or operation.
        context: String,
        /// What was expected.
        expected: Vec<usize>,
        /// What was found.
        found: Vec<usize>,
    },

    /// An operation was given a dtype it cannot handle.
    #[error("{context}: dtype {dtype} is not supported here")]
    DType {
        /// Which tensor or operation.
        context: String,
        /// The dtype's name.
        dtype: String,
    },

    /// Loading a tensor failed; `reason` says why. Every thread that waited for that load
    /// gets this same error; a later call retries.
    #[error("loading tensor '{tensor}' from {path}: {reason}")]
    Load {
        /// The tensor.
        tensor: String,
        /// The file it lives in.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        reason: Box<Error>,
    },

    /// The device asked for is not available in this build or on this machine.
    #[error("device {device}: {reason}")]
    Device {
        /// The device, as the user named it.
        device: String,
        /// Why it is unavailable.
        reason: String,
    },

    /// An operation was given tensors (or a KV cache, or a RoPE table) on different devices.
    #[error("{op}: operands on different devices: {found}")]
    DeviceMismatch {
        /// The operation (`ops::matvec`).
        op: String,
        /// Each operand and its device (`w on cuda:0, x on cpu`).
        found: String,
    },

    /// Binding a module's declared weight to a checkpoint failed: the tensor is missing, has
    /// another shape, or a dtype the declaration does not allow. Nothing was read.
    #[error("binding `{path}`: tensor '{key}' in {file}: expected {expected}, found {found}")]
    Bind {
        /// The weight's path in the module tree (`blocks[3].attn.q`).
        path: String,
        /// The checkpoint key that was looked up (`blk.3.attn_q.weight`).
        key: String,
        /// The checkpoint.
        file: PathBuf,
        /// What the declaration asks for (`shape [64, 64]`).
        expected: String,
        /// What the file has (`shape [64, 32]`, `no such tensor`).
        found: String,
    },

    /// A module was asked to run in an execution mode its strategy does not list.
    #[error("module `{module}` has no {mode} mode; its strategy supports: {supported}")]
    UnsupportedMode {
        /// The module's type and path.
        module: String,
        /// The mode that was asked for.
        mode: String,
        /// The modes it supports, comma-separated.
        supported: String,
    },

    /// A module's own weights are bigger than the whole memory budget of their device, so
    /// they could never be resident. Nothing was read.
    #[error(
        "module `{module}` needs {bytes} bytes on {device}, more than the whole budget of \
         {budget} bytes; raise the budget (e.g. --budget) or leave it unlimited"
    )]
    Budget {
        /// The module's type and path.
        module: String,
        /// The device.
        device: String,
        /// Bytes its own weights occupy once materialized.
        bytes: u64,
        /// The budget.
        budget: u64,
    },

    /// A module spec (JSON) that cannot be bound: malformed, or it disagrees with the
    /// checkpoint it is bound to.
    #[error("module spec: {0}")]
    Spec(String),

    /// An argument that is invalid on its own (bad count, bad index, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A shape mismatch.
    pub fn shape(context: impl Into<String>, expected: &[usize], found: &[usize]) -> Self {
        Error::Shape {
            context: context.into(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        }
    }
}
