//! [`KvView`]: keys and values in host memory with their positions, as the attention kernel
//! reads them.

use crate::error::{Error, Result};
use crate::ops::kv_cache::EMPTY;

/// Keys and values in host memory with their positions, as the
/// [`attention`](super::attention) kernel reads them: either a CPU
/// [`KvCache`](crate::ops::KvCache) ([`KvCache::view`](crate::ops::KvCache::view)) or plain
/// token-major slices ([`KvView::from_tokens`], e.g. a prefill that keeps no cache).
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a> {
    pub(crate) k: &'a [f32],
    pub(crate) v: &'a [f32],
    /// One per slot; [`EMPTY`] for a free slot.
    pub(crate) positions: &'a [usize],
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
    /// Values between the same slot of consecutive kv heads.
    pub(crate) head_stride: usize,
    /// Values between consecutive slots of one kv head.
    pub(crate) slot_stride: usize,
    /// The sliding window the keys were kept for (`None`: every key given is present).
    pub(crate) retention: Option<usize>,
}

impl<'a> KvView<'a> {
    /// A view of keys and values laid out `[n, n_kv_heads, head_dim]` at `positions` (`n` of
    /// them, any order, distinct).
    pub fn from_tokens(
        k: &'a [f32],
        v: &'a [f32],
        positions: &'a [usize],
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<KvView<'a>> {
        if n_kv_heads == 0 || head_dim == 0 {
            return Err(Error::Invalid(format!(
                "KvView::from_tokens: n_kv_heads ({n_kv_heads}) and head_dim ({head_dim}) must \
                 be positive"
            )));
        }
        let n = positions.len() * n_kv_heads * head_dim;
        if k.len() != n || v.len() != n {
            return Err(Error::shape(
                format!(
                    "KvView::from_tokens: k and v ({} and {} values) for {} positions",
                    k.len(),
                    v.len(),
                    positions.len()
                ),
                &[positions.len(), n_kv_heads, head_dim],
                &[k.len()],
            ));
        }
        if positions.contains(&EMPTY) {
            return Err(Error::Invalid(format!(
                "KvView::from_tokens: position {EMPTY} is reserved"
            )));
        }
        Ok(KvView {
            k,
            v,
            positions,
            n_kv_heads,
            head_dim,
            head_stride: head_dim,
            slot_stride: n_kv_heads * head_dim,
            retention: None,
        })
    }

    /// Key/value heads per position.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    /// Values per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The key of kv head `h` in `slot`.
    pub(crate) fn key(&self, h: usize, slot: usize) -> &'a [f32] {
        let at = h * self.head_stride + slot * self.slot_stride;
        &self.k[at..at + self.head_dim]
    }

    /// The value of kv head `h` in `slot`.
    pub(crate) fn value(&self, h: usize, slot: usize) -> &'a [f32] {
        let at = h * self.head_stride + slot * self.slot_stride;
        &self.v[at..at + self.head_dim]
    }
}
