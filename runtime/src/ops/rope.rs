//! Rotary position embedding (RoPE): the two layouts checkpoints use, and the table of
//! rotation angles (per-sequence state that grows with the positions reached).
//!
//! - **Interleaved** (GGUF llama, ggml "normal" mode): dimension pairs `(2i, 2i+1)` rotate
//!   together.
//! - **Split half** (HF transformers `rotate_half`, GPT-NeoX): dimensions `(i, i + rot_dim/2)`
//!   rotate together.
//!
//! Pair `i` rotates by the angle `pos · inv_freq[i]`. The two layouts are the same operation
//! on differently ordered weights: llama.cpp's converter permutes each head's rows of `W_q`
//! and `W_k` so that GGUF pair `(2i, 2i+1)` holds HF dimensions `(i, i + d/2)`.

use crate::device::{self, Device};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Positions a growing table caches at least, once it caches any.
const MIN_POSITIONS: usize = 16;

/// How RoPE pairs dimensions, which depends on how the q and k weights were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RopeStyle {
    /// Pairs `(2i, 2i+1)`: GGUF llama files (weights permuted by the converter).
    Interleaved,
    /// Pairs `(i, i + d/2)`: HF checkpoints (`rotate_half`).
    SplitHalf,
}

/// `cos`/`sin` of the rotation angles, computed exactly as HF transformers Llama does in
/// `f32`:
///
/// ```text
/// inv_freq[i] = 1 / theta^((2i) / rot_dim)     (f32 division, f32 powf, f32 reciprocal)
/// angle       = (pos as f32) · inv_freq[i]     (f32)
/// cos, sin    = cos(angle), sin(angle)         (f32)
/// ```
///
/// The table is only a cache: positions at or past [`max_positions`](RopeTable::max_positions)
/// are not an error, their angles are computed on the fly by the same formulas, and
/// [`reserve`](RopeTable::reserve) grows the cache (doubling) as a sequence reaches them, so
/// a table made by [`RopeTable::on_demand`] costs memory for the positions used, not for the
/// model's whole context.
#[derive(Debug, Clone)]
pub struct RopeTable {
    device: Device,
    rot_dim: usize,
    max_positions: usize,
    inv_freq: Vec<f32>,
    /// `[max_positions, rot_dim / 2]`.
    cos: Vec<f32>,
    /// `[max_positions, rot_dim / 2]`.
    sin: Vec<f32>,
}

impl RopeTable {
    /// A CPU table for the first `rot_dim` dimensions of each head (usually `rot_dim =
    /// head_dim`) with base `theta` (Llama 2: 10000, SmolLM2: 100000, Mistral: 1000000),
    /// caching positions `0..max_positions` now.
    pub fn new(rot_dim: usize, theta: f32, max_positions: usize) -> Result<RopeTable> {
        RopeTable::from_inv_freq(inverse_frequencies(rot_dim, theta)?, max_positions)
    }

    /// An empty table for `device` that caches positions as [`reserve`](RopeTable::reserve)
    /// reaches them (what per-sequence state uses). An error naming the device when this
    /// build has no backend for it.
    pub fn on_demand(device: Device, rot_dim: usize, theta: f32) -> Result<RopeTable> {
        device::backend(device)?;
        let mut table = RopeTable::from_inv_freq(inverse_frequencies(rot_dim, theta)?, 0)?;
        table.device = device;
        Ok(table)
    }

    /// A CPU table from given inverse frequencies, one per rotated pair (`rot_dim =
    /// 2 · inv_freq.len()`), for scaled variants that adjust them (e.g. Llama 3's), caching
    /// positions `0..max_positions` now.
    pub fn from_inv_freq(inv_freq: Vec<f32>, max_positions: usize) -> Result<RopeTable> {
        check_rot_dim(2 * inv_freq.len())?;
        let mut table = RopeTable {
            device: Device::Cpu,
            rot_dim: 2 * inv_freq.len(),
            max_positions: 0,
            inv_freq,
            cos: Vec::new(),
            sin: Vec::new(),
        };
        table.cache_positions(max_positions);
        Ok(table)
    }

    /// Caches at least positions `0..positions`: nothing when they already are, otherwise
    /// grows the cache to `max(positions, 2 · max_positions, 16)` positions (amortized
    /// doubling), computing the new rows by the same formulas.
    pub fn reserve(&mut self, positions: usize) {
        if positions > self.max_positions {
            let grown = positions.max(2 * self.max_positions).max(MIN_POSITIONS);
            self.cache_positions(grown);
        }
    }

    /// Extends the cache to `0..positions` (never shrinks it).
    fn cache_positions(&mut self, positions: usize) {
        if positions <= self.max_positions {
            return;
        }
        let half = self.rot_dim / 2;
        let (mut cos, mut sin) = (vec![0.0; half], vec![0.0; half]);
        self.cos
            .reserve_exact((positions - self.max_positions) * half);
        self.sin
            .reserve_exact((positions - self.max_positions) * half);
        for pos in self.max_positions..positions {
            self.angles(pos, &mut cos, &mut sin);
            self.cos.extend_from_slice(&cos);
            self.sin.extend_from_slice(&sin);
        }
        self.max_positions = positions;
    }

    /// The device the table was made for.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Number of rotated dimensions per head (even).
    pub fn rot_dim(&self) -> usize {
        self.rot_dim
    }

    /// Positions whose `cos`/`sin` are cached.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The inverse frequencies, one per rotated pair.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Bytes held by the inverse frequencies and the cached `cos`/`sin`.
    pub fn memory_bytes(&self) -> usize {
        (self.inv_freq.capacity() + self.cos.capacity() + self.sin.capacity())
            * std::mem::size_of::<f32>()
    }

    /// `cos` and `sin` of each pair's angle at `pos`, into slices of `rot_dim / 2`.
    fn angles(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        let p = pos as f32;
        for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&self.inv_freq) {
            let angle = p * f;
            *c = angle.cos();
            *s = angle.sin();
        }
    }

    /// Calls `f(token, cos, sin)` for each position, from the cache or computed on the fly.
    pub(crate) fn for_each_position(
        &self,
        positions: &[usize],
        mut f: impl FnMut(usize, &[f32], &[f32]),
    ) {
        let half = self.rot_dim / 2;
        let (mut cos, mut sin) = (vec![0.0; half], vec![0.0; half]);
        for (t, &pos) in positions.iter().enumerate() {
            if pos < self.max_positions {
                let row = pos * half..(pos + 1) * half;
                f(t, &self.cos[row.clone()], &self.sin[row]);
            } else {
                self.angles(pos, &mut cos, &mut sin);
                f(t, &cos, &sin);
            }
        }
    }
}

/// HF's inverse frequencies `1 / theta^((2i) / rot_dim)`, checking `theta` and `rot_dim`.
fn inverse_frequencies(rot_dim: usize, theta: f32) -> Result<Vec<f32>> {
    if !(theta.is_finite() && theta > 0.0) {
        return Err(Error::Invalid(format!(
            "RopeTable: theta must be a positive number, found {theta}"
        )));
    }
    check_rot_dim(rot_dim)?;
    Ok((0..rot_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / rot_dim as f32))
        .collect())
}

/// An error unless `rot_dim` is even and positive.
fn check_rot_dim(rot_dim: usize) -> Result<()> {
    if rot_dim == 0 || rot_dim % 2 == 1 {
        return Err(Error::Invalid(format!(
            "RopeTable: the rotary dimension must be even and positive, found {rot_dim}"
        )));
    }
    Ok(())
}
