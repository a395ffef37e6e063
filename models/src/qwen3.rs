//! Qwen3 (dense): Qwen2 without biases, with an RMSNorm on each query and key head (over
//! `head_dim`, before RoPE); `head_dim` is its own key (Qwen3-0.6B: 128 with hidden 1024 and
//! 16 heads). Config, then modules from small to large, then the model.
//!
//! Sizes, RoPE and the norm are read as for Llama, the sliding-window rule is Qwen2's
//! ([`crate::qwen2`]) and the feed-forward network is Llama's ([`FeedForward`]); tensors get
//! GGUF names through [`hf_alias`] (`blk.{i}.attn_q_norm.weight`, ...).
//!
//! ```no_run
//! use lazyforge_models::qwen3::Qwen3;
//! use lazyforge::Device;
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let model = Qwen3::open("Qwen3-0.6B", Device::Cpu)?; // an HF directory; metadata only
//! let mut cache = model.new_cache()?;
//! let logits = model.forward_prefill(&[9707, 11, 1879, 0], &mut cache)?;
//! let next = lazyforge_models::sampling::argmax(&logits.to_f32_vec()?);
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::common::{self, linear, positions, project, rms_norm};
use crate::error::{Error, Result};
use crate::hf::{bad, flag, layer_windows, open_hf, refuse_unsupported};
use crate::llama::{self, FeedForward, LlamaConfig};
use lazyforge::ops::{self, KvCache, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, strategy, Bind, Device, ExecutionMode, LazyModule, Scope};
use lazyforge::{Tensor, Weight};
use serde_json::Value;
use std::path::Path;

/// Qwen3's hyperparameters: Llama's, plus which layers slide and whether the LM head is tied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct Qwen3Config {
    /// Sizes, RoPE and RMSNorm epsilon (`base.sliding_window` is unused: see `layer_windows`).
    pub base: LlamaConfig,
    /// Each layer's sliding window (`None`: full attention).
    pub layer_windows: Vec<Option<usize>>,
    /// The LM head is the token embedding table (`tie_word_embeddings`).
    pub tie_embeddings: bool,
}

impl Qwen3Config {
    /// Reads an HF `config.json`: refuses RoPE scaling, activations other than SiLU and
    /// `attention_bias`. A missing `head_dim` is 128, as in transformers.
    pub fn from_hf_config(path: &Path) -> Result<Qwen3Config> {
        let mut base = LlamaConfig::from_hf_config(path)?;
        base.sliding_window = None;
        let v = llama::read_json(path)?;
        refuse_unsupported(path, &v)?;
        if flag(path, &v, "attention_bias")? {
            return Err(bad(
                path,
                "attention_bias",
                "false (the only value supported)",
            ));
        }
        if v.get("head_dim").is_none_or(Value::is_null) {
            (base.head_dim, base.rope_dim) = (128, 128);
        }
        Ok(Qwen3Config {
            layer_windows: layer_windows(path, &v, base.n_layers)?,
            tie_embeddings: flag(path, &v, "tie_word_embeddings")?,
            base,
        })
    }
}

/// Maps an HF Qwen3 tensor name to its GGUF name: Llama's, plus the q/k head norms.
pub fn hf_alias(name: &str) -> Option<String> {
    llama::hf_alias(name).or_else(|| {
        let (i, rest) = name.strip_prefix("model.layers.")?.split_once('.')?;
        let norm = match rest {
            "self_attn.q_norm.weight" => "attn_q_norm",
            "self_attn.k_norm.weight" => "attn_k_norm",
            _ => return None,
        };
        Some(format!("blk.{}.{norm}.weight", i.parse::<usize>().ok()?))
    })
}

/// Self-attention with grouped-query heads, per-head q/k RMSNorm, RoPE, and the window of
/// its layer's cache.
#[lazy_module]
pub struct Attention {
    #[config]
    cfg: LlamaConfig,
    #[weight("attn_q.weight", shape = [cfg.n_heads * cfg.head_dim, cfg.hidden])]
    q: Weight,
    #[weight("attn_k.weight", shape = [cfg.n_kv_heads * cfg.head_dim, cfg.hidden])]
    k: Weight,
    #[weight("attn_v.weight", shape = [cfg.n_kv_heads * cfg.head_dim, cfg.hidden])]
    v: Weight,
    #[weight("attn_output.weight", shape = [cfg.hidden, cfg.n_heads * cfg.head_dim])]
    o: Weight,
    #[weight("attn_q_norm.weight", shape = [cfg.head_dim])]
    q_norm: Weight,
    #[weight("attn_k_norm.weight", shape = [cfg.head_dim])]
    k_norm: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Attention {
    /// Projects, normalizes each q and k head, rotates them, appends k and v to the cache,
    /// attends.
    fn run(&self, m: ExecutionMode, x: &Tensor, kv: &mut KvCache, r: &RopeTable) -> Result<Tensor> {
        let (c, mm, pos) = (&self.cfg, linear(m), positions(kv, x, self.cfg.hidden));
        let heads = |t: Tensor, w: &Weight, n| {
            let t = rms_norm(&t.reshape([pos.len() * n, c.head_dim])?, w, c.rms_eps)?;
            let mut t = t.reshape([pos.len(), n * c.head_dim])?;
            ops::rope(&mut t, c.rope_style, n, c.head_dim, &pos, r)?;
            Ok::<_, Error>(t)
        };
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let [q, k, v] = project(m, [&*wq, &*wk, &*wv], x)?;
        let q = heads(q, &self.q_norm, c.n_heads)?;
        let k = heads(k, &self.k_norm, c.n_kv_heads)?;
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
pub struct Qwen3 {
    #[config]
    cfg: Qwen3Config,
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
impl Qwen3 {
    /// `ids` (the prompt in prefill, one token in decode) after what `cache` holds: the
    /// last position's logits `[1, vocab]`.
    fn run(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        self.logits(&ops::last_row(&self.hidden(mode, ids, cache)?)?)
    }
}

impl Qwen3 {
    /// Opens an HF directory (config.json + safetensors, sharded or not) and binds the model
    /// to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Qwen3> {
        let cfg = Qwen3Config::from_hf_config(&path.as_ref().join("config.json"))?;
        let checkpoint = open_hf(path.as_ref(), hf_alias, cfg.tie_embeddings)?;
        Ok(Qwen3::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &Qwen3Config {
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
