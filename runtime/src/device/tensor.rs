//! `Tensor`: a shape, a dtype and bytes on a device.

use super::Device;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use crate::source::{AlignedBytes, Mapping};
use std::sync::Arc;

/// Where a host tensor's bytes are.
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
}

/// A tensor on a device: row-major, last dimension contiguous.
///
/// Shapes are written outermost first, as in PyTorch: a linear layer's weight is
/// `[out_features, in_features]` (GGUF lists the same dimensions in the reverse order).
#[derive(Debug, Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Storage,
}

impl Tensor {
    /// A tensor over `storage`, checking that the byte length fits shape and dtype.
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
        if matches!(t.storage, Storage::F32(_)) && dtype != DType::F32 {
            return Err(Error::Invalid(format!("f32 storage labelled as {dtype}")));
        }
        if want != Some(t.bytes().len()) {
            return Err(Error::Invalid(format!(
                "tensor of shape {:?} and dtype {dtype} needs {} bytes, storage has {}",
                t.shape,
                want.map_or("a whole number of blocks per row, and".to_string(), |w| w
                    .to_string()),
                t.bytes().len()
            )));
        }
        Ok(t)
    }

    /// An `f32` tensor owning `data`.
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

    /// An `f32` tensor of zeros.
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

    /// The device the bytes are on.
    pub fn device(&self) -> Device {
        Device::Cpu
    }

    /// Where the bytes are.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Number of values.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw bytes in the tensor's dtype.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { file, offset, len } => file
                .mapped_slice(*offset, *len)
                .ok()
                .flatten()
                .expect("Storage::Mapped is only built over a mapped file, for a range checked against it"),
            Storage::Bytes(b) => b.as_slice(),
            Storage::F32(v) => bytemuck::cast_slice(v),
        }
    }

    /// Whether the bytes are a view of a mapped file (no copy was made).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// The `f32` values; an error unless the dtype is F32.
    pub fn as_f32(&self) -> Result<&[f32]> {
        if self.dtype != DType::F32 {
            return Err(Error::DType {
                context: "as_f32".into(),
                dtype: self.dtype.to_string(),
            });
        }
        match &self.storage {
            Storage::F32(v) => Ok(v),
            _ => bytemuck::try_cast_slice(self.bytes()).map_err(|e| {
                Error::Invalid(format!("f32 tensor bytes are not viewable as f32: {e}"))
            }),
        }
    }

    /// The `f32` values, mutably; only for owned `f32` tensors (activations).
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        match &mut self.storage {
            Storage::F32(v) => Ok(v),
            _ => Err(Error::Invalid(
                "as_f32_mut: only owned f32 tensors (activations) are mutable".into(),
            )),
        }
    }

    /// Consumes an owned f32 tensor into its values.
    pub fn into_f32_vec(self) -> Result<Vec<f32>> {
        match self.storage {
            Storage::F32(v) => Ok(v),
            _ => self.to_f32_vec(),
        }
    }

    /// All values converted to `f32` (dequantizing blocks).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.elem_count()];
        dtype::dequantize(self.dtype, self.bytes(), &mut out)?;
        Ok(out)
    }

    /// An owned `f32` copy of this tensor.
    pub fn to_f32(&self) -> Result<Tensor> {
        Tensor::from_f32(self.shape.clone(), self.to_f32_vec()?)
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

    /// The bytes of row `i`, treating the tensor as `[elem_count / cols, cols]`.
    pub fn row_bytes(&self, i: usize) -> &[u8] {
        let s = self.row_stride_bytes();
        &self.bytes()[i * s..(i + 1) * s]
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
}
