//! RoPE kernels on host slices, in the two layouts of [`RopeStyle`](crate::ops::RopeStyle).

use crate::error::{Error, Result};
use crate::ops::RopeTable;

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
            let rot = &mut head[..table.rot_dim()];
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
    let half = table.rot_dim() / 2;
    table.for_each_position(positions, |t, cos, sin| {
        for head in x[t * token_len..(t + 1) * token_len].chunks_exact_mut(head_dim) {
            let (first, second) = head[..table.rot_dim()].split_at_mut(half);
            for (((a, b), &c), &s) in first.iter_mut().zip(second).zip(cos).zip(sin) {
                let (x1, x2) = (*a, *b);
                *a = x1 * c - x2 * s;
                *b = x2 * c + x1 * s;
            }
        }
    });
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
    if table.rot_dim() > head_dim {
        return Err(Error::Invalid(format!(
            "{op}: rotary dimension {} is larger than head_dim {head_dim}",
            table.rot_dim()
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
