//! [`Cpu`]: the [`Backend`] of host memory, running the kernels of
//! [`ops::cpu`](crate::ops::cpu) on host tensors.

use super::{Backend, Device, Storage, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{cpu, Activation, KvCache, RopeStyle, RopeTable};

/// The CPU backend: host tensors, the [`ops::cpu`](crate::ops::cpu) kernels (the same
/// operations in the same order, so the same numbers bit for bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu;

impl Backend for Cpu {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::zeros(shape))
    }

    fn download(&self, t: &Tensor) -> Result<Tensor> {
        host(&[("t", t)], "download")?;
        Ok(t.clone())
    }

    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        host(&[("t", t)], "upload")?;
        Ok(t.clone())
    }

    fn matvec(&self, w: &Tensor, x: &Tensor) -> Result<Tensor> {
        let y = cpu::matvec(w, x.as_f32()?)?;
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = y.len();
        }
        Tensor::from_f32(shape, y)
    }

    fn matvec_many(&self, ws: &[&Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
        let ys = cpu::matvec_many(ws, x.as_f32()?)?;
        ys.into_iter()
            .map(|y| {
                let mut shape = x.shape().to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = y.len();
                }
                Tensor::from_f32(shape, y)
            })
            .collect()
    }

    fn matmul(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        cpu::matmul(x, w)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        cpu::rms_norm(x, weight, eps)
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        cpu::layer_norm(x, weight, bias, eps)
    }

    fn rope_in_place(
        &self,
        x: &mut Tensor,
        style: RopeStyle,
        n_heads: usize,
        head_dim: usize,
        positions: &[usize],
        table: &RopeTable,
    ) -> Result<()> {
        let x = owned_f32(x)?;
        match style {
            RopeStyle::Interleaved => cpu::rope_interleaved(x, n_heads, head_dim, positions, table),
            RopeStyle::SplitHalf => cpu::rope_split_half(x, n_heads, head_dim, positions, table),
        }
    }

    fn attention(
        &self,
        q: &Tensor,
        positions: &[usize],
        n_heads: usize,
        cache: &KvCache,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let out = cpu::attention(q.as_f32()?, positions, n_heads, &cache.view()?, window)?;
        Tensor::from_f32(q.shape(), out)
    }

    fn kv_append(
        &self,
        cache: &mut KvCache,
        k: &Tensor,
        v: &Tensor,
        positions: &[usize],
    ) -> Result<()> {
        cache.append_host(k.as_f32()?, v.as_f32()?, positions)
    }

    fn activation_in_place(&self, x: &mut Tensor, f: Activation) -> Result<()> {
        let x = owned_f32(x)?;
        match f {
            Activation::Silu => cpu::silu_in_place(x),
            Activation::GeluTanh => cpu::gelu_tanh_in_place(x),
            Activation::GeluErf => cpu::gelu_erf_in_place(x),
        }
        Ok(())
    }

    fn swiglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()> {
        cpu::swiglu_in_place(owned_f32(gate)?, up.as_f32()?)
    }

    fn geglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()> {
        cpu::geglu_in_place(owned_f32(gate)?, up.as_f32()?)
    }

    fn scale_in_place(&self, x: &mut Tensor, s: f32) -> Result<()> {
        cpu::scale_in_place(owned_f32(x)?, s);
        Ok(())
    }

    fn add_in_place(&self, x: &mut Tensor, y: &Tensor) -> Result<()> {
        cpu::add_in_place(owned_f32(x)?, y.as_f32()?)
    }

    fn add_bias_in_place(&self, x: &mut Tensor, bias: &Tensor) -> Result<()> {
        let bias = bias.to_f32_vec()?;
        cpu::add_rows_in_place(owned_f32(x)?, &bias)
    }

    fn embedding(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor> {
        cpu::embedding(table, ids)
    }

    fn narrow(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        cpu::narrow(x, dim, start, len)
    }
}

/// The values of an `f32` host tensor, mutably; a tensor that does not own them (a mapped
/// or byte-backed `f32` weight) first becomes an owned copy.
fn owned_f32(x: &mut Tensor) -> Result<&mut [f32]> {
    if x.is_host() && x.dtype() == DType::F32 && !matches!(x.storage(), Storage::F32(_)) {
        *x = x.to_f32()?;
    }
    x.as_f32_mut()
}

/// An error naming `op` unless every operand is in host memory.
fn host(operands: &[(&str, &Tensor)], op: &str) -> Result<()> {
    match operands.iter().find(|(_, t)| !t.is_host()) {
        Some((name, t)) => Err(Error::DeviceMismatch {
            op: format!("Cpu::{op}"),
            found: format!("{name} on {}, the backend on cpu", t.device()),
        }),
        None => Ok(()),
    }
}
