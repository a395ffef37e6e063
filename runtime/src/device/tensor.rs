//! `Tensor`: a shape, a dtype and bytes on a device.

use super::Device;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use crate::source::{AlignedBytes, Mapping};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Memory that a device backend (CUDA, HIP, ...) allocated on its device: what a
/// [`DeviceBuffer`] holds. The backend that made it is the one that reads and writes it.
pub trait DeviceMemory: Any + Send + Sync + fmt::Debug {
    /// The device the memory is on (never [`Device::Cpu`]: host memory is
    /// [`Storage::Bytes`] or [`Storage::F32`]).
    fn device(&self) -> Device;

    /// Size in bytes.
    fn len(&self) -> usize;

    /// Whether it holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A shared handle to a backend's [`DeviceMemory`] (cloning shares the memory).
#[derive(Debug, Clone)]
pub struct DeviceBuffer(Arc<dyn DeviceMemory>);

impl DeviceBuffer {
    /// A handle to `memory`.
    pub fn new(memory: Arc<dyn DeviceMemory>) -> DeviceBuffer {
        DeviceBuffer(memory)
    }

    /// The device the memory is on.
    pub fn device(&self) -> Device {
        self.0.device()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The memory, for the backend that made it.
    pub fn memory(&self) -> &Arc<dyn DeviceMemory> {
        &self.0
    }

    /// The memory as the backend's own type `T`, or `None` if it is another type.
    pub fn downcast_ref<T: DeviceMemory>(&self) -> Option<&T> {
        let any: &dyn Any = self.0.as_ref();
        any.downcast_ref::<T>()
    }
}

/// Where a tensor's bytes are: host memory (the first three) or a device's.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A zero-copy view of a memory-mapped checkpoint.
    Mapped {
        /// The mapped file.
        file: Arc<Mapping>,
        /// Byte offset of the tensor's data.
        offset: u64,
        /// Byte length of the tensor's data.
        len: usize,
    },
    /// Owned, 16-byte-aligned bytes (converted or read weights).
    Bytes(AlignedBytes),
    /// Owned `f32` values (activations).
    F32(Vec<f32>),
    /// Memory on a device other than the host, owned by that device's backend.
    Device(DeviceBuffer),
}

impl Storage {
    /// The device the bytes are on.
    pub fn device(&self) -> Device {
        match self {
            Storage::Device(b) => b.device(),
            Storage::Mapped { .. } | Storage::Bytes(_) | Storage::F32(_) => Device::Cpu,
        }
    }

    /// Whether the bytes are in host memory (readable as a slice).
    pub fn is_host(&self) -> bool {
        !matches!(self, Storage::Device(_))
    }

    /// Size in bytes, wherever they are.
    pub fn byte_len(&self) -> usize {
        match self {
            Storage::Mapped { len, .. } => *len,
            Storage::Bytes(b) => b.len(),
            Storage::F32(v) => std::mem::size_of_val(v.as_slice()),
            Storage::Device(b) => b.len(),
        }
    }

    /// The host bytes; `None` for device memory.
    fn host_bytes(&self) -> Option<&[u8]> {
        match self {
            Storage::Mapped { file, offset, len } => Some(
                file.mapped_slice(*offset, *len)
                    .ok()
                    .flatten()
                    .expect("Storage::Mapped is only built over a mapped file, for a range checked against it"),
            ),
            Storage::Bytes(b) => Some(b.as_slice()),
            Storage::F32(v) => Some(bytemuck::cast_slice(v)),
            Storage::Device(_) => None,
        }
    }
}

/// A tensor on a device: row-major, last dimension contiguous.
///
/// Shapes are written outermost first, as in PyTorch: a linear layer's weight is
/// `[out_features, in_features]` (GGUF lists the same dimensions in the reverse order).
///
/// Its [`device`](Tensor::device) is where its [`Storage`] is. Host tensors (CPU) expose
/// their bytes and values as slices; a device tensor's bytes are only reachable through its
/// backend (the [`ops`](crate::ops)) or by copying it back with [`to_host`](Tensor::to_host)
/// — the slice accessors return an error for it, never a panic.
#[derive(Debug, Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Storage,
}

impl Tensor {
    /// A tensor over `storage`, checking that the byte length fits shape and dtype (and,
    /// for a mapped view, that the range lies in the mapping).
    pub fn from_storage(shape: Vec<usize>, dtype: DType, storage: Storage) -> Result<Tensor> {
        let t = Tensor {
            shape,
            dtype,
            storage,
        };
        let n = t.elem_count();
        let want = if n == 0 {
            Some(0)
        } else if t
            .shape
            .last()
            .is_some_and(|&c| !c.is_multiple_of(dtype.block_size()))
        {
            None
        } else {
            dtype.bytes_for(n)
        };
        match &t.storage {
            Storage::F32(_) if dtype != DType::F32 => {
                return Err(Error::Invalid(format!("f32 storage labelled as {dtype}")));
            }
            Storage::Mapped { file, offset, len }
                if file.mapped_slice(*offset, *len)?.is_none() =>
            {
                return Err(Error::Invalid(format!(
                    "Storage::Mapped over {}, which is not memory-mapped",
                    file.path().display()
                )));
            }
            Storage::Device(b) if b.device() == Device::Cpu => {
                return Err(Error::Invalid(
                    "Storage::Device holds memory that says it is on the cpu; host memory is \
                     Storage::Bytes or Storage::F32"
                        .into(),
                ));
            }
            _ => {}
        }
        let have = t.storage.byte_len();
        if want != Some(have) {
            return Err(Error::Invalid(format!(
                "tensor of shape {:?} and dtype {dtype} needs {} bytes, storage has {have}",
                t.shape,
                want.map_or("a whole number of blocks per row, and".to_string(), |w| w
                    .to_string()),
            )));
        }
        Ok(t)
    }

    /// An `f32` host tensor owning `data`.
    pub fn from_f32(shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Result<Tensor> {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Invalid(format!(
                "shape {shape:?} holds {n} values, {} given",
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            dtype: DType::F32,
            storage: Storage::F32(data),
        })
    }

    /// An `f32` host tensor of zeros.
    pub fn zeros(shape: impl Into<Vec<usize>>) -> Tensor {
        let shape = shape.into();
        let n = shape.iter().product();
        Tensor {
            shape,
            dtype: DType::F32,
            storage: Storage::F32(vec![0.0; n]),
        }
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The storage format.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the bytes are on (from the storage).
    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// Whether the bytes are in host memory.
    pub fn is_host(&self) -> bool {
        self.storage.is_host()
    }

    /// Where the bytes are.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Number of values.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the bytes in the tensor's dtype, wherever they are.
    pub fn byte_len(&self) -> usize {
        self.storage.byte_len()
    }

    /// The raw bytes in the tensor's dtype, for a host tensor; a device tensor has no host
    /// bytes and gives an empty slice (use [`host_bytes`](Tensor::host_bytes) to be told,
    /// [`byte_len`](Tensor::byte_len) for its size).
    pub fn bytes(&self) -> &[u8] {
        self.storage.host_bytes().unwrap_or(&[])
    }

    /// The raw bytes in the tensor's dtype; an error for a tensor in device memory.
    pub fn host_bytes(&self) -> Result<&[u8]> {
        self.storage
            .host_bytes()
            .ok_or_else(|| self.not_on_host("host_bytes"))
    }

    /// Whether the bytes are a view of a mapped file (no copy was made).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// The `f32` values of a host tensor; an error unless the dtype is F32 and the tensor
    /// is in host memory.
    pub fn as_f32(&self) -> Result<&[f32]> {
        if self.dtype != DType::F32 {
            return Err(Error::DType {
                context: "as_f32".into(),
                dtype: self.dtype.to_string(),
            });
        }
        match &self.storage {
            Storage::F32(v) => Ok(v),
            _ => bytemuck::try_cast_slice(self.host_bytes()?).map_err(|e| {
                Error::Invalid(format!("f32 tensor bytes are not viewable as f32: {e}"))
            }),
        }
    }

    /// The `f32` values, mutably; only for owned `f32` host tensors (activations).
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        if !self.is_host() {
            return Err(self.not_on_host("as_f32_mut"));
        }
        match &mut self.storage {
            Storage::F32(v) => Ok(v),
            _ => Err(Error::Invalid(
                "as_f32_mut: only owned f32 tensors (activations) are mutable".into(),
            )),
        }
    }

    /// Consumes the tensor into its `f32` values (copied back from a device, dequantized
    /// from blocks, or moved out of an owned `f32` host tensor).
    pub fn into_f32_vec(self) -> Result<Vec<f32>> {
        match self.storage {
            Storage::F32(v) => Ok(v),
            _ => self.to_f32_vec(),
        }
    }

    /// All values converted to `f32` on the host (copied back from a device, dequantizing
    /// blocks): how an application reads results.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        if !self.is_host() {
            return self.to_host()?.into_f32_vec();
        }
        let mut out = vec![0.0f32; self.elem_count()];
        dtype::dequantize(self.dtype, self.host_bytes()?, &mut out)?;
        Ok(out)
    }

    /// An owned `f32` host copy of this tensor.
    pub fn to_f32(&self) -> Result<Tensor> {
        Tensor::from_f32(self.shape.clone(), self.to_f32_vec()?)
    }

    /// The tensor in host memory, same shape and dtype: a clone for a host tensor, a copy
    /// through its backend for a device tensor (an error when this build has none).
    pub fn to_host(&self) -> Result<Tensor> {
        if self.is_host() {
            return Ok(self.clone());
        }
        super::backend(self.device())?.download(self)
    }

    /// The tensor on `device`, same shape and dtype: a clone when it is already there.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if self.device() == device {
            return Ok(self.clone());
        }
        let host = self.to_host()?;
        match device {
            Device::Cpu => Ok(host),
            _ => super::backend(device)?.upload(&host),
        }
    }

    /// The two dimensions of a matrix `[rows, cols]`.
    pub fn dims2(&self) -> Result<(usize, usize)> {
        match self.shape[..] {
            [r, c] => Ok((r, c)),
            _ => Err(Error::Invalid(format!(
                "expected a matrix, found shape {:?}",
                self.shape
            ))),
        }
    }

    /// Bytes of one row of the innermost dimension (`shape.last()` values).
    pub fn row_stride_bytes(&self) -> usize {
        let cols = self.shape.last().copied().unwrap_or(1);
        self.dtype
            .bytes_for(cols)
            .expect("constructors check that each row is a whole number of blocks")
    }

    /// The host bytes of row `i`, treating the tensor as `[elem_count / cols, cols]`; an
    /// error past the last row or for a tensor in device memory.
    pub fn row_bytes(&self, i: usize) -> Result<&[u8]> {
        let s = self.row_stride_bytes();
        let bytes = self.host_bytes()?;
        let rows = bytes.len().checked_div(s).unwrap_or(0);
        bytes.get(i * s..(i + 1) * s).ok_or_else(|| {
            Error::Invalid(format!(
                "row_bytes: row {i} of a tensor of shape {:?} with {rows} rows",
                self.shape
            ))
        })
    }

    /// Rows `start..start + len` of dimension `dim` (a copy, on the tensor's device): e.g.
    /// the last token's hidden state `x.narrow(0, n - 1, 1)`, or the keys of a fused QKV
    /// projection `qkv.narrow(1, d, d)`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        crate::ops::narrow(self, dim, start, len)
    }

    /// The same values under another shape with the same element count.
    pub fn reshape(mut self, shape: impl Into<Vec<usize>>) -> Result<Tensor> {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        if n != self.elem_count()
            || shape
                .last()
                .is_some_and(|&c| !c.is_multiple_of(self.dtype.block_size()))
        {
            return Err(Error::shape("reshape", &shape, &self.shape));
        }
        self.shape = shape;
        Ok(self)
    }

    /// The error for reading host memory of a tensor that is on a device.
    fn not_on_host(&self, op: &str) -> Error {
        Error::Device {
            device: self.device().to_string(),
            reason: format!(
                "{op}: the tensor of shape {:?} is in device memory, not on the host; copy it \
                 back with Tensor::to_host() or Tensor::to_f32_vec()",
                self.shape
            ),
        }
    }
}
