//! Modules: the traits `#[lazy_module]` and `#[strategy]` implement, and what they use.
//!
//! A module is a struct of config, [`Weight`]s and submodules. [`Bind::bind`] checks every
//! declared weight against the checkpoint's metadata and reads no tensor data;
//! [`LazyModule`] answers questions about the bound tree (parameters, bytes, what is
//! loaded) without loading anything, exports a [`spec`](LazyModule::spec) that can be bound
//! again, and [`materialize`](LazyModule::materialize)s or [`evict`](LazyModule::evict)s
//! on request. [`Strategy`] lists the [`ExecutionMode`]s a module's forward runs in.
//!
//! A module reads like its diagram; the attributes carry the loading:
//!
//! ```
//! use lazyforge::ops::{matmul, matvec};
//! use lazyforge::source::gguf::GgufWriter;
//! use lazyforge::{lazy_module, strategy, Bind, Checkpoint, DType, Device, LazyModule};
//! use lazyforge::{Result, Scope, Tensor, Weight};
//!
//! #[lazy_module]
//! struct Linear {
//!     #[config]
//!     dims: (usize, usize),
//!     #[weight("weight", shape = [dims.0, dims.1])]
//!     weight: Weight,
//!     #[weight("bias", shape = [dims.0], optional)]
//!     bias: Option<Weight>,
//! }
//!
//! #[lazy_module]
//! struct Mlp {
//!     #[config]
//!     dims: (usize, usize), // (hidden, intermediate)
//!     #[submodule("ffn_up", config = (dims.1, dims.0))]
//!     up: Linear,
//!     #[submodule("ffn_down", config = (dims.0, dims.1))]
//!     down: Linear,
//! }
//!
//! #[strategy(prefill, decode)]
//! impl Mlp {
//!     fn prefill(&self, x: &Tensor) -> Result<Tensor> {
//!         let (up, down) = (self.up.weight()?, self.down.weight()?);
//!         matmul(&matmul(x, &up)?, &down)
//!     }
//!     fn decode(&self, x: &Tensor) -> Result<Tensor> {
//!         let (up, down) = (self.up.weight()?, self.down.weight()?);
//!         matvec(&down, &matvec(&up, x)?) // on x's device
//!     }
//! }
//!
//! // A synthetic checkpoint: up is [intermediate, hidden] = [4, 2], down is [2, 4].
//! let path = std::env::temp_dir().join(format!("lazyforge-doc-mlp-{}.gguf", std::process::id()));
//! let mut w = GgufWriter::new();
//! w.add_tensor("ffn_up.weight", DType::F32, &[4, 2], &[0; 32])?;
//! w.add_tensor("ffn_down.weight", DType::F32, &[2, 4], &[0; 32])?;
//! w.write_to_path(&path)?;
//!
//! let ckpt = Checkpoint::open(&path)?;
//! let mlp = Mlp::bind((2, 4), &Scope::root(&ckpt, Device::Cpu))?; // checks shapes, reads nothing
//! assert_eq!((mlp.parameter_count(), ckpt.stats().bytes_read), (16, 0));
//! let y = mlp.forward_decode(&Tensor::from_f32([1, 2], vec![1.0, 2.0])?)?;
//! assert_eq!(y.shape(), [1, 2]);
//! assert!(mlp.is_materialized());
//! print!("{}", mlp.summary());
//! # Ok::<(), lazyforge::Error>(())
//! ```

mod deferred;
mod mode;
mod scope;
mod spec;
#[cfg(test)]
mod tests;
mod weight;

pub use crate::lazy::ModulePin;
pub use deferred::{Deferred, Opener};
pub use mode::{ExecutionMode, ForwardMetrics, ModeStats, Strategy};
pub use scope::{Placement, Scope, WeightDecl};
pub use weight::Weight;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::lazy::{Checkpoint, LoadStats, Residency, ResidentModule};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

/// What every bound module keeps besides its fields: where it was bound, and its forward
/// metrics. Generated code stores one in a hidden field.
#[derive(Debug)]
pub struct ModuleState {
    path: String,
    prefix: String,
    device: Device,
    metrics: ForwardMetrics,
    residency: Arc<Residency>,
    resident: OnceLock<Arc<ResidentModule>>,
}

impl ModuleState {
    /// The state of a module bound in `scope`.
    pub fn new(scope: &Scope<'_>) -> ModuleState {
        ModuleState {
            path: scope.path().to_string(),
            prefix: scope.prefix().to_string(),
            device: scope.device(),
            metrics: ForwardMetrics::default(),
            residency: scope.checkpoint().residency(scope.device()),
            resident: OnceLock::new(),
        }
    }

    /// The residency of the module's device.
    pub fn residency(&self) -> &Arc<Residency> {
        &self.residency
    }

    /// The module's path in the tree (empty at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The key prefix it was bound under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The device its weights go to (unless placed on the host).
    pub fn device(&self) -> Device {
        self.device
    }

    /// Its forward metrics.
    pub fn metrics(&self) -> &ForwardMetrics {
        &self.metrics
    }
}

/// A bound module: a tree of weights and submodules that can be inspected without loading
/// anything. Implemented by `#[lazy_module]`; object safe, so trees of different module
/// types are walked as `&dyn LazyModule`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lazy module",
    label = "`{Self}` needs #[lazy_module] on its struct",
    note = "#[strategy] goes on the impl block of a #[lazy_module] struct"
)]
pub trait LazyModule {
    /// The module's type name.
    fn type_name(&self) -> &'static str;

    /// Where it was bound, and its forward metrics.
    fn state(&self) -> &ModuleState;

    /// Its config as JSON (`null` for a module without one).
    fn config_json(&self) -> serde_json::Value;

    /// Its own weights (present ones; an absent optional weight is skipped), in declaration
    /// order.
    fn own_weights(&self) -> Vec<&Weight>;

    /// Its own weights, mutably.
    fn own_weights_mut(&mut self) -> Vec<&mut Weight>;

    /// Its direct submodules, in declaration order.
    fn children(&self) -> Vec<&dyn LazyModule>;

    /// Its direct submodules, mutably.
    fn children_mut(&mut self) -> Vec<&mut dyn LazyModule>;

    /// The module's path in the tree (empty at the root).
    fn path(&self) -> &str {
        self.state().path()
    }

    /// The residency of its device: budget, what is resident, counters.
    fn residency(&self) -> &Arc<Residency> {
        self.state().residency()
    }

    /// Its forward metrics: calls and time per execution mode.
    fn metrics(&self) -> &ForwardMetrics {
        self.state().metrics()
    }

    /// Every weight in the tree, depth first, own weights before children's.
    fn all_weights(&self) -> Vec<&Weight> {
        let mut out = self.own_weights();
        for child in self.children() {
            out.extend(child.all_weights());
        }
        out
    }

    /// Calls `f` on every weight in the tree (full paths in [`Weight::path`]), never
    /// materializing.
    fn visit_weights(&self, f: &mut dyn FnMut(&Weight)) {
        for w in self.own_weights() {
            f(w);
        }
        for child in self.children() {
            child.visit_weights(f);
        }
    }

    /// Calls `f` on every submodule in the tree, depth first, parents before children.
    fn visit_modules(&self, f: &mut dyn FnMut(&dyn LazyModule)) {
        for child in self.children() {
            f(child);
            child.visit_modules(f);
        }
    }

    /// Parameters (values) in the tree. A tensor bound by several weights (tied embeddings)
    /// counts once.
    fn parameter_count(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.all_weights()
            .into_iter()
            .filter(|w| seen.insert(w.key().to_string()))
            .map(|w| w.parameter_count())
            .sum()
    }

    /// Every weight in the tree once: a tensor bound by several weights (tied embeddings)
    /// appears at its first binding only.
    fn unique_weights(&self) -> Vec<&Weight> {
        let mut seen = HashSet::new();
        self.all_weights()
            .into_iter()
            .filter(|w| seen.insert(Arc::as_ptr(w.lazy().slot())))
            .collect()
    }

    /// Bytes the tree occupies on its devices once materialized, per dtype (a tied tensor
    /// once, as it is resident once).
    fn bytes_by_dtype(&self) -> BTreeMap<DType, u64> {
        let mut out = BTreeMap::new();
        for w in self.unique_weights() {
            *out.entry(w.dtype()).or_insert(0) += w.resident_bytes();
        }
        out
    }

    /// Bytes the tree occupies once materialized, per device and dtype, without reading
    /// anything.
    fn bytes_by_device(&self) -> BTreeMap<(Device, DType), u64> {
        let mut out = BTreeMap::new();
        for w in self.unique_weights() {
            *out.entry((w.device(), w.dtype())).or_insert(0) += w.resident_bytes();
        }
        out
    }

    /// Bytes the tree occupies once materialized (a tied tensor once).
    fn total_bytes(&self) -> u64 {
        self.unique_weights()
            .iter()
            .map(|w| w.resident_bytes())
            .sum()
    }

    /// Load counters summed over the tree's weights (a tied tensor once).
    fn load_stats(&self) -> LoadStats {
        self.unique_weights()
            .iter()
            .fold(LoadStats::default(), |acc, w| acc.merged(w.stats()))
    }

    /// This module's own weights as a unit of residency (LRU, pins, prefetch), registered
    /// with its device's residency on first use. Registering a module registers its subtree
    /// too, parents before children: the order prefetch follows.
    fn resident(&self) -> &Arc<ResidentModule> {
        let state = self.state();
        let mut fresh = false;
        let unit = state.resident.get_or_init(|| {
            fresh = true;
            let residency = state.residency();
            let slots = self
                .own_weights()
                .into_iter()
                .map(|w| Arc::clone(w.lazy().slot()))
                .filter(|s| Arc::ptr_eq(s.residency(), residency))
                .collect();
            residency.register_module(self.path(), self.type_name(), slots)
        });
        if fresh {
            for child in self.children() {
                child.resident();
            }
        }
        unit
    }

    /// Whether every weight in the tree is loaded.
    fn is_materialized(&self) -> bool {
        self.all_weights().iter().all(|w| w.is_materialized())
    }

    /// Loads every weight in the tree that is not loaded yet, in parallel.
    fn materialize(&self) -> Result<()> {
        // Registered first, so that what is loaded here takes part in LRU eviction.
        self.resident();
        materialize_all(&self.all_weights())
    }

    /// Loads this module's own weights (not its children's), in parallel; what a
    /// `forward_<mode>` entry point does before it runs.
    fn materialize_own(&self) -> Result<()> {
        materialize_all(&self.own_weights())
    }

    /// Loads every weight in the tree if all of it fits in `budget` bytes (counting what is
    /// resident already); otherwise an error saying how much it needs, before anything is
    /// read.
    fn materialize_within(&self, budget: u64) -> Result<()> {
        let need = self.total_bytes();
        if need > budget {
            return Err(Error::Budget {
                module: module_name(self),
                device: self.state().device().to_string(),
                bytes: need,
                budget,
            });
        }
        self.materialize()
    }

    /// What the tree will cost, from metadata alone: bytes per device and dtype, parameters,
    /// and a first estimate of FLOPs per token (two per weight value a token multiplies).
    /// Models refine it with their KV cache and attention (e.g. Llama's `estimate`).
    fn estimate(&self) -> Estimate {
        let weights = self.bytes_by_device();
        let params = self.parameter_count();
        Estimate {
            weight_bytes: weights.clone(),
            kv_cache_bytes: 0,
            parameters: params,
            flops_per_token_prefill: 2 * params,
            flops_per_token_decode: 2 * params,
        }
    }

    /// Drops every loaded, unpinned weight in the tree; returns how many were dropped.
    fn evict(&self) -> usize {
        self.unique_weights().iter().filter(|w| w.evict()).count()
    }

    /// The tree's spec: type, path, key prefix, device, config and weight table, recursively.
    /// [`Bind::bind_spec`] binds it again.
    fn spec(&self) -> serde_json::Value {
        spec::spec_of(self)
    }

    /// A text tree: one line per module and per weight, with path, key, shape, dtype,
    /// parameters, bytes, whether it is loaded and how long loading took.
    fn summary(&self) -> String {
        let mut out = String::new();
        spec::write_summary(self, 0, &mut out);
        out
    }
}

/// What a model will cost, answered from metadata before any byte is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    /// Bytes of weights once materialized, per device and dtype.
    #[serde(serialize_with = "serialize_device_bytes")]
    pub weight_bytes: BTreeMap<(Device, DType), u64>,
    /// Bytes of the per-sequence state (KV cache) for the context length and batch asked for.
    pub kv_cache_bytes: u64,
    /// Parameters (values).
    pub parameters: u64,
    /// Floating-point operations per token in prefill (multiply and add count as two).
    pub flops_per_token_prefill: u64,
    /// Floating-point operations per token in decode.
    pub flops_per_token_decode: u64,
}

impl Estimate {
    /// Bytes of weights on `device`, all dtypes.
    pub fn weight_bytes_on(&self, device: Device) -> u64 {
        self.weight_bytes
            .iter()
            .filter(|((d, _), _)| *d == device)
            .map(|(_, b)| b)
            .sum()
    }

    /// Everything on `device`: weights plus the KV cache (which lives on the model's device).
    pub fn total_bytes_on(&self, device: Device) -> u64 {
        self.weight_bytes_on(device) + self.kv_cache_bytes
    }
}

fn serialize_device_bytes<S: serde::Serializer>(
    m: &BTreeMap<(Device, DType), u64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for ((d, t), b) in m {
        map.serialize_entry(&format!("{d}/{t}"), b)?;
    }
    map.end()
}

/// `Type (path)`, or `Type` at the root.
fn module_name<M: LazyModule + ?Sized>(m: &M) -> String {
    match m.path() {
        "" => m.type_name().to_string(),
        p => format!("{} ({p})", m.type_name()),
    }
}

/// Materializes several modules' trees at once, their weights loaded in parallel (a tied
/// tensor once).
pub fn materialize_modules(modules: &[&dyn LazyModule]) -> Result<()> {
    let mut seen = HashSet::new();
    let mut weights = Vec::new();
    for m in modules {
        for w in m.all_weights() {
            if seen.insert(Arc::as_ptr(w.lazy().slot())) {
                weights.push(w);
            }
        }
    }
    materialize_all(&weights)
}

/// What a `#[config]` type is: cloneable (children get a copy) and serializable (it goes
/// into the module's spec and comes back when the spec is bound again).
#[diagnostic::on_unimplemented(
    message = "the #[config] type `{Self}` must be Clone, Serialize and Deserialize",
    label = "its type goes into the module's spec",
    note = "derive them; a crate that depends only on lazyforge writes \
            #[derive(Clone, lazyforge::serde::Serialize, lazyforge::serde::Deserialize)] \
            #[serde(crate = \"lazyforge::serde\")]"
)]
pub trait ModuleConfig: Clone + serde::Serialize + serde::de::DeserializeOwned {}

impl<T: Clone + serde::Serialize + serde::de::DeserializeOwned> ModuleConfig for T {}

/// A module that can be bound to a checkpoint. Implemented by `#[lazy_module]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lazy module",
    label = "a submodule's type is a #[lazy_module] struct",
    note = "put #[lazy_module] on `{Self}`'s struct, or make this field a #[weight] or #[state]"
)]
pub trait Bind: LazyModule + Sized {
    /// The config the shapes are computed from: the `#[config]` field's type, or `()`.
    type Config: ModuleConfig;

    /// Binds the module in `scope`: checks every declared weight against the checkpoint's
    /// metadata (present, shape, dtype) and fails on the first mismatch, naming the weight's
    /// path, its key, what was expected and what the file has. Reads no tensor data.
    fn bind(config: Self::Config, scope: &Scope<'_>) -> Result<Self>;

    /// Binds a [`spec`](LazyModule::spec) again, to `checkpoint`: same config, same path and
    /// key prefix, same device. Fails if the checkpoint no longer matches the spec's weight
    /// table.
    fn bind_spec(spec: &serde_json::Value, checkpoint: &Checkpoint) -> Result<Self> {
        spec::bind_spec(spec, checkpoint)
    }

    /// This module as a tree node (generated code lists children through it, so that a
    /// field that is not a module is reported once).
    #[doc(hidden)]
    fn __as_dyn(&self) -> &dyn LazyModule {
        self
    }

    /// This module as a mutable tree node.
    #[doc(hidden)]
    fn __as_dyn_mut(&mut self) -> &mut dyn LazyModule {
        self
    }
}

fn materialize_all(weights: &[&Weight]) -> Result<()> {
    // The common case on every forward call after the first: nothing to load, and no reason
    // to wake the thread pool.
    if weights.iter().all(|w| w.is_materialized()) {
        return Ok(());
    }
    weights
        .par_iter()
        .filter(|w| !w.is_materialized())
        .try_for_each(|w| w.get().map(|_| ()))
}

/// Helpers for generated code; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{Bind, ExecutionMode, Strategy};
    use crate::error::Error;
    use std::time::Instant;

    pub use serde_json::Value;

    /// A size a shape or count may be written in: a `usize`, or a reference to one (a plain
    /// `usize` config field is in scope as a reference). Implemented for `usize` alone so
    /// that integer literals infer as `usize`.
    #[diagnostic::on_unimplemented(
        message = "a shape dimension or count is a `usize`, not `{Self}`",
        label = "expected a `usize`, such as `cfg.hidden`"
    )]
    pub trait Dim {
        /// The size.
        fn dim(self) -> usize;
    }

    impl Dim for usize {
        fn dim(self) -> usize {
            self
        }
    }

    impl Dim for &usize {
        fn dim(self) -> usize {
            *self
        }
    }

    /// A shape dimension or count as `usize`.
    pub fn dim(d: impl Dim) -> usize {
        d.dim()
    }

    /// Holds when a module's field `Field` (a marker type named after the field) has a type
    /// that is `Send + Sync`; the message names the field.
    #[diagnostic::on_unimplemented(
        message = "field `{Field}` of a #[lazy_module] must be Send + Sync, and `{Self}` is not",
        label = "field `{Field}` is not Send + Sync",
        note = "a module is shared by the threads that run it; use Arc, Mutex or atomics"
    )]
    pub trait FieldIsSendSync<Field> {}

    impl<T: ?Sized + Send + Sync, Field> FieldIsSendSync<Field> for T {}

    /// Compile-time check that field `Field`'s type `T` is `Send + Sync`.
    pub fn assert_field_is_send_sync<Field, T: ?Sized + FieldIsSendSync<Field>>() {}

    /// Module `M`'s config as JSON. Typed through `M::Config`, whose bounds the trait
    /// already states, so a config that is not serializable is reported once, at its type.
    pub fn config_json<M: Bind>(config: &M::Config) -> Value {
        serde_json::to_value(config)
            .unwrap_or_else(|e| Value::String(format!("config does not serialize: {e}")))
    }

    /// A `forward_<mode>` entry point: pin the module's own weights (materializing them if
    /// needed, within the device's budget), run `f`, time it into the module's metrics.
    pub fn run_mode<M, T, E>(
        module: &M,
        mode: ExecutionMode,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        M: Strategy + ?Sized,
        E: From<Error>,
    {
        let _pin = module.resident().pin()?;
        let start = Instant::now();
        let out = f();
        module.metrics().record(mode, start.elapsed());
        out
    }

    /// The error of `forward(mode, ...)` for a mode the strategy does not list.
    pub fn unsupported_mode<M, T, E>(module: &M, mode: ExecutionMode) -> std::result::Result<T, E>
    where
        M: Strategy,
        E: From<Error>,
    {
        let names: Vec<&str> = M::MODES.iter().map(|m| m.name()).collect();
        let path = module.path();
        Err(E::from(Error::UnsupportedMode {
            module: if path.is_empty() {
                module.type_name().to_string()
            } else {
                format!("{} ({path})", module.type_name())
            },
            mode: mode.to_string(),
            supported: names.join(", "),
        }))
    }
}
