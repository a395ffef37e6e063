//! [`Backend`]: the operations a decoder-only transformer needs, on tensors of one device.

use super::{Cpu, Device, Tensor};
use crate::error::{Error, Result};
use crate::ops::{Activation, KvCache, RopeStyle, RopeTable};
use std::fmt;

/// The ops of one device: every model computation goes through one of these methods, on
/// tensors that live on [`device`](Backend::device).
///
/// Callers use the free functions of [`ops`](crate::ops), which check shapes, dtypes and
/// that all operands share a device before dispatching here; an implementation may rely on
/// those checks. Activations are `f32`; weights (`w`, norm parameters, embedding tables)
/// may be in any stored dtype and are read in place (quantized blocks are not expanded).
/// The CPU implementation is [`Cpu`]; CUDA and HIP implementations fill in the same trait.
pub trait Backend: Send + Sync + fmt::Debug {
    /// The device this backend computes on.
    fn device(&self) -> Device;

    /// `f32` zeros of `shape` on the device.
    fn zeros(&self, shape: &[usize]) -> Result<Tensor>;

    /// A host copy of `t` (a tensor of this device), same shape and dtype.
    fn download(&self, t: &Tensor) -> Result<Tensor>;

    /// A copy of the host tensor `t` on this device, same shape and dtype.
    fn upload(&self, t: &Tensor) -> Result<Tensor>;

    /// `y = W x` (decode): `w` is `[m, k]` in any dtype, `x` is one `f32` row `[1, k]` (or
    /// `[k]`); returns `[1, m]` (or `[m]`).
    fn matvec(&self, w: &Tensor, x: &Tensor) -> Result<Tensor>;

    /// `[W₀ x, W₁ x, ...]` (decode): several weights `[mᵢ, k]` (any dtypes) against one
    /// `f32` row `x`, each result shaped as [`matvec`](Backend::matvec)'s. A backend that
    /// can run them together (one dispatch, the input prepared once) overrides this; the
    /// default calls `matvec` once per weight.
    fn matvec_many(&self, ws: &[&Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
        ws.iter().map(|w| self.matvec(w, x)).collect()
    }

    /// `y = x Wᵀ` (prefill): `x` is `[n, k]` `f32`, `w` is `[m, k]` in any dtype; returns
    /// `[n, m]`.
    fn matmul(&self, x: &Tensor, w: &Tensor) -> Result<Tensor>;

    /// RMSNorm over the last dimension of `x` (`[..., d]`) with `weight` (`[d]`).
    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor>;

    /// LayerNorm over the last dimension of `x` (`[..., d]`) with `weight` and an optional
    /// `bias` (`[d]`).
    fn layer_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor>;

    /// RoPE in place on `x` (`[n, n_heads * head_dim]`), token `t` rotated by
    /// `positions[t]` with the angles of `table`.
    fn rope_in_place(
        &self,
        x: &mut Tensor,
        style: RopeStyle,
        n_heads: usize,
        head_dim: usize,
        positions: &[usize],
        table: &RopeTable,
    ) -> Result<()>;

    /// Causal attention of `q` (`[n, n_heads * head_dim]`, at `positions`) over the keys and
    /// values of `cache` (grouped-query, optional sliding window); returns `q`'s shape.
    fn attention(
        &self,
        q: &Tensor,
        positions: &[usize],
        n_heads: usize,
        cache: &KvCache,
        window: Option<usize>,
    ) -> Result<Tensor>;

    /// Appends `k` and `v` (`[n, n_kv_heads * head_dim]`) at `positions` to `cache`.
    fn kv_append(
        &self,
        cache: &mut KvCache,
        k: &Tensor,
        v: &Tensor,
        positions: &[usize],
    ) -> Result<()>;

    /// Applies `f` to every value of `x`, in place.
    fn activation_in_place(&self, x: &mut Tensor, f: Activation) -> Result<()>;

    /// SwiGLU in place: `gate = silu(gate) · up`, element-wise.
    fn swiglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()>;

    /// GeGLU in place: `gate = gelu_tanh(gate) · up`, element-wise.
    fn geglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()>;

    /// Multiplies every value of `x` by `s`, in place.
    fn scale_in_place(&self, x: &mut Tensor, s: f32) -> Result<()>;

    /// The residual add in place: `x += y`, element-wise.
    fn add_in_place(&self, x: &mut Tensor, y: &Tensor) -> Result<()>;

    /// The bias add in place: `bias` (`[d]`, any dtype) added to every row of `x`
    /// (`[..., d]`).
    fn add_bias_in_place(&self, x: &mut Tensor, bias: &Tensor) -> Result<()>;

    /// Rows `ids` of `table` (`[vocab, hidden]`, any dtype) as `f32` `[ids.len(), hidden]`.
    fn embedding(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor>;

    /// Entries `start..start + len` of dimension `dim` of the `f32` tensor `x`, copied.
    fn narrow(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor>;

    /// Free and total bytes of the device's memory, where the backend can tell (a GPU);
    /// `None` for host memory. A device's residency budget defaults to 90% of the free bytes.
    fn memory_info(&self) -> Option<(u64, u64)> {
        None
    }
}

/// The backend that computes on `device`: [`Cpu`] for [`Device::Cpu`]; for CUDA (feature
/// `cuda`) the device's backend, opened on first use; otherwise the error of
/// [`Device::ensure_available`] (no backend in this build, no driver, or no such device).
pub fn backend(device: Device) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => Ok(&Cpu),
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => Ok(super::cuda::backend(n)?),
        _ => {
            device.ensure_available()?;
            Err(Error::Device {
                device: device.to_string(),
                reason: "this build of lazyforge has no backend for it".into(),
            })
        }
    }
}
