//! The key/value cache of one attention layer.
//!
//! The cache is per sequence state and lives outside the weights: a model's forward pass
//! takes `&self` plus `&mut [KvCache]` (one per layer), so one loaded model can serve many
//! sequences from many threads.

use super::cpu::KvView;
use crate::device::{self, Device, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Slot position marking a free slot; never a real position (`append` refuses it).
pub(crate) const EMPTY: usize = usize::MAX;
/// Slots allocated by the first append of an unbounded cache, at least.
const MIN_SLOTS: usize = 16;

/// One layer's cached keys and values, `f32` on a device, stored `[n_kv_heads, slots,
/// head_dim]` so that each kv head's keys are contiguous, with the position of every slot
/// (bookkept on the host).
///
/// A fresh cache allocates nothing; the first [`append`](KvCache::append) allocates 16 slots
/// (or what it needs), and without a window the cache grows (doubling) as tokens are
/// appended. With a sliding window `W` it is a ring buffer: each append first drops the
/// entries no query of the new tokens can see (position `<= first_new_position - W`), so
/// during decode the cache never holds more than `W` entries and its memory stays bounded. A
/// prefill chunk of `n` tokens temporarily holds up to `W - 1 + n` entries, because its own
/// early queries still need keys its later tokens would push out.
///
/// Usage per layer and step: compute `k`, `v` for the new tokens (after RoPE), `append`
/// them, then call [`ops::attention`](super::attention) with the cache.
#[derive(Debug, Clone)]
pub struct KvCache {
    device: Device,
    n_kv_heads: usize,
    head_dim: usize,
    window: Option<usize>,
    /// Allocated slots per kv head (the ring's capacity).
    slots: usize,
    /// `[n_kv_heads, slots, head_dim]`, on `device`.
    k: Tensor,
    /// `[n_kv_heads, slots, head_dim]`, on `device`.
    v: Tensor,
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
    /// An empty CPU cache for `n_kv_heads` heads of `head_dim` values, keeping every
    /// position (`window = None`) or only what a sliding window of `W` positions needs.
    pub fn new(n_kv_heads: usize, head_dim: usize, window: Option<usize>) -> Result<KvCache> {
        KvCache::new_on(Device::Cpu, n_kv_heads, head_dim, window)
    }

    /// An empty cache on `device` (see [`KvCache::new`]); an error naming the device when
    /// this build has no backend for it.
    pub fn new_on(
        device: Device,
        n_kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<KvCache> {
        if n_kv_heads == 0 || head_dim == 0 || window == Some(0) {
            return Err(Error::Invalid(format!(
                "KvCache::new: n_kv_heads ({n_kv_heads}), head_dim ({head_dim}) and the window \
                 ({window:?}) must be positive"
            )));
        }
        let backend = device::backend(device)?;
        let empty = [n_kv_heads, 0, head_dim];
        Ok(KvCache {
            device,
            n_kv_heads,
            head_dim,
            window,
            slots: 0,
            k: backend.zeros(&empty)?,
            v: backend.zeros(&empty)?,
            positions: Vec::new(),
            start: 0,
            len: 0,
            last_position: None,
        })
    }

    /// One empty CPU cache per layer.
    pub fn for_layers(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<Vec<KvCache>> {
        KvCache::for_layers_on(Device::Cpu, n_layers, n_kv_heads, head_dim, window)
    }

    /// One empty cache per layer, on `device`.
    pub fn for_layers_on(
        device: Device,
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        window: Option<usize>,
    ) -> Result<Vec<KvCache>> {
        (0..n_layers)
            .map(|_| KvCache::new_on(device, n_kv_heads, head_dim, window))
            .collect()
    }

    /// Appends the keys and values of new tokens, `f32` tensors on the cache's device of
    /// shape `[n_new, n_kv_heads * head_dim]` (or `[n_new, n_kv_heads, head_dim]`), at
    /// `positions` (`n_new` of them, increasing, after every position appended before),
    /// through the device's backend.
    pub fn append(&mut self, k: &Tensor, v: &Tensor, positions: &[usize]) -> Result<()> {
        if k.device() != self.device || v.device() != self.device {
            return Err(Error::DeviceMismatch {
                op: "KvCache::append".into(),
                found: format!(
                    "cache on {}, k on {}, v on {}",
                    self.device,
                    k.device(),
                    v.device()
                ),
            });
        }
        for (name, t) in [("k", k), ("v", v)] {
            if t.dtype() != DType::F32 {
                return Err(Error::DType {
                    context: format!("KvCache::append: {name} of shape {:?}", t.shape()),
                    dtype: t.dtype().to_string(),
                });
            }
        }
        device::backend(self.device)?.kv_append(self, k, v, positions)
    }

    /// [`append`](KvCache::append) for a CPU cache, from host slices laid out `[n_new,
    /// n_kv_heads, head_dim]` (the CPU backend's kernel).
    pub fn append_host(&mut self, k: &[f32], v: &[f32], positions: &[usize]) -> Result<()> {
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
        self.check_host("KvCache::append_host")?;
        let claimed = self.claim_slots(positions)?;
        let (hd, row, slots) = (self.head_dim, self.n_kv_heads * self.head_dim, self.slots);
        let (ks, vs) = (self.k.as_f32_mut()?, self.v.as_f32_mut()?);
        for (t, &slot) in claimed.iter().enumerate() {
            for h in 0..self.n_kv_heads {
                let dst = (h * slots + slot) * hd;
                let src = t * row + h * hd;
                ks[dst..dst + hd].copy_from_slice(&k[src..src + hd]);
                vs[dst..dst + hd].copy_from_slice(&v[src..src + hd]);
            }
        }
        Ok(())
    }

    /// The bookkeeping of [`append`](KvCache::append), shared by every backend: checks that
    /// `positions` increase, drops what the sliding window no longer needs, grows (or
    /// shrinks) the ring, records the positions, and returns the slot each new token's key
    /// and value go to; the backend then writes them there. Growing a device ring moves the
    /// entries through the host (amortized by doubling).
    pub fn claim_slots(&mut self, positions: &[usize]) -> Result<Vec<usize>> {
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
            return Ok(Vec::new());
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
            self.relayout(bounded)?;
        } else if let Some(w) = self.window.filter(|&w| self.slots > 2 * w.max(need)) {
            // A long prefill chunk grew the ring; give the memory back once decode resumes.
            self.relayout(w.max(need))?;
        }
        let slots: Vec<usize> = (0..positions.len())
            .map(|t| (self.start + self.len + t) % self.slots)
            .collect();
        for (&slot, &p) in slots.iter().zip(positions) {
            self.positions[slot] = p;
        }
        self.len = need;
        self.last_position = previous;
        Ok(slots)
    }

    /// [`relayout`](KvCache::relayout) for a cache in device memory: through host copies.
    fn relayout_device(&mut self, slots: usize) -> Result<()> {
        let backend = device::backend(self.device)?;
        let (k, v) = (backend.download(&self.k)?, backend.download(&self.v)?);
        let mut host = KvCache {
            device: Device::Cpu,
            k,
            v,
            ..self.clone()
        };
        host.relayout(slots)?;
        self.k = backend.upload(&host.k)?;
        self.v = backend.upload(&host.v)?;
        self.positions = host.positions;
        self.slots = host.slots;
        self.start = host.start;
        Ok(())
    }

    /// Moves the entries, oldest first, into a ring of `slots` slots starting at slot 0.
    fn relayout(&mut self, slots: usize) -> Result<()> {
        if self.device != Device::Cpu {
            return self.relayout_device(slots);
        }
        debug_assert!(slots >= self.len);
        let hd = self.head_dim;
        let mut k = vec![0.0f32; self.n_kv_heads * slots * hd];
        let mut v = vec![0.0f32; self.n_kv_heads * slots * hd];
        let mut positions = vec![EMPTY; slots];
        let (old_k, old_v) = (self.k.as_f32()?, self.v.as_f32()?);
        for (i, position) in positions.iter_mut().enumerate().take(self.len) {
            let old = (self.start + i) % self.slots;
            *position = self.positions[old];
            for h in 0..self.n_kv_heads {
                let (src, dst) = ((h * self.slots + old) * hd, (h * slots + i) * hd);
                k[dst..dst + hd].copy_from_slice(&old_k[src..src + hd]);
                v[dst..dst + hd].copy_from_slice(&old_v[src..src + hd]);
            }
        }
        let shape = [self.n_kv_heads, slots, hd];
        self.k = Tensor::from_f32(shape, k)?;
        self.v = Tensor::from_f32(shape, v)?;
        self.positions = positions;
        self.slots = slots;
        self.start = 0;
        Ok(())
    }

    /// The host view the CPU [`attention`](super::cpu::attention) kernel reads keys and
    /// values through; an error for a cache in device memory.
    pub fn view(&self) -> Result<KvView<'_>> {
        self.check_host("KvCache::view")?;
        Ok(KvView {
            k: self.k.as_f32()?,
            v: self.v.as_f32()?,
            positions: &self.positions,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            head_stride: self.slots * self.head_dim,
            slot_stride: self.head_dim,
            retention: self.window,
        })
    }

    /// The device the keys and values are on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The keys, `[n_kv_heads, allocated_slots, head_dim]` in ring order (for a backend).
    pub fn keys(&self) -> &Tensor {
        &self.k
    }

    /// The values, `[n_kv_heads, allocated_slots, head_dim]` in ring order (for a backend).
    pub fn values(&self) -> &Tensor {
        &self.v
    }

    /// The position held by each allocated slot (`usize::MAX` for a free slot).
    pub fn slot_positions(&self) -> &[usize] {
        &self.positions
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

    /// The key and value held for `position`, each `[n_kv_heads, head_dim]`, copied to the
    /// host (`None` when the position is not held).
    pub fn entry(&self, position: usize) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let Some(slot) = (0..self.len)
            .map(|i| (self.start + i) % self.slots)
            .find(|&s| self.positions[s] == position)
        else {
            return Ok(None);
        };
        let hd = self.head_dim;
        let gather = |data: &Tensor| -> Result<Vec<f32>> {
            let host;
            let data = if data.is_host() {
                data
            } else {
                host = data.to_host()?;
                &host
            };
            let data = data.as_f32()?;
            Ok((0..self.n_kv_heads)
                .flat_map(|h| {
                    let at = (h * self.slots + slot) * hd;
                    data[at..at + hd].iter().copied()
                })
                .collect())
        };
        Ok(Some((gather(&self.k)?, gather(&self.v)?)))
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

    /// Bytes of keys, values (on the device) and positions (on the host) allocated.
    pub fn memory_bytes(&self) -> usize {
        self.k.byte_len()
            + self.v.byte_len()
            + self.positions.capacity() * std::mem::size_of::<usize>()
    }

    /// Forgets every entry and position, keeping the allocation (a new sequence).
    pub fn clear(&mut self) {
        self.positions.fill(EMPTY);
        self.start = 0;
        self.len = 0;
        self.last_position = None;
    }

    /// An error unless the cache is in host memory.
    fn check_host(&self, op: &str) -> Result<()> {
        if self.device != Device::Cpu {
            return Err(Error::Device {
                device: self.device.to_string(),
                reason: format!("{op}: this cache is in device memory, not on the host"),
            });
        }
        Ok(())
    }
}
