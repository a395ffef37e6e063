//! Causal scaled dot-product attention with grouped-query heads and an optional sliding
//! window, over keys and values from a [`KvView`].

use super::activation::softmax_in_place;
use super::kv_view::KvView;
use super::vector::{axpy, dot};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Attention of queries `q` (`[n_q, n_heads, head_dim]` `f32`, RoPE applied) at
/// `q_positions` (`n_q` of them) over the keys and values of `kv`; returns
/// `[n_q, n_heads, head_dim]`.
///
/// - **Causal**: a query at position `i` attends the keys at positions `j <= i`.
/// - **Sliding window** `Some(W)`: only keys with `i - W < j <= i` (`W` keys including
///   itself). A cache built with a window keeps only what that window needs, so attending
///   through it with no window or a wider one is an error.
/// - **Grouped-query**: query head `h` reads kv head `h / (n_heads / n_kv_heads)`;
///   `n_heads` must be a multiple of the view's `n_kv_heads`.
/// - Scores are `q·k / sqrt(head_dim)`, softmax in `f32`, then the weighted sum of values.
///
/// The same call serves prefill (many queries; their own keys already appended) and decode
/// (one query against the cache). Work is split across `(token, head)` pairs. A query that
/// sees no key at all (its own key was not appended) is an error naming its position.
pub fn attention(
    q: &[f32],
    q_positions: &[usize],
    n_heads: usize,
    kv: &KvView<'_>,
    window: Option<usize>,
) -> Result<Vec<f32>> {
    let (n_kv, hd) = (kv.n_kv_heads, kv.head_dim);
    if n_heads == 0 || n_heads.checked_rem(n_kv) != Some(0) {
        return Err(Error::Invalid(format!(
            "attention: n_heads ({n_heads}) must be a positive multiple of n_kv_heads ({n_kv})"
        )));
    }
    if q.len() != q_positions.len() * n_heads * hd {
        return Err(Error::shape(
            format!(
                "attention: q [n_q, n_heads, head_dim] ({} values) for {} positions",
                q.len(),
                q_positions.len()
            ),
            &[q_positions.len(), n_heads, hd],
            &[q.len()],
        ));
    }
    if window == Some(0) {
        return Err(Error::Invalid(
            "attention: a sliding window must hold at least one position".into(),
        ));
    }
    if let Some(kept) = kv.retention {
        if window.is_none_or(|w| w > kept) {
            return Err(Error::Invalid(format!(
                "attention: the KV cache keeps a sliding window of {kept} positions; attending \
                 with window {window:?} needs keys it has evicted"
            )));
        }
    }

    let group = n_heads / n_kv;
    // As HF: head_dim ** -0.5 in f64, applied to the f32 scores as an f32.
    let scale = (hd as f64).powf(-0.5) as f32;
    let mut out = vec![0.0f32; q.len()];
    out.par_chunks_mut(hd).enumerate().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(slots, weights): &mut (Vec<usize>, Vec<f32>), (i, o)| -> Result<()> {
            let (t, h) = (i / n_heads, i % n_heads);
            let kv_head = h / group;
            let qi = &q[i * hd..(i + 1) * hd];
            let pos = q_positions[t];
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));

            slots.clear();
            weights.clear();
            for (slot, &p) in kv.positions.iter().enumerate() {
                if (first..=pos).contains(&p) {
                    slots.push(slot);
                    weights.push(dot(qi, kv.key(kv_head, slot)) * scale);
                }
            }
            if slots.is_empty() {
                return Err(Error::Invalid(format!(
                    "attention: the query at position {pos} sees no key (append its own key \
                     before attending)"
                )));
            }
            softmax_in_place(weights);
            for (&slot, &w) in slots.iter().zip(weights.iter()) {
                axpy(w, kv.value(kv_head, slot), o);
            }
            Ok(())
        },
    )?;
    Ok(out)
}
