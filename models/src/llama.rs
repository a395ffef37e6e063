//! Llama (Llama 2/3, SmolLM, TinyLlama) and Mistral (grouped-query attention with a sliding
//! window): config, then modules from small to large, then the model.
//!
//! Weights are named as in GGUF (`blk.{i}.attn_q.weight`); HF checkpoints are read through
//! [`hf_alias`], which gives each HF tensor its GGUF name. GGUF files store the query and key
//! projections permuted for RoPE on interleaved pairs; HF stores them unpermuted for RoPE on
//! split halves. [`RopeStyle`] records which, so both give the same numbers.
//!
//! ```no_run
//! use lazyforge_models::llama::Llama;
//! use lazyforge::Device;
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let model = Llama::open("SmolLM2-135M-Instruct.Q4_1.gguf", Device::Cpu)?; // metadata only
//! let mut cache = model.new_cache()?;
//! let logits = model.forward_prefill(&[504, 3575, 282, 4649, 314], &mut cache)?;
//! let next = lazyforge_models::sampling::argmax(&logits.to_f32_vec()?);
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::common::project;
use crate::error::{Error, Result};
use lazyforge::ops::{self, KvCache, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::source::gguf::GgufFile;
use lazyforge::{
    lazy_module, strategy, Bind, Checkpoint, Device, ExecutionMode, LazyModule, Scope, Tensor,
    Weight,
};
use std::path::Path;

/// How RoPE pairs dimensions, which depends on how q and k weights were stored
/// (`Interleaved` for GGUF files, `SplitHalf` for HF checkpoints).
pub use lazyforge::ops::RopeStyle;

/// Llama's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// How RoPE pairs dimensions.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Longest context the model was trained for.
    pub context_length: usize,
    /// Mistral's sliding window: a query at position i attends keys j with i-W < j <= i.
    pub sliding_window: Option<usize>,
}

impl LlamaConfig {
    /// Reads `{arch}.*` keys of a GGUF file (`general.architecture` is `llama` for Llama,
    /// Mistral and SmolLM conversions).
    pub fn from_gguf(gguf: &GgufFile) -> Result<LlamaConfig> {
        let arch = gguf.get_str("general.architecture")?;
        if arch != "llama" && arch != "mistral" {
            return Err(Error::Config(format!(
                "{}: architecture '{arch}' is not llama or mistral",
                gguf.path().display()
            )));
        }
        LlamaConfig::from_gguf_keys(gguf, arch)
    }

    /// Reads the `{arch}.*` keys that Llama's converters write, as other architectures'
    /// GGUF files carry them too (Gemma 3), and checks the sizes fit together.
    pub fn from_gguf_keys(gguf: &GgufFile, arch: &str) -> Result<LlamaConfig> {
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = gguf.get_u64(&key("embedding_length"))? as usize;
        let n_heads = gguf.get_u64(&key("attention.head_count"))? as usize;
        let n_kv_heads = match gguf.get(&key("attention.head_count_kv")) {
            Some(_) => gguf.get_u64(&key("attention.head_count_kv"))? as usize,
            None => n_heads,
        };
        let head_dim = match gguf.get(&key("attention.key_length")) {
            Some(_) => gguf.get_u64(&key("attention.key_length"))? as usize,
            None => hidden / n_heads.max(1),
        };
        let optional_u64 = |k: &str| -> Result<Option<u64>> {
            match gguf.get(&key(k)) {
                Some(_) => Ok(Some(gguf.get_u64(&key(k))?)),
                None => Ok(None),
            }
        };
        let vocab = match optional_u64("vocab_size")? {
            Some(v) => v as usize,
            None => gguf.get_string_array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = LlamaConfig {
            vocab,
            hidden,
            intermediate: gguf.get_u64(&key("feed_forward_length"))? as usize,
            n_layers: gguf.get_u64(&key("block_count"))? as usize,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim: optional_u64("rope.dimension_count")?.map_or(head_dim, |d| d as usize),
            rope_theta: match gguf.get(&key("rope.freq_base")) {
                Some(_) => gguf.get_f32(&key("rope.freq_base"))?,
                None => 10_000.0,
            },
            rope_style: RopeStyle::Interleaved,
            rms_eps: gguf.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            context_length: gguf.get_u64(&key("context_length"))? as usize,
            sliding_window: optional_u64("attention.sliding_window")?.map(|w| w as usize),
        };
        cfg.validate(&gguf.path().display().to_string())?;
        Ok(cfg)
    }

    /// Reads an HF `config.json` (transformers 4.x top-level `rope_theta`, or 5.x
    /// `rope_parameters.rope_theta`).
    pub fn from_hf_config(path: &Path) -> Result<LlamaConfig> {
        let v = read_json(path)?;
        let at = |k: &str| v.get(k).filter(|x| !x.is_null());
        let usize_at = |k: &str| -> Result<usize> {
            at(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| {
                    Error::Config(format!("{}: missing or non-integer '{k}'", path.display()))
                })
        };
        let hidden = usize_at("hidden_size")?;
        let n_heads = usize_at("num_attention_heads")?;
        let head_dim = usize_at("head_dim").unwrap_or(hidden / n_heads.max(1));
        let rope_theta = at("rope_theta")
            .or_else(|| v.pointer("/rope_parameters/rope_theta"))
            .and_then(|x| x.as_f64())
            .unwrap_or(10_000.0) as f32;
        if let Some(scaling) = at("rope_scaling") {
            return Err(Error::Config(format!(
                "{}: rope_scaling {scaling} is not supported yet",
                path.display()
            )));
        }
        let cfg = LlamaConfig {
            vocab: usize_at("vocab_size")?,
            hidden,
            intermediate: usize_at("intermediate_size")?,
            n_layers: usize_at("num_hidden_layers")?,
            n_heads,
            n_kv_heads: usize_at("num_key_value_heads").unwrap_or(n_heads),
            head_dim,
            rope_dim: head_dim,
            rope_theta,
            rope_style: RopeStyle::SplitHalf,
            rms_eps: at("rms_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-6) as f32,
            context_length: usize_at("max_position_embeddings").unwrap_or(4096),
            sliding_window: at("sliding_window")
                .and_then(|x| x.as_u64())
                .map(|w| w as usize),
        };
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    fn validate(&self, source: &str) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("{source}: {what}")));
        if self.n_heads == 0
            || self.n_kv_heads == 0
            || !self.n_heads.is_multiple_of(self.n_kv_heads)
        {
            return bad(format!(
                "{} heads is not a multiple of {} key/value heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return bad(format!(
                "rope dimension {} must be even and at most the head dimension {}",
                self.rope_dim, self.head_dim
            ));
        }
        if self.sliding_window == Some(0) {
            return bad("sliding window of 0".into());
        }
        Ok(())
    }
}

/// An HF `config.json` as JSON; an error names the file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Maps an HF Llama/Mistral tensor name to the GGUF name the modules declare.
pub fn hf_alias(name: &str) -> Option<String> {
    let fixed = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let gguf = match rest {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{i}.{gguf}"))
}

/// Llama's per-sequence state: one KV cache per layer and one RoPE table.
pub type LlamaCache = Cache;

/// Positions for `n` new tokens after what `cache` holds.
fn next_positions(cache: &KvCache, n: usize) -> Vec<usize> {
    let start = cache.next_position();
    (start..start + n).collect()
}

/// Self-attention with grouped-query heads, RoPE and an optional sliding window.
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
}

#[strategy(prefill, decode)]
impl Attention {
    /// The prompt: matrix-matrix projections, causal (banded with a window) attention.
    fn prefill(&self, x: &Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let q = ops::matmul(x, &wq)?;
        let k = ops::matmul(x, &wk)?;
        let v = ops::matmul(x, &wv)?;
        let mixed = self.attend(q, k, v, cache, rope)?;
        let wo = self.o()?;
        Ok(ops::matmul(&mixed, &wo)?)
    }

    /// One token: matrix-vector projections against the cache.
    fn decode(&self, x: &Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let [q, k, v] = project(ExecutionMode::DECODE, [&*wq, &*wk, &*wv], x)?;
        let mixed = self.attend(q, k, v, cache, rope)?;
        let wo = self.o()?;
        Ok(ops::matvec(&wo, &mixed)?)
    }

    /// Rotates q and k (`[n, heads * head_dim]`), appends k and v to the cache, attends;
    /// `[n, n_heads * head_dim]`.
    fn attend(
        &self,
        mut q: Tensor,
        mut k: Tensor,
        v: Tensor,
        cache: &mut KvCache,
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let n = q.elem_count() / (c.n_heads * c.head_dim);
        let positions = next_positions(cache, n);
        ops::rope(
            &mut q,
            c.rope_style,
            c.n_heads,
            c.head_dim,
            &positions,
            rope,
        )?;
        ops::rope(
            &mut k,
            c.rope_style,
            c.n_kv_heads,
            c.head_dim,
            &positions,
            rope,
        )?;
        cache.append(&k, &v, &positions)?;
        Ok(ops::attention(
            &q,
            &positions,
            c.n_heads,
            cache,
            c.sliding_window,
        )?)
    }
}

/// The SwiGLU feed-forward network: `down(silu(gate(x)) * up(x))`.
#[lazy_module]
pub struct FeedForward {
    #[config]
    cfg: LlamaConfig,
    #[weight("ffn_gate.weight", shape = [cfg.intermediate, cfg.hidden])]
    gate: Weight,
    #[weight("ffn_up.weight", shape = [cfg.intermediate, cfg.hidden])]
    up: Weight,
    #[weight("ffn_down.weight", shape = [cfg.hidden, cfg.intermediate])]
    down: Weight,
}

#[strategy(prefill, decode)]
impl FeedForward {
    /// Many tokens: matrix-matrix products.
    fn prefill(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up, down) = (self.gate()?, self.up()?, self.down()?);
        let mut g = ops::matmul(x, &gate)?;
        let u = ops::matmul(x, &up)?;
        ops::swiglu_in_place(&mut g, &u)?;
        Ok(ops::matmul(&g, &down)?)
    }

    /// One token: matrix-vector products.
    fn decode(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up, down) = (self.gate()?, self.up()?, self.down()?);
        let [mut g, u] = project(ExecutionMode::DECODE, [&*gate, &*up], x)?;
        ops::swiglu_in_place(&mut g, &u)?;
        Ok(ops::matvec(&down, &g)?)
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
        let h = self.attn_input(x)?;
        let a = self.attn.forward_prefill(&h, cache, rope)?;
        ops::add_in_place(x, &a)?;
        let h = self.ffn_input(x)?;
        let f = self.ffn.forward_prefill(&h)?;
        ops::add_in_place(x, &f)?;
        Ok(())
    }

    fn decode(&self, x: &mut Tensor, cache: &mut KvCache, rope: &RopeTable) -> Result<()> {
        let h = self.attn_input(x)?;
        let a = self.attn.forward_decode(&h, cache, rope)?;
        ops::add_in_place(x, &a)?;
        let h = self.ffn_input(x)?;
        let f = self.ffn.forward_decode(&h)?;
        ops::add_in_place(x, &f)?;
        Ok(())
    }
}

impl Block {
    /// The attention's input: `rms_norm(x)` with `attn_norm`.
    fn attn_input(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.attn_norm()?;
        Ok(ops::rms_norm(x, &w, self.cfg.rms_eps)?)
    }

    /// The feed-forward's input: `rms_norm(x)` with `ffn_norm`.
    fn ffn_input(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.ffn_norm()?;
        Ok(ops::rms_norm(x, &w, self.cfg.rms_eps)?)
    }
}

/// The model: token embeddings, blocks, final norm, and the LM head (tied to the token
/// embeddings when the checkpoint has no `output.weight`).
#[lazy_module]
pub struct Llama {
    #[config]
    cfg: LlamaConfig,
    #[weight("token_embd.weight", shape = [cfg.vocab, cfg.hidden])]
    token_embd: Weight,
    #[submodules("blk.{i}", count = cfg.n_layers)]
    blocks: Vec<Block>,
    #[weight("output_norm.weight", shape = [cfg.hidden])]
    output_norm: Weight,
    #[weight("output.weight", shape = [cfg.vocab, cfg.hidden], fallback = "token_embd.weight")]
    output: Weight,
}

/// Mistral is Llama's architecture with grouped-query attention and a sliding window
/// (`LlamaConfig::sliding_window`): the same modules, bound the same way.
pub type Mistral = Llama;

#[strategy(prefill, decode)]
impl Llama {
    /// The prompt `ids` (appended after what `cache` holds): last-position logits `[1, vocab]`.
    fn prefill(&self, ids: &[u32], cache: &mut LlamaCache) -> Result<Tensor> {
        let x = self.hidden_prefill(ids, cache)?;
        self.logits(ops::last_row(&x)?)
    }

    /// One token `ids[0]` against the cache: its logits `[1, vocab]`.
    fn decode(&self, ids: &[u32], cache: &mut LlamaCache) -> Result<Tensor> {
        let mut x = self.embed(ids)?;
        let (layers, ropes) = cache.prepare(ids.len());
        for (block, kv) in self.blocks.iter().zip(layers) {
            block.forward_decode(&mut x, kv, &ropes[0])?;
        }
        self.logits(x)
    }
}

impl Llama {
    /// Opens a GGUF file or an HF directory (config.json + safetensors, sharded or not) and
    /// binds the model to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Llama> {
        let path = path.as_ref();
        let (checkpoint, cfg) = if path.is_dir() {
            let cfg = LlamaConfig::from_hf_config(&path.join("config.json"))?;
            (Checkpoint::open(path)?.with_aliases(hf_alias)?, cfg)
        } else {
            let checkpoint = Checkpoint::open(path)?;
            let gguf = checkpoint.gguf().ok_or_else(|| {
                Error::Config(format!(
                    "{}: expected a GGUF file or an HF model directory",
                    path.display()
                ))
            })?;
            let cfg = LlamaConfig::from_gguf(gguf)?;
            (checkpoint, cfg)
        };
        Ok(Llama::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// A fresh per-sequence cache on the model's device (KV caches bounded by the sliding
    /// window, if any). It holds almost nothing until tokens run: its KV caches and RoPE
    /// table grow with the positions reached, whatever the context length.
    pub fn new_cache(&self) -> Result<LlamaCache> {
        let c = &self.cfg;
        let device = self.state().device();
        let layers = KvCache::for_layers_on(
            device,
            c.n_layers,
            c.n_kv_heads,
            c.head_dim,
            c.sliding_window,
        )?;
        let rope = RopeTable::on_demand(device, c.rope_dim, c.rope_theta)?;
        Ok(Cache::new(device, layers, vec![rope]))
    }

    /// Logits at every position of the prompt `ids`, `[n, vocab]` (for parity checks; a
    /// generation only needs the last row, which [`Llama::forward_prefill`] computes).
    pub fn prefill_all_logits(&self, ids: &[u32], cache: &mut LlamaCache) -> Result<Tensor> {
        let _pin = self.resident().pin()?;
        let x = self.hidden_prefill(ids, cache)?;
        self.logits(x)
    }

    /// Embeds `ids` and runs every block's prefill: the hidden states `[n, hidden]`.
    fn hidden_prefill(&self, ids: &[u32], cache: &mut LlamaCache) -> Result<Tensor> {
        if ids.is_empty() {
            return Err(Error::Config("prefill needs at least one token".into()));
        }
        let mut x = self.embed(ids)?;
        let (layers, ropes) = cache.prepare(ids.len());
        for (block, kv) in self.blocks.iter().zip(layers) {
            block.forward_prefill(&mut x, kv, &ropes[0])?;
        }
        Ok(x)
    }

    /// The token embeddings of `ids`, `[n, hidden]`.
    fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let table = self.token_embd()?;
        Ok(ops::embedding(&table, ids)?)
    }

    /// Final norm and LM head over hidden states `[n, hidden]`: `[n, vocab]`.
    fn logits(&self, x: Tensor) -> Result<Tensor> {
        let (norm, output) = (self.output_norm()?, self.output()?);
        let x = ops::rms_norm(&x, &norm, self.cfg.rms_eps)?;
        Ok(ops::matmul(&x, &output)?)
    }
}

/// Definitions and estimates: what a Llama costs, answered from metadata alone.
impl Llama {
    /// A definition of the model at `path` that costs its config and path until first used
    /// ([`Deferred::get`](lazyforge::module::Deferred::get) opens and binds). Reads the
    /// config now (metadata only) and keeps no file open.
    pub fn define(
        path: impl AsRef<Path>,
        device: Device,
    ) -> Result<lazyforge::module::Deferred<Llama>> {
        let path = path.as_ref();
        let cfg = if path.is_dir() {
            LlamaConfig::from_hf_config(&path.join("config.json"))?
        } else {
            let checkpoint = Checkpoint::open(path)?;
            let gguf = checkpoint.gguf().ok_or_else(|| {
                Error::Config(format!(
                    "{}: expected a GGUF file or an HF model directory",
                    path.display()
                ))
            })?;
            LlamaConfig::from_gguf(gguf)?
        };
        Ok(lazyforge::module::Deferred::with_opener(
            path,
            device,
            cfg,
            |p| {
                if p.is_dir() {
                    Checkpoint::open(p)?.with_aliases(hf_alias)
                } else {
                    Checkpoint::open(p)
                }
            },
        ))
    }

    /// What running `batch` sequences of `context` tokens costs, without reading any
    /// weight: weight bytes per device and dtype, the KV caches' bytes (f32 keys and values
    /// for every layer, bounded by the sliding window, plus one position per slot), and
    /// FLOPs per token — matrix products (two per weight value) plus attention (four per
    /// query head dimension per attended key); norms, RoPE and activations are left out.
    /// Decode is counted at position `context`; prefill averages over a `context`-token
    /// prompt.
    pub fn estimate_for(&self, context: usize, batch: usize) -> lazyforge::module::Estimate {
        let c = &self.cfg;
        let mut estimate = self.estimate();
        let slots = c.sliding_window.map_or(context, |w| context.min(w)) as u64;
        let per_slot = (2 * c.n_kv_heads * c.head_dim * 4 + std::mem::size_of::<usize>()) as u64;
        estimate.kv_cache_bytes = batch as u64 * c.n_layers as u64 * slots * per_slot;
        let block: u64 = self.blocks.iter().map(|b| b.parameter_count()).sum();
        let norms = (c.n_layers * 2 * c.hidden) as u64;
        let matmul_values = block - norms + (c.vocab * c.hidden) as u64;
        let attend = |keys: u64| c.n_layers as u64 * 4 * (c.n_heads * c.head_dim) as u64 * keys;
        let window = c.sliding_window.map_or(u64::MAX, |w| w as u64);
        let decode_keys = (context as u64 + 1).min(window);
        // Query i attends min(i + 1, W) keys; the mean over i < context.
        let prefill_keys = if context == 0 {
            0
        } else {
            (0..context as u64)
                .map(|i| (i + 1).min(window))
                .sum::<u64>()
                / context as u64
        };
        estimate.flops_per_token_decode = 2 * matmul_values + attend(decode_keys);
        estimate.flops_per_token_prefill = 2 * matmul_values + attend(prefill_keys);
        estimate
    }
}
