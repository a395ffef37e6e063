//! [`Weight`]: the field type of a declared weight — a lazy handle plus where it sits in the
//! module tree.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::lazy::{LazyTensor, LoadStats, Pinned};

/// A module's weight: bound (checked against the checkpoint's metadata) but loaded only on
/// first [`Weight::get`].
#[derive(Debug)]
pub struct Weight {
    path: String,
    field: &'static str,
    tensor: LazyTensor,
}

impl Weight {
    /// A weight at `path` (its field is `field`) over `tensor`.
    pub fn new(path: String, field: &'static str, tensor: LazyTensor) -> Weight {
        Weight {
            path,
            field,
            tensor,
        }
    }

    /// The device tensor, materializing it on first use (exactly once per residency across
    /// threads), pinned against eviction while the guard lives.
    pub fn get(&self) -> Result<Pinned> {
        self.tensor.get()
    }

    /// The weight's path in the module tree (`blocks[3].attn.q`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The name of the struct field that declares it.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The checkpoint key it was bound to (the fallback key, if that was used).
    pub fn key(&self) -> &str {
        self.tensor.name()
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    /// The dtype on the device.
    pub fn dtype(&self) -> DType {
        self.tensor.dtype()
    }

    /// The device it is placed on.
    pub fn device(&self) -> Device {
        self.tensor.device()
    }

    /// Number of parameters (values).
    pub fn parameter_count(&self) -> u64 {
        self.tensor.info().elem_count()
    }

    /// Bytes it occupies on its device once materialized.
    pub fn resident_bytes(&self) -> u64 {
        self.tensor.resident_bytes()
    }

    /// Whether it is loaded.
    pub fn is_materialized(&self) -> bool {
        self.tensor.is_materialized()
    }

    /// Its load counters.
    pub fn stats(&self) -> LoadStats {
        self.tensor.stats()
    }

    /// The lazy handle.
    pub fn lazy(&self) -> &LazyTensor {
        &self.tensor
    }

    /// Drops the loaded tensor unless it is pinned; returns whether one was dropped.
    pub fn evict(&self) -> bool {
        self.tensor.evict()
    }
}
