//! [`Scope`]: where a module binds — a checkpoint, a key prefix, a device and the module's
//! path — and the check of one declared weight against the checkpoint's metadata.

use super::weight::Weight;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::lazy::Checkpoint;

/// Where a module binds: keys are looked up under `prefix` in `checkpoint`, weights are
/// placed on `device`, and errors and summaries name the module by `path`.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    checkpoint: &'a Checkpoint,
    prefix: String,
    path: String,
    device: Device,
}

/// Where a weight is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// On the module's device (the default).
    #[default]
    Module,
    /// In host memory, whatever the module's device (`device = host`), e.g. an embedding
    /// table that is only gathered from.
    Host,
}

/// One `#[weight(...)]` declaration, with its shape evaluated against the config.
#[derive(Debug, Clone)]
pub struct WeightDecl<'d> {
    /// The field's name.
    pub field: &'static str,
    /// The key relative to the scope (`attn_q.weight`).
    pub key: &'static str,
    /// The expected shape, outermost first.
    pub shape: Vec<usize>,
    /// Stored dtypes allowed; empty allows every dtype lazyforge loads.
    pub dtypes: &'d [DType],
    /// A key (relative to the scope) to use when `key` is absent (tied embeddings).
    pub fallback: Option<&'static str>,
    /// Where the weight is placed.
    pub placement: Placement,
}

impl<'a> Scope<'a> {
    /// The root scope of `checkpoint`: no key prefix, an empty module path.
    pub fn root(checkpoint: &'a Checkpoint, device: Device) -> Scope<'a> {
        Scope {
            checkpoint,
            prefix: String::new(),
            path: String::new(),
            device,
        }
    }

    /// This scope with its key prefix and module path replaced (a module bound again from
    /// its spec goes back where it was).
    pub fn at(&self, path: &str, prefix: &str) -> Scope<'a> {
        Scope {
            checkpoint: self.checkpoint,
            prefix: prefix.to_string(),
            path: path.to_string(),
            device: self.device,
        }
    }

    /// The scope of submodule `field`, whose keys live under `prefix` (`"attn"` → keys
    /// `attn.*`; `""` → the same keys as this scope).
    pub fn child(&self, field: &str, prefix: &str) -> Scope<'a> {
        Scope {
            checkpoint: self.checkpoint,
            prefix: join_prefix(&self.prefix, prefix),
            path: self.join_path(field),
            device: self.device,
        }
    }

    /// The scope of element `i` of submodule list `field`, whose keys live under `pattern`
    /// with `{i}` replaced by `i` (`"blk.{i}"` → `blk.3.*`).
    pub fn indexed(&self, field: &str, pattern: &str, i: usize) -> Scope<'a> {
        Scope {
            checkpoint: self.checkpoint,
            prefix: join_prefix(&self.prefix, &pattern.replace("{i}", &i.to_string())),
            path: format!("{}[{i}]", self.join_path(field)),
            device: self.device,
        }
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &'a Checkpoint {
        self.checkpoint
    }

    /// The key prefix, ending in `.` unless empty.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The module's path in the tree (`blocks[3].attn`; empty at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The device weights are placed on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The full checkpoint key of `key` in this scope.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The path of field `field` of the module bound here.
    pub fn join_path(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// Checks a required weight against the checkpoint's metadata and returns its lazy
    /// handle. Reads no tensor data.
    pub fn weight(&self, decl: &WeightDecl<'_>) -> Result<Weight> {
        match self.optional_weight(decl)? {
            Some(w) => Ok(w),
            None => {
                let mut key = self.key(decl.key);
                if let Some(fallback) = decl.fallback {
                    key = format!("{key}' (or its fallback '{}')", self.key(fallback));
                }
                Err(Error::Bind {
                    path: self.join_path(decl.field),
                    key,
                    file: self.checkpoint.path().to_path_buf(),
                    expected: format!("a tensor of shape {:?}", decl.shape),
                    found: "no such tensor".into(),
                })
            }
        }
    }

    /// Like [`Scope::weight`], but `None` when neither the key nor its fallback is present.
    pub fn optional_weight(&self, decl: &WeightDecl<'_>) -> Result<Option<Weight>> {
        let present = |k: &str| {
            self.checkpoint.contains(k) || self.checkpoint.unsupported_tensors().contains_key(k)
        };
        let primary = self.key(decl.key);
        let key = if present(&primary) {
            primary
        } else {
            match decl.fallback.map(|f| self.key(f)) {
                Some(fallback) if present(&fallback) => fallback,
                _ => return Ok(None),
            }
        };
        let path = self.join_path(decl.field);
        let bind_error = |expected: String, found: String| Error::Bind {
            path: path.clone(),
            key: key.clone(),
            file: self.checkpoint.path().to_path_buf(),
            expected,
            found,
        };
        if let Some(dtype) = self.checkpoint.unsupported_tensors().get(&key) {
            return Err(bind_error(
                "a dtype lazyforge loads".into(),
                format!("dtype {dtype}"),
            ));
        }
        let info = self.checkpoint.tensor(&key)?;
        if info.shape != decl.shape {
            return Err(bind_error(
                format!("shape {:?}", decl.shape),
                format!("shape {:?}", info.shape),
            ));
        }
        if !decl.dtypes.is_empty() && !decl.dtypes.contains(&info.dtype) {
            let allowed: Vec<&str> = decl.dtypes.iter().map(|d| d.name()).collect();
            return Err(bind_error(
                format!("dtype {}", allowed.join(" or ")),
                format!("dtype {}", info.dtype),
            ));
        }
        let device = match decl.placement {
            Placement::Module => self.device,
            Placement::Host => Device::Cpu,
        };
        let tensor = self.checkpoint.lazy(&key, device)?;
        Ok(Some(Weight::new(path, decl.field, tensor)))
    }
}

fn join_prefix(outer: &str, inner: &str) -> String {
    if inner.is_empty() {
        outer.to_string()
    } else {
        format!("{outer}{inner}.")
    }
}
