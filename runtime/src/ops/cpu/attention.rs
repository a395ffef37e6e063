//! Causal scaled dot-product attention with grouped-query heads and an optional sliding
//! window, over keys and values from a [`KvView`].

use super::activation::softmax_in_place;
use super::kv_view::KvView;
use super::team::Team;
use super::vector::{axpy, dot};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::cell::RefCell;

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
/// (one query against the cache). Prefill's work is split across blocks of tokens on
/// rayon's pool, each key and value read once per block and kv head; decode's across groups of query heads on the decode [`Team`], each group
/// within one kv head, so its keys and values are read once per group. A query that
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

    // As HF: head_dim ** -0.5 in f64, applied to the f32 scores as an f32.
    let scale = (hd as f64).powf(-0.5) as f32;
    if let &[pos] = q_positions {
        return decode(q, pos, n_heads, kv, window, scale);
    }
    prefill(q, q_positions, n_heads, kv, window, scale)
}

/// Most query tokens of one prefill task: their queries share each key and value read.
const PREFILL_BLOCK: usize = 8;

/// Prefill: the queries at `q_positions` against `kv`, on rayon's pool, one task per block
/// of consecutive tokens (at most [`PREFILL_BLOCK`], fewer when that leaves threads idle).
/// Within a task, each kv head's keys and values are read once for all the block's query
/// heads, slot by slot; every query gets exactly the operations of decode (one token), in the
/// same order, over its own visible slots, so the results are bit for bit those of decode.
fn prefill(
    q: &[f32],
    q_positions: &[usize],
    n_heads: usize,
    kv: &KvView<'_>,
    window: Option<usize>,
    scale: f32,
) -> Result<Vec<f32>> {
    let (n_kv, hd) = (kv.n_kv_heads, kv.head_dim);
    let group = n_heads / n_kv;
    let row = n_heads * hd;
    let n = q_positions.len();
    let block = n
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .clamp(1, PREFILL_BLOCK);
    let mut out = vec![0.0f32; q.len()];
    out.par_chunks_mut(block * row)
        .enumerate()
        .try_for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(slots, spans, weights): &mut (Vec<usize>, Vec<(usize, usize)>, Vec<f32>),
             (b, o)|
             -> Result<()> {
                let t0 = b * block;
                let positions = &q_positions[t0..t0 + o.len() / row];
                // Each token's visible positions, and the slots any of them sees.
                spans.clear();
                spans.extend(
                    positions
                        .iter()
                        .map(|&pos| (window.map_or(0, |w| (pos + 1).saturating_sub(w)), pos)),
                );
                let lo = spans.iter().map(|s| s.0).min().unwrap_or(0);
                let hi = spans.iter().map(|s| s.1).max().unwrap_or(0);
                slots.clear();
                slots.extend(
                    kv.positions
                        .iter()
                        .enumerate()
                        .filter(|&(_, p)| (lo..=hi).contains(p))
                        .map(|(slot, _)| slot),
                );
                for &(first, pos) in spans.iter() {
                    if !slots
                        .iter()
                        .any(|&s| (first..=pos).contains(&kv.positions[s]))
                    {
                        return Err(Error::Invalid(format!(
                            "attention: the query at position {pos} sees no key (append its \
                             own key before attending)"
                        )));
                    }
                }
                let qs = &q[t0 * row..t0 * row + o.len()];
                for kv_head in 0..n_kv {
                    let head0 = kv_head * group * hd;
                    block_group(
                        qs, o, head0, group, kv, kv_head, slots, spans, scale, weights,
                    );
                }
                Ok(())
            },
        )?;
    Ok(out)
}

/// For one kv head: `group` of its query heads, starting `head0` values into each token's
/// row, for every token of a block (`qs` and `o` hold the block's rows; token `i` sees
/// positions `spans[i]`, at most [`PREFILL_BLOCK`] tokens), against the keys and values in
/// `slots` (ascending). Per query: the scores of its visible slots in slot order, softmax,
/// then the weighted sum in slot order. Prefill passes a block of tokens and a whole group;
/// decode one token and part of a group, so both run the same operations per query.
///
/// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (wider registers for the
/// same lane-wise operations, no fused multiply-add), so the results are bit for bit those
/// of the baseline build, only faster.
#[allow(clippy::too_many_arguments)]
fn block_group(
    qs: &[f32],
    o: &mut [f32],
    head0: usize,
    group: usize,
    kv: &KvView<'_>,
    kv_head: usize,
    slots: &[usize],
    spans: &[(usize, usize)],
    scale: f32,
    weights: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU reports AVX2, the only feature `block_group_avx2` is compiled for.
        unsafe {
            block_group_avx2(
                qs, o, head0, group, kv, kv_head, slots, spans, scale, weights,
            )
        };
        return;
    }
    block_group_body(
        qs, o, head0, group, kv, kv_head, slots, spans, scale, weights,
    );
}

/// [`block_group`] compiled for AVX2.
///
/// # Safety
///
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_group_avx2(
    qs: &[f32],
    o: &mut [f32],
    head0: usize,
    group: usize,
    kv: &KvView<'_>,
    kv_head: usize,
    slots: &[usize],
    spans: &[(usize, usize)],
    scale: f32,
    weights: &mut Vec<f32>,
) {
    block_group_body(
        qs, o, head0, group, kv, kv_head, slots, spans, scale, weights,
    );
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_group_body(
    qs: &[f32],
    o: &mut [f32],
    head0: usize,
    group: usize,
    kv: &KvView<'_>,
    kv_head: usize,
    slots: &[usize],
    spans: &[(usize, usize)],
    scale: f32,
    weights: &mut Vec<f32>,
) {
    let (hd, ns, tokens) = (kv.head_dim, slots.len(), spans.len());
    let row = qs.len() / tokens.max(1);
    // Query (token i, head j) keeps its scores at `weights[(i * group + j) * ns ..]`, in
    // the order of its visible slots; `count` is how many it has.
    weights.clear();
    weights.resize(tokens * group * ns, 0.0);
    assert!(
        tokens <= PREFILL_BLOCK,
        "block_group: at most PREFILL_BLOCK tokens"
    );
    let mut count = [0usize; PREFILL_BLOCK];
    let count = &mut count[..tokens];
    for &slot in slots {
        let p = kv.positions[slot];
        let k = kv.key(kv_head, slot);
        for (i, &(first, pos)) in spans.iter().enumerate() {
            if !(first..=pos).contains(&p) {
                continue;
            }
            let q_heads = &qs[i * row + head0..i * row + head0 + group * hd];
            for (j, qi) in q_heads.chunks_exact(hd).enumerate() {
                weights[(i * group + j) * ns + count[i]] = dot(qi, k) * scale;
            }
            count[i] += 1;
        }
    }
    for (i, &c) in count.iter().enumerate() {
        for j in 0..group {
            let at = (i * group + j) * ns;
            softmax_in_place(&mut weights[at..at + c]);
        }
    }
    count.iter_mut().for_each(|c| *c = 0);
    for &slot in slots {
        let p = kv.positions[slot];
        let v = kv.value(kv_head, slot);
        for (i, &(first, pos)) in spans.iter().enumerate() {
            if !(first..=pos).contains(&p) {
                continue;
            }
            let o_heads = &mut o[i * row + head0..i * row + head0 + group * hd];
            for (j, oj) in o_heads.chunks_exact_mut(hd).enumerate() {
                axpy(weights[(i * group + j) * ns + count[i]], v, oj);
            }
            count[i] += 1;
        }
    }
}

/// Decode: the one query at `pos` (`n_heads` heads) against the cache, on the team. The
/// query heads of each kv head are split into a few contiguous groups (enough parts for
/// every thread of the team); a part reads its kv head's keys and values once for all of its
/// heads. Per head, the order of operations is the prefill path's, so results are the same.
/// Scratch buffers are reused (per thread), so a token allocates only its output.
fn decode(
    q: &[f32],
    pos: usize,
    n_heads: usize,
    kv: &KvView<'_>,
    window: Option<usize>,
    scale: f32,
) -> Result<Vec<f32>> {
    thread_local! {
        static SLOTS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        static WEIGHTS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    let (n_kv, hd) = (kv.n_kv_heads, kv.head_dim);
    let group = n_heads / n_kv;
    let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let team = Team::global();
    let splits = (2 * team.threads()).div_ceil(n_kv).clamp(1, group);
    let per_part = group.div_ceil(splits);
    let mut out = vec![0.0f32; q.len()];
    SLOTS.with_borrow_mut(|slots| {
        slots.clear();
        slots.extend(
            kv.positions
                .iter()
                .enumerate()
                .filter(|&(_, p)| (first..=pos).contains(p))
                .map(|(slot, _)| slot),
        );
        if slots.is_empty() {
            return Err(Error::Invalid(format!(
                "attention: the query at position {pos} sees no key (append its own key before \
                 attending)"
            )));
        }
        let slots: &[usize] = slots;
        // (kv head, first query head) of every part, and the part's output heads.
        let mut parts = Vec::with_capacity(n_kv * splits);
        let mut outs = Vec::with_capacity(n_kv * splits);
        for (kv_head, o) in out.chunks_mut(group * hd).enumerate() {
            for (j, o) in o.chunks_mut(per_part * hd).enumerate() {
                parts.push((kv_head, kv_head * group + j * per_part));
                outs.push(o);
            }
        }
        team.try_for_each_slice(outs, |p, o| {
            let (kv_head, h0) = parts[p];
            let qs = &q[h0 * hd..h0 * hd + o.len()];
            WEIGHTS.with_borrow_mut(|weights| {
                let heads = o.len() / hd;
                block_group(
                    qs,
                    o,
                    0,
                    heads,
                    kv,
                    kv_head,
                    slots,
                    &[(first, pos)],
                    scale,
                    weights,
                );
            });
            Ok(())
        })
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{block_group, block_group_body, KvView};

    /// The dispatched build (AVX2 where the CPU has it) gives the baseline build's results
    /// bit for bit: the same lane-wise operations in the same order, only wider registers.
    #[test]
    fn block_group_dispatch_is_bit_identical_to_the_baseline_build() {
        let (n_kv, slots_n, hd, group) = (2usize, 37usize, 72usize, 3usize);
        let mut seed = 0x2545_f491u32;
        let mut val = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32) * 4.0 - 2.0
        };
        let k: Vec<f32> = (0..n_kv * slots_n * hd).map(|_| val()).collect();
        let v: Vec<f32> = (0..n_kv * slots_n * hd).map(|_| val()).collect();
        let qs: Vec<f32> = (0..group * hd).map(|_| val()).collect();
        let positions: Vec<usize> = (0..slots_n).collect();
        let kv = KvView {
            k: &k,
            v: &v,
            positions: &positions,
            n_kv_heads: n_kv,
            head_dim: hd,
            head_stride: slots_n * hd,
            slot_stride: hd,
            retention: None,
        };
        let slots: Vec<usize> = (0..slots_n).filter(|s| s % 5 != 3).collect();
        for kv_head in 0..n_kv {
            let (mut a, mut b) = (vec![0.0f32; group * hd], vec![0.0f32; group * hd]);
            let mut w = Vec::new();
            let spans = [(0, slots_n)];
            block_group(
                &qs, &mut a, 0, group, &kv, kv_head, &slots, &spans, 0.125, &mut w,
            );
            block_group_body(
                &qs, &mut b, 0, group, &kv, kv_head, &slots, &spans, 0.125, &mut w,
            );
            let (a, b): (Vec<u32>, Vec<u32>) = (
                a.iter().map(|x| x.to_bits()).collect(),
                b.iter().map(|x| x.to_bits()).collect(),
            );
            assert_eq!(a, b, "kv head {kv_head}");
        }
    }
}
