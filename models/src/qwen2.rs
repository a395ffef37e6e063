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
use crate::common::{self, linear, positions, project, rms_norm};
use crate::error::Result;
use crate::hf::{flag, layer_windows, open_hf, refuse_unsupported};
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

#[strategy(prefill, decode, via = run)]
impl Attention {
    /// Projects with biases, rotates q and k, appends k and v to the cache, attends.
    fn run(&self, m: ExecutionMode, x: &Tensor, kv: &mut KvCache, r: &RopeTable) -> Result<Tensor> {
        let (c, mm, pos) = (&self.cfg, linear(m), positions(kv, x, self.cfg.hidden));
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let [mut q, mut k, mut v] = project(m, [&*wq, &*wk, &*wv], x)?;
        for (y, b) in [
            (&mut q, &self.q_bias),
            (&mut k, &self.k_bias),
            (&mut v, &self.v_bias),
        ] {
            ops::add_bias_in_place(y, &*b.get()?)?;
        }
        ops::rope(&mut q, c.rope_style, c.n_heads, c.head_dim, &pos, r)?;
        ops::rope(&mut k, c.rope_style, c.n_kv_heads, c.head_dim, &pos, r)?;
        kv.append(&k, &v, &pos)?;
        let mixed = ops::attention(&q, &pos, c.n_heads, kv, kv.window())?;
        Ok(mm(&*self.o()?, &mixed)?)
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

#[strategy(prefill, decode, via = run)]
impl Block {
    fn run(&self, m: ExecutionMode, x: &mut Tensor, kv: &mut KvCache, r: &RopeTable) -> Result<()> {
        let norm = |x: &Tensor, w| rms_norm(x, w, self.cfg.rms_eps);
        ops::add_in_place(x, &self.attn.forward(m, &norm(x, &self.attn_norm)?, kv, r)?)?;
        Ok(ops::add_in_place(
            x,
            &self.ffn.forward(m, &norm(x, &self.ffn_norm)?)?,
        )?)
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

#[strategy(prefill, decode, via = run)]
impl Qwen2 {
    /// `ids` (the prompt in prefill, one token in decode) after what `cache` holds: the
    /// last position's logits `[1, vocab]`.
    fn run(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        self.logits(&ops::last_row(&self.hidden(mode, ids, cache)?)?)
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
        let (c, windows) = (&self.cfg.base, self.cfg.layer_windows.iter().copied());
        Ok(Cache::for_config(
            self.state().device(),
            c,
            windows,
            &[c.rope_theta],
        )?)
    }

    /// Logits at every position of the prompt `ids`, `[n, vocab]` (for parity checks).
    pub fn prefill_all_logits(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let _pin = self.resident().pin()?;
        self.logits(&self.hidden(ExecutionMode::PREFILL, ids, cache)?)
    }

    /// Embeds `ids` and runs every block in `mode`: the hidden states `[n, hidden]`.
    fn hidden(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        common::hidden(&self.token_embd, ids, None, cache, |i, x, kv, ropes| {
            self.blocks[i].forward(mode, x, kv, &ropes[0])
        })
    }

    /// Final norm and LM head over hidden states `[n, hidden]`: `[n, vocab]`.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        common::lm_head(x, &self.output_norm, &self.output, self.cfg.base.rms_eps)
    }
}
