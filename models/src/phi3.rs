//! Phi-3 (Phi-3-mini/medium 4k, Phi-3.5-mini without its long-context RoPE): Llama with a
//! fused `qkv_proj` (q, then k, then v rows) and a fused `gate_up_proj` (gate rows, then up
//! rows), and a sliding window applied whenever the config sets one (Phi-3-mini-4k: 2047).
//! Config, then modules from small to large, then the model.
//!
//! Sizes, RoPE and the norm are read as for Llama ([`LlamaConfig::from_hf_config`]), with
//! `partial_rotary_factor` (RoPE on the first `head_dim * factor` dimensions of each head).
//! Long-context RoPE (`rope_scaling` / `rope_type` `longrope`, the 128k models) is refused.
//! Tensors get GGUF names through [`hf_alias`] (`blk.{i}.attn_qkv.weight`, and the fused
//! `blk.{i}.ffn_up.weight` of `2 * intermediate` rows, as llama.cpp names it).
//!
//! ```no_run
//! use lazyforge_models::phi3::Phi3;
//! use lazyforge::Device;
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let model = Phi3::open("Phi-3-mini-4k-instruct", Device::Cpu)?; // an HF directory; metadata only
//! let mut cache = model.new_cache()?;
//! let logits = model.forward_prefill(&[1, 15043, 29892, 3186], &mut cache)?;
//! let next = lazyforge_models::sampling::argmax(&logits.to_f32_vec()?);
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::common::{self, linear, positions, rms_norm};
use crate::error::Result;
use crate::hf::{bad, flag, open_hf, refuse_unsupported};
use crate::llama::{self, LlamaConfig};
use lazyforge::ops::{self, KvCache, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, strategy, Bind, Device, ExecutionMode, LazyModule, Scope};
use lazyforge::{Tensor, Weight};
use serde_json::Value;
use std::path::Path;

/// Phi-3's hyperparameters: Llama's (with `rope_dim` from `partial_rotary_factor`), and
/// whether the LM head is tied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct Phi3Config {
    /// Sizes, RoPE, RMSNorm epsilon and the sliding window.
    pub base: LlamaConfig,
    /// The LM head is the token embedding table (`tie_word_embeddings`).
    pub tie_embeddings: bool,
}

impl Phi3Config {
    /// Reads an HF `config.json` (4.x top-level or 5.x `rope_parameters` keys): refuses
    /// long-context RoPE and activations other than SiLU. A missing `rms_norm_eps` is 1e-5.
    pub fn from_hf_config(path: &Path) -> Result<Phi3Config> {
        let mut base = LlamaConfig::from_hf_config(path)?;
        let v = llama::read_json(path)?;
        refuse_unsupported(path, &v)?;
        let factor = (v.pointer("/rope_parameters/partial_rotary_factor"))
            .or_else(|| v.get("partial_rotary_factor"))
            .filter(|x| !x.is_null());
        if let Some(f) = factor {
            // transformers truncates: int(head_dim * factor).
            base.rope_dim = (base.head_dim as f64 * f.as_f64().unwrap_or(0.0)) as usize;
            if base.rope_dim == 0 || base.rope_dim % 2 == 1 || base.rope_dim > base.head_dim {
                let want = "a factor in (0, 1] that rotates an even number of dimensions";
                return Err(bad(path, "partial_rotary_factor", want));
            }
        }
        if v.get("rms_norm_eps").is_none_or(Value::is_null) {
            base.rms_eps = 1e-5;
        }
        let tie_embeddings = flag(path, &v, "tie_word_embeddings")?;
        Ok(Phi3Config {
            base,
            tie_embeddings,
        })
    }
}

/// Maps an HF Phi-3 tensor name to its GGUF name: Llama's, plus the two fused projections.
pub fn hf_alias(name: &str) -> Option<String> {
    llama::hf_alias(name).or_else(|| {
        let (i, rest) = name.strip_prefix("model.layers.")?.split_once('.')?;
        let gguf = match rest {
            "self_attn.qkv_proj.weight" => "attn_qkv.weight",
            "mlp.gate_up_proj.weight" => "ffn_up.weight",
            _ => return None,
        };
        Some(format!("blk.{}.{gguf}", i.parse::<usize>().ok()?))
    })
}

/// Self-attention with a fused QKV projection, grouped-query heads, RoPE and the window.
#[lazy_module]
pub struct Attention {
    #[config]
    cfg: LlamaConfig,
    #[weight("attn_qkv.weight", shape = [(cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, cfg.hidden])]
    qkv: Weight,
    #[weight("attn_output.weight", shape = [cfg.hidden, cfg.n_heads * cfg.head_dim])]
    o: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Attention {
    /// Projects, splits `[n, (heads + 2 kv_heads) * head_dim]` into q, k and v, rotates q
    /// and k, appends k and v to the cache, attends.
    fn run(&self, m: ExecutionMode, x: &Tensor, kv: &mut KvCache, r: &RopeTable) -> Result<Tensor> {
        let (c, mm, pos) = (&self.cfg, linear(m), positions(kv, x, self.cfg.hidden));
        let qkv = mm(&*self.qkv()?, x)?;
        let (dq, dkv) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        let (mut q, mut k) = (qkv.narrow(1, 0, dq)?, qkv.narrow(1, dq, dkv)?);
        ops::rope(&mut q, c.rope_style, c.n_heads, c.head_dim, &pos, r)?;
        ops::rope(&mut k, c.rope_style, c.n_kv_heads, c.head_dim, &pos, r)?;
        kv.append(&k, &qkv.narrow(1, dq + dkv, dkv)?, &pos)?;
        let mixed = ops::attention(&q, &pos, c.n_heads, kv, c.sliding_window)?;
        Ok(mm(&*self.o()?, &mixed)?)
    }
}

/// The SwiGLU feed-forward network with a fused gate/up projection:
/// `down(silu(gate(x)) * up(x))`.
#[lazy_module]
pub struct FeedForward {
    #[config]
    cfg: LlamaConfig,
    #[weight("ffn_up.weight", shape = [2 * cfg.intermediate, cfg.hidden])]
    gate_up: Weight,
    #[weight("ffn_down.weight", shape = [cfg.hidden, cfg.intermediate])]
    down: Weight,
}

#[strategy(prefill, decode, via = run)]
impl FeedForward {
    /// `down(silu(gate) * up)` from the fused `[n, 2 * intermediate]` (gate columns first).
    fn run(&self, mode: ExecutionMode, x: &Tensor) -> Result<Tensor> {
        let (mm, i) = (linear(mode), self.cfg.intermediate);
        let h = mm(&*self.gate_up()?, x)?;
        let mut gate = h.narrow(1, 0, i)?;
        ops::swiglu_in_place(&mut gate, &h.narrow(1, i, i)?)?;
        Ok(mm(&*self.down()?, &gate)?)
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
pub struct Phi3 {
    #[config]
    cfg: Phi3Config,
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
impl Phi3 {
    /// `ids` (the prompt in prefill, one token in decode) after what `cache` holds: the
    /// last position's logits `[1, vocab]`.
    fn run(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        self.logits(&ops::last_row(&self.hidden(mode, ids, cache)?)?)
    }
}

impl Phi3 {
    /// Opens an HF directory (config.json + safetensors, sharded or not) and binds the model
    /// to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Phi3> {
        let cfg = Phi3Config::from_hf_config(&path.as_ref().join("config.json"))?;
        let checkpoint = open_hf(path.as_ref(), hf_alias, cfg.tie_embeddings)?;
        Ok(Phi3::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &Phi3Config {
        &self.cfg
    }

    /// A fresh per-sequence cache on the model's device (KV caches bounded by the sliding
    /// window, if any); it grows with the positions reached.
    pub fn new_cache(&self) -> Result<Cache> {
        let c = &self.cfg.base;
        let windows = vec![c.sliding_window; c.n_layers];
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
