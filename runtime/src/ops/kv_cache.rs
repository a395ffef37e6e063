//! The key/value cache of one attention layer, and the view attention reads keys through.
//!
//! The cache is per sequence state and lives outside the weights: a model's forward pass
//! takes `&self` plus `&mut [KvCache]` (one per layer), so one loaded model can serve many
//! sequences from many threads.

use crate::error::{Error, Result};

/// Slot position marking a free slot; never a real position (`append` refuses it).
const EMPTY: usize = usize::MAX;
/// Slots allocated by the first append of an unbounded cache, at least.
const MIN_SLOTS: usize = 16;

/// One layer's cached keys and values, `f32`, stored `[n_kv_heads, slots, head_dim]` so that
/// each kv head's keys are contiguous, with the position of every slot.
///
/// Without a window the cache grows (doubling) as tokens are appended. With a sliding window
/// `W` it is a ring buffer: each [`append`](KvCache::append) first drops the entries no query
/// of the new tokens can see (position `<= first_new_position - W`), so during decode the
/// cache never holds more than `W` entries and its memory stays bounded. A prefill chunk of
/// `n` tokens temporarily holds up to `W - 1 + n` entries, because its own early queries
/// still need keys its later tokens would push out.
///
/// Usage per layer and step: compute `k`, `v` for the new tokens (after RoPE), `append`
/// them, then call [`attention`](super::attention) with [`view`](KvCache::view).
#[derive(Debug, Clone)]
pub struct KvCache {
    n_kv_heads: usize,
    head_dim: usize,
    window: Option<usize>,
    /// Allocated slots per kv head (the ring's capacity).
    slots: usize,
    /// `[n_kv_heads, slots, head_dim]`.
    k: Vec<f32>,
    /// `[n_kv_heads, slots, head_dim]`.
    v: Vec<f32>,
    /// `[slots]`: the position held by each slot, or [`EMPTY`].
    positions: Vec<usize>,
    /// The slot of the oldest entry.
    start: usize,
    /// Entries held, in ring order from `start`.
    len: usize,
    /// The last position appended, even if since evicted.
    last_position: Option<usize>,
}

impl KvCache {
    /// An empty cache for `n_kv_heads` heads of `head_dim` values, keeping every position
    /// (`window = None`) or only what a sliding window of `W` positions needs.
    pub fn new(n_kv_heads: usize, head_dim: usize, window: Option<usize>) -> Result<KvCache> {
        if n_kv_heads == 0 || head_dim == 0 || window == Some(0) {
            return Err(Error::Invalid(format!(
                "KvCache::new: n_kv_heads ({n_kv_heads}), head_dim ({head_dim}) and the window \
                 ({window:?}) must be positive"
            )));
        }
        Ok(KvCache {
            n_kv_heads,
            head_dim,
            window,
            slots: 0,
            k: Vec::new(),
            v: Vec::new(),
            positions: Vec::new(),
            start: 0,
            len: 0,
            last_position: None,
        })
    }

    /// One empty cache per layer.
    pub fn for_layers(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<Vec<KvCache>> {
        (0..n_layers)
            .map(|_| KvCache::new(n_kv_heads, head_dim, window))
            .collect()
    }

    /// Appends the keys and values of new tokens, each `[n_new, n_kv_heads, head_dim]` (the
    /// layout of a `[n_new, n_kv_heads * head_dim]` projection), at `positions` (`n_new` of
    /// them, increasing, after every position appended before).
    pub fn append(&mut self, k: &[f32], v: &[f32], positions: &[usize]) -> Result<()> {
        let shape = [positions.len(), self.n_kv_heads, self.head_dim];
        let n = positions.len() * self.n_kv_heads * self.head_dim;
        if k.len() != n || v.len() != n {
            return Err(Error::shape(
                format!(
                    "KvCache::append: k and v ({} and {} values) for {} positions",
                    k.len(),
                    v.len(),
                    positions.len()
                ),
                &shape,
                &[k.len()],
            ));
        }
        let mut previous = self.last_position;
        for &p in positions {
            if previous.is_some_and(|q| p <= q) || p == EMPTY {
                return Err(Error::Invalid(format!(
                    "KvCache::append: positions must increase (after {previous:?}, found {p})"
                )));
            }
            previous = Some(p);
        }
        let Some(&first) = positions.first() else {
            return Ok(());
        };

        if let Some(limit) = self.window.and_then(|w| first.checked_sub(w)) {
            while self.len > 0 && self.positions[self.start] <= limit {
                self.positions[self.start] = EMPTY;
                self.start = (self.start + 1) % self.slots;
                self.len -= 1;
            }
        }

        let need = self.len + positions.len();
        if need > self.slots {
            let grown = need.max(2 * self.slots).max(MIN_SLOTS);
            let bounded = match self.window {
                Some(w) => grown.min(need.max(w)),
                None => grown,
            };
            self.relayout(bounded);
        } else if let Some(w) = self.window.filter(|&w| self.slots > 2 * w.max(need)) {
            // A long prefill chunk grew the ring; give the memory back once decode resumes.
            self.relayout(w.max(need));
        }

        let (hd, row) = (self.head_dim, self.n_kv_heads * self.head_dim);
        for (t, &p) in positions.iter().enumerate() {
            let slot = (self.start + self.len + t) % self.slots;
            self.positions[slot] = p;
            for h in 0..self.n_kv_heads {
                let dst = (h * self.slots + slot) * hd;
                let src = t * row + h * hd;
                self.k[dst..dst + hd].copy_from_slice(&k[src..src + hd]);
                self.v[dst..dst + hd].copy_from_slice(&v[src..src + hd]);
            }
        }
        self.len = need;
        self.last_position = previous;
        Ok(())
    }

    /// Moves the entries, oldest first, into a ring of `slots` slots starting at slot 0.
    fn relayout(&mut self, slots: usize) {
        debug_assert!(slots >= self.len);
        let hd = self.head_dim;
        let mut k = vec![0.0f32; self.n_kv_heads * slots * hd];
        let mut v = vec![0.0f32; self.n_kv_heads * slots * hd];
        let mut positions = vec![EMPTY; slots];
        for (i, position) in positions.iter_mut().enumerate().take(self.len) {
            let old = (self.start + i) % self.slots;
            *position = self.positions[old];
            for h in 0..self.n_kv_heads {
                let (src, dst) = ((h * self.slots + old) * hd, (h * slots + i) * hd);
                k[dst..dst + hd].copy_from_slice(&self.k[src..src + hd]);
                v[dst..dst + hd].copy_from_slice(&self.v[src..src + hd]);
            }
        }
        (self.k, self.v, self.positions) = (k, v, positions);
        self.slots = slots;
        self.start = 0;
    }

    /// The view [`attention`](super::attention) reads keys and values through.
    pub fn view(&self) -> KvView<'_> {
        KvView {
            k: &self.k,
            v: &self.v,
            positions: &self.positions,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            head_stride: self.slots * self.head_dim,
            slot_stride: self.head_dim,
            retention: self.window,
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The positions held, oldest first.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).map(move |i| self.positions[(self.start + i) % self.slots])
    }

    /// The last position appended (it may have been evicted since), or `None` if nothing was.
    pub fn last_position(&self) -> Option<usize> {
        self.last_position
    }

    /// The position the next token takes: one after the last appended, or 0.
    pub fn next_position(&self) -> usize {
        self.last_position.map_or(0, |p| p + 1)
    }

    /// The key and value held for `position`, each `[n_kv_heads, head_dim]`.
    pub fn entry(&self, position: usize) -> Option<(Vec<f32>, Vec<f32>)> {
        let slot = (0..self.len)
            .map(|i| (self.start + i) % self.slots)
            .find(|&s| self.positions[s] == position)?;
        let hd = self.head_dim;
        let gather = |data: &[f32]| -> Vec<f32> {
            (0..self.n_kv_heads)
                .flat_map(|h| {
                    let at = (h * self.slots + slot) * hd;
                    data[at..at + hd].iter().copied()
                })
                .collect()
        };
        Some((gather(&self.k), gather(&self.v)))
    }

    /// The sliding window, if any.
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    /// Key/value heads per position.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    /// Values per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Slots allocated per kv head (at least [`len`](KvCache::len)).
    pub fn allocated_slots(&self) -> usize {
        self.slots
    }

    /// Bytes of keys, values and positions allocated.
    pub fn memory_bytes(&self) -> usize {
        (self.k.capacity() + self.v.capacity()) * std::mem::size_of::<f32>()
            + self.positions.capacity() * std::mem::size_of::<usize>()
    }

    /// Forgets every entry and position, keeping the allocation (a new sequence).
    pub fn clear(&mut self) {
        self.positions.fill(EMPTY);
        self.start = 0;
        self.len = 0;
        self.last_position = None;
    }
}

/// Keys and values with their positions, as [`attention`](super::attention) reads them:
/// either a [`KvCache`] ([`KvCache::view`]) or plain token-major slices
/// ([`KvView::from_tokens`], e.g. a prefill that keeps no cache).
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a> {
    pub(super) k: &'a [f32],
    pub(super) v: &'a [f32],
    /// One per slot; [`EMPTY`] for a free slot.
    pub(super) positions: &'a [usize],
    pub(super) n_kv_heads: usize,
    pub(super) head_dim: usize,
    /// Values between the same slot of consecutive kv heads.
    pub(super) head_stride: usize,
    /// Values between consecutive slots of one kv head.
    pub(super) slot_stride: usize,
    /// The sliding window the keys were kept for (`None`: every key given is present).
    pub(super) retention: Option<usize>,
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
    pub(super) fn key(&self, h: usize, slot: usize) -> &'a [f32] {
        let at = h * self.head_stride + slot * self.slot_stride;
        &self.k[at..at + self.head_dim]
    }

    /// The value of kv head `h` in `slot`.
    pub(super) fn value(&self, h: usize, slot: usize) -> &'a [f32] {
        let at = h * self.head_stride + slot * self.slot_stride;
        &self.v[at..at + self.head_dim]
    }
}
