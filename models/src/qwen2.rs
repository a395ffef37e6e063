//! Qwen2 (Qwen2, Qwen2.5): Llama with biases on the query, key and value projections (none
//! on the output), embeddings tied or not, and a sliding window only where the config turns
//! it on. Config, then modules from small to large, then the model.
//!
//! Sizes, RoPE and the norm are read as for Llama ([`LlamaConfig::from_hf_config`]) and the
//! feed-forward network is Llama's ([`FeedForward`]). HF stores q and k for RoPE on split
//! halves; [`hf_alias`] gives each HF tensor its GGUF name (`blk.{i}.attn_q.bias`, ...).
//!
//! The window, as transformers decides it: `sliding_window` counts only when
//! `use_sliding_window` is true, and then only for layers `i >= max_window_layers` (or those
//! `layer_types` marks `sliding_attention`). Published Qwen2.5 configs carry a
//! `sliding_window` with `use_sliding_window: false`: full attention in every layer.
//!
//! ```no_run
//! use lazyforge_models::qwen2::Qwen2;
//! use lazyforge::Device;
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let model = Qwen2::open("Qwen2.5-0.5B-Instruct", Device::Cpu)?; // an HF directory; metadata only
//! let mut cache = model.new_cache()?;
//! let logits = model.forward_prefill(&[9707, 11, 1879, 0], &mut cache)?;
//! let next = lazyforge_models::sampling::argmax(&logits.to_f32_vec()?);
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::hf::{flag, layer_windows, open_hf, refuse_unsupported, Linear};
use crate::llama::{self, FeedForward, LlamaConfig};
use lazyforge::ops::{self, KvCache, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, strategy, Bind, Device, ExecutionMode, LazyModule};
use lazyforge::{Scope, Tensor, Weight};
use std::path::Path;

/// Qwen2's hyperparameters: Llama's, plus which layers slide and whether the LM head is tied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct Qwen2Config {
    /// Sizes, RoPE and RMSNorm epsilon (`base.sliding_window` is unused: see `layer_windows`).
    pub base: LlamaConfig,
    /// Each layer's sliding window (`None`: full attention).
    pub layer_windows: Vec<Option<usize>>,
    /// The LM head is the token embedding table (`tie_word_embeddings`).
    pub tie_embeddings: bool,
}

impl Qwen2Config {
    /// Reads an HF `config.json`: refuses RoPE scaling and activations other than SiLU.
    pub fn from_hf_config(path: &Path) -> Result<Qwen2Config> {
        let mut base = LlamaConfig::from_hf_config(path)?;
        base.sliding_window = None;
        let v = llama::read_json(path)?;
        refuse_unsupported(path, &v)?;
        Ok(Qwen2Config {
            layer_windows: layer_windows(path, &v, base.n_layers)?,
            tie_embeddings: flag(path, &v, "tie_word_embeddings")?,
            base,
        })
    }
}

/// Maps an HF Qwen2 tensor name to its GGUF name: Llama's, plus `*_proj.bias`.
pub fn hf_alias(name: &str) -> Option<String> {
    let Some(stem) = name.strip_suffix(".bias") else {
        return llama::hf_alias(name);
    };
    let weight = llama::hf_alias(&format!("{stem}.weight"))?;
    Some(format!("{}.bias", weight.strip_suffix(".weight")?))
}

/// Self-attention with grouped-query heads, RoPE, biases on q, k and v, and the window of
/// its layer's cache.
#[lazy_module]
pub struct Attention {
    #[config]
    cfg: LlamaConfig,
    #[weight("attn_q.weight", shape = [cfg.n_heads * cfg.head_dim, cfg.hidden])]
    q: Weight,
    #[weight("attn_q.bias", shape = [cfg.n_heads * cfg.head_dim])]
    q_bias: Weight,
    #[weight("attn_k.weight", shape = [cfg.n_kv_heads * cfg.head_dim, cfg.hidden])]
    k: Weight,
    #[weight("attn_k.bias", shape = [cfg.n_kv_heads * cfg.head_dim])]
    k_bias: Weight,
    #[weight("attn_v.weight", shape = [cfg.n_kv_heads * cfg.head_dim, cfg.hidden])]
    v: Weight,
    #[weight("attn_v.bias", shape = [cfg.n_kv_heads * cfg.head_dim])]
    v_bias: Weight,
    #[weight("attn_output.weight", shape = [cfg.hidden, cfg.n_heads * cfg.head_dim])]
    o: Weight,
}

#[strategy(prefill, decode)]
impl Attention {
    /// The prompt: matrix-matrix products.
    fn prefill(&self, x: &Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        self.run(x, cache, rope, |w, x| ops::matmul(x, w))
    }

    /// One token: matrix-vector products against the cache.
    fn decode(&self, x: &Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        self.run(x, cache, rope, ops::matvec)
    }

    /// Projects with biases, rotates q and k, appends k and v to the cache, attends.
    fn run(&self, x: &Tensor, kv: &mut KvCache, rope: &RopeTable, mm: Linear) -> Result<Tensor> {
        let (wq, wk, wv, wo) = (self.q()?, self.k()?, self.v()?, self.o()?);
        let (mut q, mut k, mut v) = (mm(&wq, x)?, mm(&wk, x)?, mm(&wv, x)?);
        ops::add_bias_in_place(&mut q, &*self.q_bias()?)?;
        ops::add_bias_in_place(&mut k, &*self.k_bias()?)?;
        ops::add_bias_in_place(&mut v, &*self.v_bias()?)?;
        let (c, start) = (&self.cfg, kv.next_position());
        let (style, hd) = (c.rope_style, c.head_dim);
        let pos: Vec<usize> = (start..start + q.elem_count() / (c.n_heads * hd)).collect();
        ops::rope(&mut q, style, c.n_heads, hd, &pos, rope)?;
        ops::rope(&mut k, style, c.n_kv_heads, hd, &pos, rope)?;
        kv.append(&k, &v, &pos)?;
        let mixed = ops::attention(&q, &pos, c.n_heads, kv, kv.window())?;
        Ok(mm(&wo, &mixed)?)
    }
}

/// A transformer block: pre-norm attention and pre-norm feed-forward, each with a residual.
#[lazy_module]
pub struct Block {
    #[config]
    cfg: LlamaConfig,
    #[weight("attn_norm.weight", shape = [cfg.hidden])]
    attn_norm: Weight,
    #[submodule]
    attn: Attention,
    #[weight("ffn_norm.weight", shape = [cfg.hidden])]
    ffn_norm: Weight,
    #[submodule]
    ffn: FeedForward,
}

#[strategy(prefill, decode)]
impl Block {
    fn prefill(&self, x: &mut Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<()> {
        let h = self.norm(x, &self.attn_norm)?;
        ops::add_in_place(x, &self.attn.forward_prefill(&h, cache, rope)?)?;
        let h = self.norm(x, &self.ffn_norm)?;
        Ok(ops::add_in_place(x, &self.ffn.forward_prefill(&h)?)?)
    }

    fn decode(&self, x: &mut Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<()> {
        let h = self.norm(x, &self.attn_norm)?;
        ops::add_in_place(x, &self.attn.forward_decode(&h, cache, rope)?)?;
        let h = self.norm(x, &self.ffn_norm)?;
        Ok(ops::add_in_place(x, &self.ffn.forward_decode(&h)?)?)
    }

    /// `rms_norm(x)` with the norm weight `w`.
    fn norm(&self, x: &Tensor, w: &Weight) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &*w.get()?, self.cfg.rms_eps)?)
    }
}

/// The model: token embeddings, blocks, final norm, and the LM head (the token embeddings
/// when tied).
#[lazy_module]
pub struct Qwen2 {
    #[config]
    cfg: Qwen2Config,
    #[weight("token_embd.weight", shape = [cfg.base.vocab, cfg.base.hidden])]
    token_embd: Weight,
    #[submodules("blk.{i}", count = cfg.base.n_layers, config = cfg.base.clone())]
    blocks: Vec<Block>,
    #[weight("output_norm.weight", shape = [cfg.base.hidden])]
    output_norm: Weight,
    #[weight("output.weight", shape = [cfg.base.vocab, cfg.base.hidden], fallback = "token_embd.weight")]
    output: Weight,
}

#[strategy(prefill, decode)]
impl Qwen2 {
    /// The prompt `ids` (appended after what `cache` holds): last-position logits `[1, vocab]`.
    fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let x = self.hidden(ExecutionMode::PREFILL, ids, cache)?;
        self.logits(ops::last_row(&x)?)
    }

    /// One token `ids[0]` against the cache: its logits `[1, vocab]`.
    fn decode(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let x = self.hidden(ExecutionMode::DECODE, ids, cache)?;
        self.logits(x)
    }
}

impl Qwen2 {
    /// Opens an HF directory (config.json + safetensors, sharded or not) and binds the model
    /// to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Qwen2> {
        let cfg = Qwen2Config::from_hf_config(&path.as_ref().join("config.json"))?;
        let checkpoint = open_hf(path.as_ref(), hf_alias, cfg.tie_embeddings)?;
        Ok(Qwen2::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &Qwen2Config {
        &self.cfg
    }

    /// A fresh per-sequence cache on the model's device (each layer's KV cache bounded by
    /// its window, if any); it grows with the positions reached.
    pub fn new_cache(&self) -> Result<Cache> {
        let (c, device) = (&self.cfg.base, self.state().device());
        let layers = (self.cfg.layer_windows.iter())
            .map(|&w| KvCache::new_on(device, c.n_kv_heads, c.head_dim, w))
            .collect::<lazyforge::Result<_>>()?;
        let rope = RopeTable::on_demand(device, c.rope_dim, c.rope_theta)?;
        Ok(Cache::new(device, layers, vec![rope]))
    }

    /// Logits at every position of the prompt `ids`, `[n, vocab]` (for parity checks).
    pub fn prefill_all_logits(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let _pin = self.resident().pin()?;
        let x = self.hidden(ExecutionMode::PREFILL, ids, cache)?;
        self.logits(x)
    }

    /// Embeds `ids` and runs every block in `mode`: the hidden states `[n, hidden]`.
    fn hidden(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        if ids.is_empty() {
            return Err(Error::Config("no tokens to run".into()));
        }
        let mut x = ops::embedding(&*self.token_embd()?, ids)?;
        let (layers, ropes) = cache.prepare(ids.len());
        for (block, kv) in self.blocks.iter().zip(layers) {
            block.forward(mode, &mut x, kv, &ropes[0])?;
        }
        Ok(x)
    }

    /// Final norm and LM head over hidden states `[n, hidden]`: `[n, vocab]`.
    fn logits(&self, x: Tensor) -> Result<Tensor> {
        let (norm, output) = (self.output_norm()?, self.output()?);
        let x = ops::rms_norm(&x, &norm, self.cfg.base.rms_eps)?;
        Ok(ops::matmul(&x, &output)?)
    }
}
