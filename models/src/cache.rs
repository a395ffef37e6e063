//! Per-sequence state kept outside the weights: one KV cache per layer and the RoPE tables
//! the layers rotate with. Every architecture in this crate uses it; a model with one RoPE
//! base (Llama, Qwen) holds one table, Gemma 3 two (local and global layers).

use crate::llama::LlamaConfig;
use lazyforge::ops::{KvCache, RopeTable};
use lazyforge::Device;

/// The KV caches of one sequence (bounded to a sliding window where a layer has one) and
/// its RoPE tables, on the model's device. Both start empty and grow with the positions
/// the sequence reaches, not with the model's context length.
#[derive(Debug)]
pub struct Cache {
    device: Device,
    layers: Vec<KvCache>,
    ropes: Vec<RopeTable>,
}

impl Cache {
    /// A cache of these layers and RoPE tables (none for a model without RoPE), all on
    /// `device`.
    pub fn new(device: Device, layers: Vec<KvCache>, ropes: Vec<RopeTable>) -> Cache {
        Cache {
            device,
            layers,
            ropes,
        }
    }

    /// One layer per entry of `windows` (heads as `c` says, each layer bounded by its
    /// entry's sliding window if it has one), and RoPE tables of `c.rope_dim` dimensions
    /// with these bases, all on `device`.
    pub fn for_config(
        device: Device,
        c: &LlamaConfig,
        windows: impl IntoIterator<Item = Option<usize>>,
        rope_bases: &[f32],
    ) -> lazyforge::Result<Cache> {
        let layers = (windows.into_iter())
            .map(|w| KvCache::new_on(device, c.n_kv_heads, c.head_dim, w))
            .collect::<lazyforge::Result<_>>()?;
        let ropes = (rope_bases.iter())
            .map(|&base| RopeTable::on_demand(device, c.rope_dim, base))
            .collect::<lazyforge::Result<_>>()?;
        Ok(Cache::new(device, layers, ropes))
    }

    /// Tokens seen so far (the next token's position).
    pub fn position(&self) -> usize {
        self.layers.first().map_or(0, KvCache::next_position)
    }

    /// The device the caches are on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Bytes held by the KV caches and the RoPE tables.
    pub fn memory_bytes(&self) -> usize {
        self.kv_memory_bytes() + self.rope_memory_bytes()
    }

    /// Bytes held by the KV caches.
    pub fn kv_memory_bytes(&self) -> usize {
        self.layers.iter().map(KvCache::memory_bytes).sum()
    }

    /// Bytes held by the RoPE tables.
    pub fn rope_memory_bytes(&self) -> usize {
        self.ropes.iter().map(RopeTable::memory_bytes).sum()
    }

    /// The per-layer KV caches.
    pub fn layers(&self) -> &[KvCache] {
        &self.layers
    }

    /// Readies every RoPE table for `n` more tokens and hands out the layers' caches with
    /// the tables: what a forward pass over `n` new tokens needs.
    pub fn prepare(&mut self, n: usize) -> (&mut [KvCache], &[RopeTable]) {
        let end = self.position() + n;
        for rope in &mut self.ropes {
            rope.reserve(end);
        }
        (&mut self.layers, &self.ropes)
    }
}
