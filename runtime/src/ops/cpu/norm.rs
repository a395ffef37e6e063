//! Normalization over the last dimension: RMSNorm (Llama, Mistral) and LayerNorm (GPT-2).

use super::vector::{sum, sum_squares};
use crate::device::Tensor;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + eps) * weight`.
///
/// `x` is `f32` of shape `[..., d]` (usually `[n_tokens, d]`), `weight` is `[d]` in any dtype
/// (dequantized to `f32`). Computed in `f32` in the order HF transformers and ggml use:
/// `(x * rsqrt(mean(x²) + eps)) * weight`. Returns a tensor of `x`'s shape.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let w = norm_param("rms_norm", "weight", x, weight)?;
    let mut y = x.as_f32()?.to_vec();
    rms_norm_rows(&mut y, &w, eps);
    Tensor::from_f32(x.shape(), y)
}

/// [`rms_norm`] in place, for an owned `f32` tensor `x` of shape `[..., d]`.
pub fn rms_norm_in_place(x: &mut Tensor, weight: &Tensor, eps: f32) -> Result<()> {
    let w = norm_param("rms_norm_in_place", "weight", x, weight)?;
    rms_norm_rows(x.as_f32_mut()?, &w, eps);
    Ok(())
}

/// LayerNorm over the last dimension: `y = (x - mean) / sqrt(var + eps) * weight + bias`,
/// with the biased variance (as PyTorch).
///
/// `x` is `f32` of shape `[..., d]`; `weight` and the optional `bias` are `[d]` in any dtype.
/// Computed in `f32`. Returns a tensor of `x`'s shape.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let w = norm_param("layer_norm", "weight", x, weight)?;
    let b = bias
        .map(|b| norm_param("layer_norm", "bias", x, b))
        .transpose()?;
    let mut y = x.as_f32()?.to_vec();
    layer_norm_rows(&mut y, &w, b.as_deref(), eps);
    Tensor::from_f32(x.shape(), y)
}

/// [`layer_norm`] in place, for an owned `f32` tensor `x` of shape `[..., d]`.
pub fn layer_norm_in_place(
    x: &mut Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<()> {
    let w = norm_param("layer_norm_in_place", "weight", x, weight)?;
    let b = bias
        .map(|b| norm_param("layer_norm_in_place", "bias", x, b))
        .transpose()?;
    layer_norm_rows(x.as_f32_mut()?, &w, b.as_deref(), eps);
    Ok(())
}

/// Checks `x` (`f32`, `[..., d]`) against a `[d]` parameter and returns the parameter in `f32`
/// (borrowed when it is stored as `f32`, dequantized otherwise).
fn norm_param<'a>(
    op: &str,
    name: &str,
    x: &Tensor,
    param: &'a Tensor,
) -> Result<std::borrow::Cow<'a, [f32]>> {
    if x.dtype() != DType::F32 {
        return Err(Error::DType {
            context: format!("{op}: activations x"),
            dtype: x.dtype().to_string(),
        });
    }
    let d = match x.shape().last() {
        Some(&d) if d > 0 => d,
        _ => {
            return Err(Error::Invalid(format!(
                "{op}: x must have a non-empty last dimension, found shape {:?}",
                x.shape()
            )))
        }
    };
    if param.shape() != [d] {
        return Err(Error::shape(
            format!("{op}: {name} for x of shape {:?}", x.shape()),
            &[d],
            param.shape(),
        ));
    }
    if let Ok(w) = param.as_f32() {
        return Ok(std::borrow::Cow::Borrowed(w));
    }
    param.to_f32_vec().map(std::borrow::Cow::Owned)
}

/// RMSNorm of each `weight.len()`-long row of `x`.
fn rms_norm_rows(x: &mut [f32], weight: &[f32], eps: f32) {
    let d = weight.len();
    for row in x.chunks_exact_mut(d) {
        let scale = 1.0 / (sum_squares(row) / d as f32 + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = (*v * scale) * w;
        }
    }
}

/// LayerNorm of each `weight.len()`-long row of `x`.
fn layer_norm_rows(x: &mut [f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
    let d = weight.len();
    for row in x.chunks_exact_mut(d) {
        let mean = sum(row) / d as f32;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let scale = 1.0 / (sum_squares(row) / d as f32 + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = (*v * scale) * w;
        }
        if let Some(bias) = bias {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}
