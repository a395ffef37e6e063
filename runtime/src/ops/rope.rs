//! Rotary position embedding (RoPE), in the two layouts checkpoints use.
//!
//! - **Interleaved** (GGUF llama, ggml "normal" mode): dimension pairs `(2i, 2i+1)` rotate
//!   together.
//! - **Split half** (HF transformers `rotate_half`, GPT-NeoX): dimensions `(i, i + rot_dim/2)`
//!   rotate together.
//!
//! Pair `i` rotates by the angle `pos · inv_freq[i]`. The two layouts are the same operation
//! on differently ordered weights: llama.cpp's converter permutes each head's rows of `W_q`
//! and `W_k` so that GGUF pair `(2i, 2i+1)` holds HF dimensions `(i, i + d/2)`.

use crate::error::{Error, Result};

/// Precomputed `cos`/`sin` of the rotation angles, computed exactly as HF transformers Llama
/// does in `f32`:
///
/// ```text
/// inv_freq[i] = 1 / theta^((2i) / rot_dim)     (f32 division, f32 powf, f32 reciprocal)
/// angle       = (pos as f32) · inv_freq[i]     (f32)
/// cos, sin    = cos(angle), sin(angle)         (f32)
/// ```
///
/// Positions at or past `max_positions` are not an error: their angles are computed on the
/// fly by the same formulas, so the table is only a cache.
#[derive(Debug, Clone)]
pub struct RopeTable {
    rot_dim: usize,
    max_positions: usize,
    inv_freq: Vec<f32>,
    /// `[max_positions, rot_dim / 2]`.
    cos: Vec<f32>,
    /// `[max_positions, rot_dim / 2]`.
    sin: Vec<f32>,
}

impl RopeTable {
    /// A table for the first `rot_dim` dimensions of each head (usually `rot_dim = head_dim`)
    /// with base `theta` (Llama 2: 10000, SmolLM2: 100000, Mistral: 1000000), cached for
    /// positions `0..max_positions`.
    pub fn new(rot_dim: usize, theta: f32, max_positions: usize) -> Result<RopeTable> {
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::Invalid(format!(
                "RopeTable: theta must be a positive number, found {theta}"
            )));
        }
        check_rot_dim(rot_dim)?;
        let inv_freq = (0..rot_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / rot_dim as f32))
            .collect();
        RopeTable::from_inv_freq(inv_freq, max_positions)
    }

    /// A table from given inverse frequencies, one per rotated pair (`rot_dim =
    /// 2 · inv_freq.len()`), for scaled variants that adjust them (e.g. Llama 3's).
    pub fn from_inv_freq(inv_freq: Vec<f32>, max_positions: usize) -> Result<RopeTable> {
        check_rot_dim(2 * inv_freq.len())?;
        let half = inv_freq.len();
        let mut table = RopeTable {
            rot_dim: 2 * half,
            max_positions,
            inv_freq,
            cos: vec![0.0; max_positions * half],
            sin: vec![0.0; max_positions * half],
        };
        for pos in 0..max_positions {
            let (mut cos, mut sin) = (vec![0.0; half], vec![0.0; half]);
            table.angles(pos, &mut cos, &mut sin);
            table.cos[pos * half..(pos + 1) * half].copy_from_slice(&cos);
            table.sin[pos * half..(pos + 1) * half].copy_from_slice(&sin);
        }
        Ok(table)
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
    fn for_each_position(&self, positions: &[usize], mut f: impl FnMut(usize, &[f32], &[f32])) {
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

/// RoPE with interleaved pairs `(2i, 2i+1)` (GGUF llama layout), in place.
///
/// `x` is `[n_tokens, n_heads, head_dim]` `f32` with `n_tokens = positions.len()`; token `t`
/// rotates by `positions[t]`. Only the first `table.rot_dim()` dimensions of each head
/// rotate; the rest are left untouched. Each pair becomes
/// `(a·cos − b·sin, b·cos + a·sin)`.
pub fn rope_interleaved(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    table: &RopeTable,
) -> Result<()> {
    check_shape("rope_interleaved", x, n_heads, head_dim, positions, table)?;
    if x.is_empty() {
        return Ok(());
    }
    let token_len = n_heads * head_dim;
    table.for_each_position(positions, |t, cos, sin| {
        for head in x[t * token_len..(t + 1) * token_len].chunks_exact_mut(head_dim) {
            let rot = &mut head[..table.rot_dim];
            for ((pair, &c), &s) in rot.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = b * c + a * s;
            }
        }
    });
    Ok(())
}

/// RoPE with split halves `(i, i + rot_dim/2)` (HF transformers `rotate_half`, NeoX layout),
/// in place.
///
/// `x` is `[n_tokens, n_heads, head_dim]` `f32` with `n_tokens = positions.len()`; token `t`
/// rotates by `positions[t]`. Only the first `table.rot_dim()` dimensions of each head
/// rotate; the rest are left untouched. The result equals HF's
/// `x·cos + rotate_half(x)·sin` operation for operation.
pub fn rope_split_half(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    table: &RopeTable,
) -> Result<()> {
    check_shape("rope_split_half", x, n_heads, head_dim, positions, table)?;
    if x.is_empty() {
        return Ok(());
    }
    let token_len = n_heads * head_dim;
    let half = table.rot_dim / 2;
    table.for_each_position(positions, |t, cos, sin| {
        for head in x[t * token_len..(t + 1) * token_len].chunks_exact_mut(head_dim) {
            let (first, second) = head[..table.rot_dim].split_at_mut(half);
            for (((a, b), &c), &s) in first.iter_mut().zip(second).zip(cos).zip(sin) {
                let (x1, x2) = (*a, *b);
                *a = x1 * c - x2 * s;
                *b = x2 * c + x1 * s;
            }
        }
    });
    Ok(())
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

/// An error unless `x` is `[positions.len(), n_heads, head_dim]` and the table fits a head.
fn check_shape(
    op: &str,
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    table: &RopeTable,
) -> Result<()> {
    if table.rot_dim > head_dim {
        return Err(Error::Invalid(format!(
            "{op}: rotary dimension {} is larger than head_dim {head_dim}",
            table.rot_dim
        )));
    }
    if x.len() != positions.len() * n_heads * head_dim {
        return Err(Error::shape(
            format!("{op}: x [n_tokens, n_heads, head_dim] ({} values)", x.len()),
            &[positions.len(), n_heads, head_dim],
            &[x.len()],
        ));
    }
    Ok(())
}
