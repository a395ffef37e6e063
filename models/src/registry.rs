//! Architectures by name: what turns a checkpoint into a runnable model.
//!
//! A GGUF file names its architecture in `general.architecture`, an HF directory in
//! `config.json`'s `model_type`. A [`Registry`] maps those names to openers; the CLI, the
//! example and [`run_with`](crate::run::run_with) open every model through one, so a
//! downstream crate adds an architecture by registering it, without touching this crate:
//!
//! ```no_run
//! use lazyforge::Device;
//! use lazyforge_models::registry::{CausalLm, Registry};
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let mut registry = Registry::builtin();
//! // registry.register(&["gpt2"], |path, device| Ok(Box::new(MyGpt2::open(path, device)?)));
//! println!("{}", registry.names().join(", "));
//! let model = registry.open("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Device::Cpu)?;
//! let mut cache = model.new_cache()?;
//! let logits = model.prefill(&[1, 2, 3], &mut cache)?;
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::error::{Error, Result};
use lazyforge::source::gguf::GgufFile;
use lazyforge::{Checkpoint, Device, LazyModule, Tensor};
use std::path::Path;
use std::sync::Arc;

/// A causal language model, whatever its architecture: what generation needs.
pub trait CausalLm: Send + Sync {
    /// The architecture's name (`llama`, `gemma3`, ...).
    fn architecture(&self) -> &str;

    /// The model's module tree: its residency, bytes, materialization and statistics.
    fn module(&self) -> &dyn LazyModule;

    /// A fresh per-sequence cache on the model's device.
    fn new_cache(&self) -> Result<Cache>;

    /// Runs the prompt `ids` after what `cache` holds: last-position logits `[1, vocab]`.
    fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor>;

    /// Runs one token `ids[0]` against the cache: its logits `[1, vocab]`.
    fn decode(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor>;

    /// Logits at every position of `ids`, `[n, vocab]` (parity checks).
    fn prefill_all_logits(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor>;

    /// A chat template (Jinja, rendered like the checkpoint's own) for files that carry
    /// none; `None` when the architecture has no standard one.
    fn fallback_chat_template(&self) -> Option<&'static str> {
        None
    }
}

/// Opens a checkpoint at a path on a device.
pub type Opener = Arc<dyn Fn(&Path, Device) -> Result<Box<dyn CausalLm>> + Send + Sync>;

/// Architecture names and their openers.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<(String, Opener)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("architectures", &self.names())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The architectures of this crate: `llama` and `mistral` (one model, [`crate::Llama`]),
    /// `gemma3` (also HF's `gemma3_text`), `qwen2`, `qwen3` and `phi3`.
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        r.register(&["llama", "mistral"], |p, d| {
            Ok(Box::new(crate::llama::Llama::open(p, d)?))
        });
        r.register(&["gemma3", "gemma3_text"], |p, d| {
            Ok(Box::new(crate::gemma3::Gemma3::open(p, d)?))
        });
        r.register(&["qwen2"], |p, d| {
            Ok(Box::new(crate::qwen2::Qwen2::open(p, d)?))
        });
        r.register(&["qwen3"], |p, d| {
            Ok(Box::new(crate::qwen3::Qwen3::open(p, d)?))
        });
        r.register(&["phi3"], |p, d| {
            Ok(Box::new(crate::phi3::Phi3::open(p, d)?))
        });
        r
    }

    /// Registers an opener under one or more names (a GGUF `general.architecture` and the
    /// HF `model_type`, when they differ). A name already known is taken over.
    pub fn register<F>(&mut self, names: &[&str], open: F) -> &mut Registry
    where
        F: Fn(&Path, Device) -> Result<Box<dyn CausalLm>> + Send + Sync + 'static,
    {
        let open: Opener = Arc::new(open);
        for name in names {
            self.entries.retain(|(n, _)| n != name);
            self.entries.push((name.to_string(), Arc::clone(&open)));
        }
        self
    }

    /// The known names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    /// Opens the checkpoint at `path` (GGUF file or HF directory) with the opener of its
    /// architecture. Reads metadata only.
    pub fn open(&self, path: &Path, device: Device) -> Result<Box<dyn CausalLm>> {
        let arch = architecture_of(path)?;
        let (_, open) = self
            .entries
            .iter()
            .find(|(n, _)| *n == arch)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{}: unknown architecture '{arch}' (known: {})",
                    path.display(),
                    self.names().join(", ")
                ))
            })?;
        open(path, device)
    }
}

/// The architecture a checkpoint declares: `general.architecture` of a GGUF file, or
/// `model_type` of an HF directory's `config.json`.
pub fn architecture_of(path: &Path) -> Result<String> {
    if path.is_dir() {
        let config = path.join("config.json");
        let text = std::fs::read_to_string(&config)
            .map_err(|e| Error::Config(format!("{}: {e}", config.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", config.display())))?;
        return v
            .get("model_type")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{}: no 'model_type' string: which architecture is this?",
                    config.display()
                ))
            });
    }
    let checkpoint = Checkpoint::open(path)?;
    let gguf: &GgufFile = checkpoint.gguf().ok_or_else(|| {
        Error::Config(format!(
            "{}: expected a GGUF file or an HF model directory",
            path.display()
        ))
    })?;
    Ok(gguf.get_str("general.architecture")?.to_string())
}

/// Implements [`CausalLm`] for a model type with this crate's usual inherent methods
/// (`new_cache`, `forward_prefill`, `forward_decode`, `prefill_all_logits`).
#[macro_export]
macro_rules! impl_causal_lm {
    ($model:ty, $name:expr) => {
        $crate::impl_causal_lm!($model, $name, None);
    };
    ($model:ty, $name:expr, $template:expr) => {
        impl $crate::registry::CausalLm for $model {
            fn architecture(&self) -> &str {
                $name
            }
            fn module(&self) -> &dyn ::lazyforge::LazyModule {
                self
            }
            fn new_cache(&self) -> $crate::Result<$crate::Cache> {
                <$model>::new_cache(self)
            }
            fn prefill(
                &self,
                ids: &[u32],
                cache: &mut $crate::Cache,
            ) -> $crate::Result<::lazyforge::Tensor> {
                self.forward_prefill(ids, cache)
            }
            fn decode(
                &self,
                ids: &[u32],
                cache: &mut $crate::Cache,
            ) -> $crate::Result<::lazyforge::Tensor> {
                self.forward_decode(ids, cache)
            }
            fn prefill_all_logits(
                &self,
                ids: &[u32],
                cache: &mut $crate::Cache,
            ) -> $crate::Result<::lazyforge::Tensor> {
                <$model>::prefill_all_logits(self, ids, cache)
            }
            fn fallback_chat_template(&self) -> Option<&'static str> {
                $template
            }
        }
    };
}

crate::impl_causal_lm!(crate::llama::Llama, "llama");
crate::impl_causal_lm!(crate::qwen2::Qwen2, "qwen2");
crate::impl_causal_lm!(crate::qwen3::Qwen3, "qwen3");
crate::impl_causal_lm!(crate::phi3::Phi3, "phi3");
