//! Copies that change which values a tensor holds: `narrow`.

use crate::device::Tensor;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Entries `start..start + len` of dimension `dim` of a host `f32` tensor, copied; the
/// other dimensions are kept.
pub fn narrow(x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
    let shape = x.shape();
    let Some(&size) = shape.get(dim) else {
        return Err(Error::Invalid(format!(
            "narrow: dimension {dim} of a tensor of shape {shape:?}"
        )));
    };
    if start.checked_add(len).is_none_or(|end| end > size) {
        return Err(Error::Invalid(format!(
            "narrow: entries {start}..{} of dimension {dim} of a tensor of shape {shape:?}",
            start.saturating_add(len)
        )));
    }
    if x.dtype() != DType::F32 {
        return Err(Error::DType {
            context: format!("narrow: x of shape {shape:?}"),
            dtype: x.dtype().to_string(),
        });
    }
    let values = x.as_f32()?;
    let inner: usize = shape[dim + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape[dim] = len;
    let mut out = Vec::with_capacity(out_shape.iter().product());
    if inner > 0 && len > 0 {
        for outer in values.chunks_exact(size * inner) {
            out.extend_from_slice(&outer[start * inner..(start + len) * inner]);
        }
    }
    Tensor::from_f32(out_shape, out)
}
