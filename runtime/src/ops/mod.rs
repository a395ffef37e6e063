//! The ops of decoder-only transformers (Llama, Mistral, GPT-2 style) on [`Tensor`]s, on
//! whatever device the tensors are.
//!
//! Each function checks its operands (shapes, dtypes, and that they all live on one device:
//! a mix is an [`Error::DeviceMismatch`] naming the op) and runs on the
//! [`Backend`] of their device; the result is on that device too.
//! The CPU backend runs the kernels of [`cpu`] (host slices), so CPU results are exactly
//! those kernels' results. Read values back with [`Tensor::to_f32_vec`] or
//! [`Tensor::to_host`].
//!
//! Activations are `f32`, `[n_tokens, features]`; weights are `[out_features, in_features]`
//! in any [`DType`], read in their stored format. Per-sequence state — the
//! [`KvCache`] of each layer and the [`RopeTable`] — is made for a device and grows with the
//! positions used.
//!
//! ```
//! use lazyforge::ops::{self, KvCache, RopeStyle, RopeTable};
//! use lazyforge::{Device, Tensor};
//!
//! // A linear layer on one token (decode), then a residual add.
//! let w = Tensor::from_f32([2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0])?;
//! let x = Tensor::from_f32([1, 3], vec![1.0, 2.0, 3.0])?;
//! let mut y = ops::matvec(&w, &x)?;
//! ops::add_in_place(&mut y, &Tensor::from_f32([1, 2], vec![0.5, 0.5])?)?;
//! assert_eq!(y.to_f32_vec()?, [1.5, 5.5]);
//!
//! // One attention head of width 4 over a KV cache, with RoPE.
//! let (n_heads, head_dim) = (1, 4);
//! let mut table = RopeTable::on_demand(Device::Cpu, head_dim, 10000.0)?;
//! let mut cache = KvCache::new_on(Device::Cpu, 1, head_dim, None)?;
//! let positions = [0, 1];
//! table.reserve(2);
//! let mut q = Tensor::from_f32([2, 4], vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])?;
//! let mut k = q.clone();
//! let v = Tensor::from_f32([2, 4], vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])?;
//! ops::rope(&mut q, RopeStyle::Interleaved, n_heads, head_dim, &positions, &table)?;
//! ops::rope(&mut k, RopeStyle::Interleaved, n_heads, head_dim, &positions, &table)?;
//! cache.append(&k, &v, &positions)?;
//! let out = ops::attention(&q, &positions, n_heads, &cache, None)?;
//! assert_eq!(out.shape(), [2, 4]);
//! assert_eq!(ops::last_row(&out)?.to_f32_vec()?.len(), 4);
//! # Ok::<(), lazyforge::Error>(())
//! ```

pub mod cpu;
mod kv_cache;
mod rope;

pub use kv_cache::KvCache;
pub use rope::{RopeStyle, RopeTable};

use crate::device::{backend, Backend, Device, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// SiLU (swish): `x · sigmoid(x)`.
    Silu,
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    /// GELU, exact (`x · Φ(x)`).
    GeluErf,
}

/// `y = W x` for one token (decode): `w` is `[m, k]` in any dtype, `x` is `f32` `[1, k]` (or
/// `[k]`); returns `[1, m]` (or `[m]`).
pub fn matvec(w: &Tensor, x: &Tensor) -> Result<Tensor> {
    let b = on_one_device("ops::matvec", &[("w", w), ("x", x)])?;
    activations("ops::matvec", "x", x)?;
    let k = w.shape().get(1).copied();
    match (x.shape(), w.shape().len()) {
        (&[kx] | &[1, kx], 2) if Some(kx) == k => {}
        _ => {
            return Err(Error::shape(
                format!("ops::matvec: x (one row) against weight {:?}", w.shape()),
                &[1, k.unwrap_or(0)],
                x.shape(),
            ))
        }
    }
    b.matvec(w, x)
}

/// `[W₀ x, W₁ x, ...]` for one token (decode): weights `[mᵢ, k]` in any dtypes that share
/// the input `x` (`f32` `[1, k]` or `[k]`), e.g. a layer's q, k and v projections. Each
/// result is [`matvec`]'s for its weight; a backend may run them in one dispatch (the CPU
/// does: one team job, the input's block sums computed once).
pub fn matvec_many(ws: &[&Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
    let mut operands = vec![("x", x)];
    operands.extend(ws.iter().map(|w| ("w", *w)));
    let b = on_one_device("ops::matvec_many", &operands)?;
    activations("ops::matvec_many", "x", x)?;
    for w in ws {
        let k = w.shape().get(1).copied();
        match (x.shape(), w.shape().len()) {
            (&[kx] | &[1, kx], 2) if Some(kx) == k => {}
            _ => {
                return Err(Error::shape(
                    format!(
                        "ops::matvec_many: x (one row) against weight {:?}",
                        w.shape()
                    ),
                    &[1, k.unwrap_or(0)],
                    x.shape(),
                ))
            }
        }
    }
    b.matvec_many(ws, x)
}

/// `y = x Wᵀ` for many tokens (prefill): `x` is `f32` `[n, k]`, `w` is `[m, k]` in any
/// dtype; returns `[n, m]`.
pub fn matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let b = on_one_device("ops::matmul", &[("x", x), ("w", w)])?;
    b.matmul(x, w)
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`, `x` `f32` `[...,
/// d]`, `weight` `[d]` in any dtype; returns `x`'s shape.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let b = on_one_device("ops::rms_norm", &[("x", x), ("weight", weight)])?;
    b.rms_norm(x, weight, eps)
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`, `x`
/// `f32` `[..., d]`, `weight` and the optional `bias` `[d]` in any dtype.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let mut operands = vec![("x", x), ("weight", weight)];
    operands.extend(bias.map(|b| ("bias", b)));
    let b = on_one_device("ops::layer_norm", &operands)?;
    b.layer_norm(x, weight, bias, eps)
}

/// RoPE in place on `x` (`f32` `[n, n_heads * head_dim]`, `n = positions.len()`): token `t`
/// rotates by `positions[t]`, pairing dimensions by `style`, with `table`'s angles (only the
/// first `table.rot_dim()` dimensions of each head rotate).
pub fn rope(
    x: &mut Tensor,
    style: RopeStyle,
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    table: &RopeTable,
) -> Result<()> {
    same_device("ops::rope", "x", x.device(), "table", table.device())?;
    let b = on_one_device("ops::rope", &[("x", x)])?;
    activations("ops::rope", "x", x)?;
    if x.elem_count() != positions.len() * n_heads * head_dim {
        return Err(Error::shape(
            format!("ops::rope: x for {} positions", positions.len()),
            &[positions.len(), n_heads * head_dim],
            x.shape(),
        ));
    }
    b.rope_in_place(x, style, n_heads, head_dim, positions, table)
}

/// Causal attention of the queries `q` (`f32` `[n, n_heads * head_dim]`, RoPE applied, at
/// `positions`) over the keys and values of `cache` (their own already appended):
/// grouped-query when `n_heads` is a multiple of the cache's kv heads, restricted to a
/// sliding window of `window` positions if given. Returns `q`'s shape.
pub fn attention(
    q: &Tensor,
    positions: &[usize],
    n_heads: usize,
    cache: &KvCache,
    window: Option<usize>,
) -> Result<Tensor> {
    same_device("ops::attention", "q", q.device(), "cache", cache.device())?;
    let b = on_one_device("ops::attention", &[("q", q)])?;
    activations("ops::attention", "q", q)?;
    b.attention(q, positions, n_heads, cache, window)
}

/// Appends keys and values to `cache`: the same as [`KvCache::append`].
pub fn kv_append(cache: &mut KvCache, k: &Tensor, v: &Tensor, positions: &[usize]) -> Result<()> {
    cache.append(k, v, positions)
}

/// SiLU in place on an `f32` tensor.
pub fn silu_in_place(x: &mut Tensor) -> Result<()> {
    activation_in_place("ops::silu_in_place", x, Activation::Silu)
}

/// GELU (tanh approximation, GPT-2's) in place on an `f32` tensor.
pub fn gelu_tanh_in_place(x: &mut Tensor) -> Result<()> {
    activation_in_place("ops::gelu_tanh_in_place", x, Activation::GeluTanh)
}

/// GELU (exact, erf) in place on an `f32` tensor.
pub fn gelu_erf_in_place(x: &mut Tensor) -> Result<()> {
    activation_in_place("ops::gelu_erf_in_place", x, Activation::GeluErf)
}

/// The SwiGLU gate in place: `gate = silu(gate) · up`, both `f32` of one shape.
pub fn swiglu_in_place(gate: &mut Tensor, up: &Tensor) -> Result<()> {
    let b = elementwise("ops::swiglu_in_place", gate, up)?;
    b.swiglu_in_place(gate, up)
}

/// The GeGLU gate in place (Gemma): `gate = gelu_tanh(gate) · up`, both `f32` of one
/// shape.
pub fn geglu_in_place(gate: &mut Tensor, up: &Tensor) -> Result<()> {
    let b = elementwise("ops::geglu_in_place", gate, up)?;
    b.geglu_in_place(gate, up)
}

/// Multiplies every value of the `f32` tensor `x` by `s`, in place (e.g. Gemma's embedding
/// scale `sqrt(hidden)`).
pub fn scale_in_place(x: &mut Tensor, s: f32) -> Result<()> {
    let b = on_one_device("ops::scale_in_place", &[("x", x)])?;
    activations("ops::scale_in_place", "x", x)?;
    b.scale_in_place(x, s)
}

/// The residual add in place: `x += y`, both `f32` of one shape.
pub fn add_in_place(x: &mut Tensor, y: &Tensor) -> Result<()> {
    let b = elementwise("ops::add_in_place", x, y)?;
    b.add_in_place(x, y)
}

/// The bias add in place: `bias` (`[d]`, any dtype) added to every row of `x` (`f32` `[...,
/// d]`).
pub fn add_bias_in_place(x: &mut Tensor, bias: &Tensor) -> Result<()> {
    let b = on_one_device("ops::add_bias_in_place", &[("x", x), ("bias", bias)])?;
    activations("ops::add_bias_in_place", "x", x)?;
    match x.shape().last() {
        Some(&d) if bias.shape() == [d] => {}
        _ => {
            return Err(Error::shape(
                format!(
                    "ops::add_bias_in_place: bias for x of shape {:?}",
                    x.shape()
                ),
                &[x.shape().last().copied().unwrap_or(0)],
                bias.shape(),
            ))
        }
    }
    b.add_bias_in_place(x, bias)
}

/// Token embeddings: rows `ids` of `table` (`[vocab, hidden]`, any dtype, quantized rows
/// dequantized one at a time) as `f32` `[ids.len(), hidden]`, on the table's device. An id
/// past the vocabulary is an error naming it.
pub fn embedding(table: &Tensor, ids: &[u32]) -> Result<Tensor> {
    let b = on_one_device("ops::embedding", &[("table", table)])?;
    b.embedding(table, ids)
}

/// Entries `start..start + len` of dimension `dim` of the `f32` tensor `x`, copied, on its
/// device (the other dimensions are kept).
pub fn narrow(x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
    let b = on_one_device("ops::narrow", &[("x", x)])?;
    b.narrow(x, dim, start, len)
}

/// The last row of `x` (`[n, d]`, `n > 0`) as `[1, d]`: e.g. the hidden state of a prefill's
/// last token.
pub fn last_row(x: &Tensor) -> Result<Tensor> {
    match x.shape() {
        &[n, _] if n > 0 => narrow(x, 0, n - 1, 1),
        other => Err(Error::shape("ops::last_row: x [n > 0, d]", &[1, 0], other)),
    }
}

/// Applies `f` in place through `x`'s backend.
fn activation_in_place(op: &str, x: &mut Tensor, f: Activation) -> Result<()> {
    let b = on_one_device(op, &[("x", x)])?;
    activations(op, "x", x)?;
    b.activation_in_place(x, f)
}

/// The backend of an element-wise op on two `f32` tensors of one shape and device.
fn elementwise(op: &str, x: &Tensor, y: &Tensor) -> Result<&'static dyn Backend> {
    let b = on_one_device(op, &[("x", x), ("y", y)])?;
    activations(op, "x", x)?;
    activations(op, "y", y)?;
    if x.shape() != y.shape() {
        return Err(Error::shape(format!("{op}: y for x"), x.shape(), y.shape()));
    }
    Ok(b)
}

/// The backend of the one device all `operands` (name, tensor) are on; an error naming `op`
/// and every operand's device when they differ.
fn on_one_device(op: &str, operands: &[(&str, &Tensor)]) -> Result<&'static dyn Backend> {
    let device = operands.first().map_or(Device::Cpu, |(_, t)| t.device());
    if operands.iter().any(|(_, t)| t.device() != device) {
        let found = operands
            .iter()
            .map(|(name, t)| format!("{name} on {}", t.device()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::DeviceMismatch {
            op: op.into(),
            found,
        });
    }
    backend(device)
}

/// An error naming `op` unless two operands' devices agree.
fn same_device(op: &str, a: &str, da: Device, b: &str, db: Device) -> Result<()> {
    if da != db {
        return Err(Error::DeviceMismatch {
            op: op.into(),
            found: format!("{a} on {da}, {b} on {db}"),
        });
    }
    Ok(())
}

/// An error naming `op` unless the activations `x` are `f32`.
fn activations(op: &str, name: &str, x: &Tensor) -> Result<()> {
    if x.dtype() != DType::F32 {
        return Err(Error::DType {
            context: format!("{op}: activations {name} of shape {:?}", x.shape()),
            dtype: x.dtype().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
