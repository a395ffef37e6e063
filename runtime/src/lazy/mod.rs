//! Lazy tensors: a descriptor that knows where a weight lives, plus a slot in its device's
//! [`Residency`] that holds the device tensor once it has been read, converted and placed —
//! exactly once per residency — and that a budget may evict again.

mod budget;
mod metrics;
mod residency;

pub use crate::source::checkpoint::{Checkpoint, Format, OpenOptions};
pub use budget::Budget;
pub use metrics::{LoadCounters, LoadStats};
pub use residency::{ModulePin, Pinned, Residency, ResidencyStats, ResidentModule, Slot};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{Mapping, TensorInfo};
use std::sync::Arc;

/// A weight that is loaded on first use.
///
/// Name, shape, dtype and location live outside the slot, so everything about the tensor is
/// known without loading it. The first [`LazyTensor::get`] reads the bytes, converts them if
/// asked to and places them on the target device; concurrent first calls wait for that one
/// load. A failed load is reported to every caller that waited for it and leaves the slot
/// empty, so a later call retries. Handles on the same bytes in one residency (tied weights)
/// share one slot: one load, one resident copy.
pub struct LazyTensor {
    slot: Arc<Slot>,
}

impl std::fmt::Debug for LazyTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyTensor")
            .field("name", &self.name())
            .field("shape", &self.shape())
            .field("dtype", &self.stored_dtype())
            .field("target", &self.dtype())
            .field("device", &self.device())
            .field("materialized", &self.is_materialized())
            .finish()
    }
}

impl LazyTensor {
    /// A lazy handle on `info` in `file`, to be placed in `residency` (on its device) as
    /// `target` dtype (the stored dtype keeps the bytes as they are; `F32` converts). Checks
    /// the device and the conversion now, so mistakes surface before any data is read.
    pub fn new(
        info: TensorInfo,
        file: Arc<Mapping>,
        residency: &Arc<Residency>,
        target: DType,
        totals: Arc<LoadCounters>,
    ) -> Result<LazyTensor> {
        residency.device().ensure_available()?;
        if target != info.dtype && target != DType::F32 {
            return Err(Error::DType {
                context: format!(
                    "tensor '{}' stored as {} cannot be converted to",
                    info.name, info.dtype
                ),
                dtype: target.to_string(),
            });
        }
        Ok(LazyTensor {
            slot: residency.slot(info, file, target, totals),
        })
    }

    /// The tensor's name in the checkpoint.
    pub fn name(&self) -> &str {
        &self.slot.info().name
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.slot.info().shape
    }

    /// The dtype the tensor has once materialized.
    pub fn dtype(&self) -> DType {
        self.slot.target()
    }

    /// The dtype stored in the checkpoint.
    pub fn stored_dtype(&self) -> DType {
        self.slot.info().dtype
    }

    /// What the checkpoint says about this tensor.
    pub fn info(&self) -> &TensorInfo {
        self.slot.info()
    }

    /// The file it is read from.
    pub fn file(&self) -> &Arc<Mapping> {
        self.slot.file()
    }

    /// The device the tensor is placed on.
    pub fn device(&self) -> Device {
        self.slot.residency().device()
    }

    /// The residency that holds it once materialized.
    pub fn residency(&self) -> &Arc<Residency> {
        self.slot.residency()
    }

    /// Its slot (shared with other handles on the same bytes).
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Bytes the tensor occupies once materialized.
    pub fn resident_bytes(&self) -> u64 {
        self.slot.bytes()
    }

    /// Whether the tensor is loaded.
    pub fn is_materialized(&self) -> bool {
        self.slot.is_resident()
    }

    /// This tensor's load counters (shared by handles on the same slot).
    pub fn stats(&self) -> LoadStats {
        self.slot.stats()
    }

    /// The device tensor, loading it on first use, pinned (never evicted) while the guard
    /// lives.
    pub fn get(&self) -> Result<Pinned> {
        self.slot.get()
    }

    /// Drops the loaded tensor unless someone holds it pinned; the next
    /// [`LazyTensor::get`] loads it again. Returns whether something was evicted.
    pub fn evict(&self) -> bool {
        self.slot.evict()
    }
}
