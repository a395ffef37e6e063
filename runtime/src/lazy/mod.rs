//! Lazy tensors: a descriptor that knows where a weight lives, plus a cell that holds the
//! device tensor once it has been read, converted and placed — exactly once.

mod metrics;

pub use crate::source::checkpoint::{Checkpoint, Format, OpenOptions};
pub use metrics::{LoadCounters, LoadStats};

use crate::device::{Device, Storage, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{Mapping, TensorInfo};
use once_cell::sync::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A weight that is loaded on first use.
///
/// Name, shape, dtype and location live outside the cell, so everything about the tensor is
/// known without loading it. The first [`LazyTensor::get`] reads the bytes, converts them if
/// asked to and places them on the target device; concurrent first calls wait for that one
/// load. A failed load is reported to every caller that waited for it and leaves the cell
/// empty, so a later call retries.
pub struct LazyTensor {
    info: TensorInfo,
    file: Arc<Mapping>,
    device: Device,
    target: DType,
    cell: OnceCell<Tensor>,
    attempt: Mutex<LoadAttempts>,
    failures_seen: AtomicU64,
    counters: LoadCounters,
    totals: Arc<LoadCounters>,
}

/// What the load lock protects: how many attempts failed, and the last failure, shared with
/// the callers that were waiting on it.
#[derive(Default)]
struct LoadAttempts {
    failures: u64,
    last_error: Option<Error>,
}

impl std::fmt::Debug for LazyTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyTensor")
            .field("name", &self.info.name)
            .field("shape", &self.info.shape)
            .field("dtype", &self.info.dtype)
            .field("target", &self.target)
            .field("device", &self.device)
            .field("materialized", &self.is_materialized())
            .finish()
    }
}

impl LazyTensor {
    /// A lazy handle on `info` in `file`, to be placed on `device` as `target` dtype
    /// (the stored dtype keeps the bytes as they are; `F32` converts). Checks the device and
    /// the conversion now, so mistakes surface before any data is read.
    pub fn new(
        info: TensorInfo,
        file: Arc<Mapping>,
        device: Device,
        target: DType,
        totals: Arc<LoadCounters>,
    ) -> Result<LazyTensor> {
        device.ensure_available()?;
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
            info,
            file,
            device,
            target,
            cell: OnceCell::new(),
            attempt: Mutex::new(LoadAttempts::default()),
            failures_seen: AtomicU64::new(0),
            counters: LoadCounters::default(),
            totals,
        })
    }

    /// The tensor's name in the checkpoint.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.info.shape
    }

    /// The dtype the tensor has once materialized.
    pub fn dtype(&self) -> DType {
        self.target
    }

    /// The dtype stored in the checkpoint.
    pub fn stored_dtype(&self) -> DType {
        self.info.dtype
    }

    /// What the checkpoint says about this tensor.
    pub fn info(&self) -> &TensorInfo {
        &self.info
    }

    /// The device the tensor is placed on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Bytes the tensor occupies once materialized.
    pub fn resident_bytes(&self) -> u64 {
        if self.target == self.info.dtype {
            self.info.len
        } else {
            self.info.elem_count() * self.target.type_size() as u64
        }
    }

    /// Whether the tensor is loaded.
    pub fn is_materialized(&self) -> bool {
        self.cell.get().is_some()
    }

    /// This tensor's load counters.
    pub fn stats(&self) -> LoadStats {
        self.counters.snapshot()
    }

    /// The device tensor, loading it on first use.
    pub fn get(&self) -> Result<&Tensor> {
        if let Some(t) = self.cell.get() {
            self.record_hit();
            return Ok(t);
        }
        // Failures counted before we queue on the lock: if this changes while we wait, the
        // attempt we waited for failed, and we report its error rather than start another.
        let failures_before = self.failures_seen.load(Ordering::Acquire);
        // A panic while loading would poison the lock; the state it guards stays valid
        // (the cell is still empty), so carry on rather than poison the tensor forever.
        let mut attempts = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = self.cell.get() {
            self.record_hit();
            return Ok(t);
        }
        if attempts.failures != failures_before {
            if let Some(e) = &attempts.last_error {
                return Err(e.clone());
            }
        }
        match self.load() {
            Ok(tensor) => {
                attempts.last_error = None;
                Ok(self.cell.get_or_init(|| tensor))
            }
            Err(e) => {
                attempts.failures += 1;
                attempts.last_error = Some(e.clone());
                self.failures_seen
                    .store(attempts.failures, Ordering::Release);
                self.counters.record_failure();
                self.totals.record_failure();
                Err(e)
            }
        }
    }

    /// Drops the loaded tensor, if any; the next [`LazyTensor::get`] loads it again.
    /// Returns whether something was evicted.
    pub fn evict(&mut self) -> bool {
        match self.cell.take() {
            Some(_) => {
                let bytes = self.resident_bytes();
                self.counters.record_eviction(bytes);
                self.totals.record_eviction(bytes);
                true
            }
            None => false,
        }
    }

    fn record_hit(&self) {
        self.counters.record_hit();
        self.totals.record_hit();
    }

    fn load(&self) -> Result<Tensor> {
        let start = Instant::now();
        let tensor = self.read_and_convert().map_err(|reason| Error::Load {
            tensor: self.info.name.clone(),
            path: self.file.path().to_path_buf(),
            reason: Box::new(reason),
        })?;
        let elapsed = start.elapsed();
        let resident = tensor.bytes().len() as u64;
        self.counters.record_load(self.info.len, resident, elapsed);
        self.totals.record_load(self.info.len, resident, elapsed);
        Ok(tensor)
    }

    fn read_and_convert(&self) -> Result<Tensor> {
        let info = &self.info;
        let len = usize::try_from(info.len)
            .map_err(|_| Error::Invalid(format!("{} bytes do not fit in memory", info.len)))?;
        let shape = info.shape.clone();
        if self.target == info.dtype {
            // Zero-copy when mapped and the data is aligned for its element type (GGUF
            // guarantees 32-byte alignment; safetensors headers may leave f32 data unaligned).
            let align = info.dtype.type_size().min(4) as u64;
            if self.file.is_mapped() && info.offset.is_multiple_of(align) {
                self.file.mapped_slice(info.offset, len)?;
                let storage = Storage::Mapped {
                    file: Arc::clone(&self.file),
                    offset: info.offset,
                    len,
                };
                return Tensor::from_storage(shape, info.dtype, storage);
            }
            let bytes = self.file.read_to_aligned(info.offset, len)?;
            return Tensor::from_storage(shape, info.dtype, Storage::Bytes(bytes));
        }
        // Conversion to f32 (validated in `new`).
        let values = match self.file.mapped_slice(info.offset, len)? {
            Some(bytes) => dequantize_to_vec(info.dtype, bytes, info.elem_count())?,
            None => {
                let bytes = self.file.read_to_aligned(info.offset, len)?;
                dequantize_to_vec(info.dtype, bytes.as_slice(), info.elem_count())?
            }
        };
        Tensor::from_f32(shape, values)
    }
}

fn dequantize_to_vec(dtype: DType, bytes: &[u8], n: u64) -> Result<Vec<f32>> {
    let n = usize::try_from(n)
        .map_err(|_| Error::Invalid(format!("{n} values do not fit in memory")))?;
    let mut out = vec![0.0f32; n];
    crate::dtype::dequantize(dtype, bytes, &mut out)?;
    Ok(out)
}
