//! [`Deferred`]: a model definition that costs a config and a path until it is used (the
//! proxy pattern): the checkpoint is opened and the module bound on first use.

use super::{Bind, Scope};
use crate::device::Device;
use crate::error::Result;
use crate::lazy::Checkpoint;
use once_cell::sync::OnceCell;
use std::path::{Path, PathBuf};

/// Opens a checkpoint for a [`Deferred`] (e.g. with a model's HF name aliases).
pub type Opener = fn(&Path) -> Result<Checkpoint>;

/// A module `M` defined by its config, checkpoint path and device, bound on first
/// [`get`](Deferred::get). Until then it holds no file handle, no mapping and no weight table:
/// about the size of the config plus the path. A failed bind is returned and retried by the
/// next call.
///
/// ```
/// use lazyforge::module::Deferred;
/// use lazyforge::source::gguf::GgufWriter;
/// use lazyforge::{lazy_module, Bind, DType, Device, LazyModule, Weight};
///
/// #[lazy_module]
/// struct Norm {
///     #[config]
///     dim: usize,
///     #[weight("norm.weight", shape = [dim])]
///     weight: Weight,
/// }
///
/// let path = std::env::temp_dir().join(format!("lazyforge-doc-deferred-{}.gguf", std::process::id()));
/// let mut w = GgufWriter::new();
/// w.add_tensor("norm.weight", DType::F32, &[4], &[0; 16])?;
/// w.write_to_path(&path)?;
///
/// let def: Deferred<Norm> = Deferred::new(&path, Device::Cpu, 4); // nothing opened yet
/// assert!(!def.is_bound());
/// assert_eq!(def.get()?.parameter_count(), 4); // opens and binds, reads no tensor data
/// assert!(def.is_bound());
/// # Ok::<(), lazyforge::Error>(())
/// ```
pub struct Deferred<M: Bind> {
    path: PathBuf,
    device: Device,
    config: M::Config,
    open: Opener,
    /// Boxed: an unbound definition should not carry the bound module's inline size.
    bound: OnceCell<Box<M>>,
}

impl<M: Bind> std::fmt::Debug for Deferred<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("module", &std::any::type_name::<M>())
            .field("path", &self.path)
            .field("device", &self.device)
            .field("bound", &self.is_bound())
            .finish()
    }
}

impl<M: Bind> Deferred<M> {
    /// A definition of `M` with `config` over the checkpoint at `path` (opened with
    /// [`Checkpoint::open`]), placed on `device`.
    pub fn new(path: impl AsRef<Path>, device: Device, config: M::Config) -> Deferred<M> {
        Deferred::with_opener(path, device, config, |p| Checkpoint::open(p))
    }

    /// Like [`Deferred::new`], with the checkpoint opened by `open`.
    pub fn with_opener(
        path: impl AsRef<Path>,
        device: Device,
        config: M::Config,
        open: Opener,
    ) -> Deferred<M> {
        Deferred {
            path: path.as_ref().to_path_buf(),
            device,
            config,
            open,
            bound: OnceCell::new(),
        }
    }

    /// The checkpoint's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The config.
    pub fn config(&self) -> &M::Config {
        &self.config
    }

    /// Whether the module has been bound.
    pub fn is_bound(&self) -> bool {
        self.bound.get().is_some()
    }

    /// The bound module: opens the checkpoint and binds on first use (metadata only;
    /// weights still load lazily), exactly once across threads.
    pub fn get(&self) -> Result<&M> {
        self.bound
            .get_or_try_init(|| {
                let checkpoint = (self.open)(&self.path)?;
                M::bind(self.config.clone(), &Scope::root(&checkpoint, self.device)).map(Box::new)
            })
            .map(|m| &**m)
    }

    /// The bound module, if it has been bound.
    pub fn bound(&self) -> Option<&M> {
        self.bound.get().map(|m| &**m)
    }
}
