//! Errors of the models crate: what went wrong and where (file, key, template), never a panic.

use std::path::PathBuf;

/// Result alias of the models crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in tokenizing, chat templating and sampling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The checkpoint could not be read (I/O, corrupt file, missing or mistyped metadata).
    #[error(transparent)]
    Checkpoint(#[from] lazyforge::Error),

    /// A tokenizer could not be built from a file's description of it.
    #[error("tokenizer from {path}: {reason}")]
    TokenizerSetup {
        /// The GGUF file or tokenizer.json.
        path: PathBuf,
        /// What is wrong, and what would be accepted.
        reason: String,
    },

    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Tokenize(String),

    /// A chat template failed to compile or to render.
    #[error("chat template: {0}")]
    ChatTemplate(String),

    /// A `.npy` file could not be written or read.
    #[error("npy: {0}")]
    Npy(String),

    /// A model config that is missing values or inconsistent (names the file and the key).
    #[error("model config: {0}")]
    Config(String),

    /// Sampling settings out of range, or logits that cannot be sampled from.
    #[error("sampling: {0}")]
    Sampling(String),
}
