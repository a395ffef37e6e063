//! Gemma 3 (text): sandwich norms, per-head query/key RMSNorm, GeGLU, scaled embeddings, and
//! five local (sliding-window) layers to every global one, each kind with its own RoPE base.
//!
//! Read from GGUF (`general.architecture = gemma3`). llama.cpp's converter stores every
//! Gemma RMSNorm weight as `1 + w` (Gemma normalizes with `x · (1 + w)`), so the plain
//! RMSNorm of the file's weights is the reference's. Two facts are not in the file and come
//! from the reference implementation: local layers rotate with base 10 000 (global layers
//! with `rope.freq_base`), and layer `i` is global when `(i + 1) % 6 == 0`.
//!
//! ```no_run
//! use lazyforge_models::gemma3::Gemma3;
//! use lazyforge::Device;
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! let model = Gemma3::open("gemma-3-270m-q4_k_m.gguf", Device::Cpu)?; // metadata only
//! let mut cache = model.new_cache()?;
//! let logits = model.forward_prefill(&[2, 818, 5279, 529, 7001, 563], &mut cache)?;
//! # Ok(())
//! # }
//! ```

use crate::cache::Cache;
use crate::common::{self, linear, positions, project, rms_norm};
use crate::error::{Error, Result};
use crate::llama::LlamaConfig;
use lazyforge::ops::{self, KvCache, RopeStyle, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::source::gguf::GgufFile;
use lazyforge::{lazy_module, strategy, Bind, Checkpoint, Device, ExecutionMode, LazyModule};
use lazyforge::{Scope, Tensor, Weight};
use std::path::Path;

/// RoPE base of the local (sliding-window) layers: HF's `rope_local_base_freq` default.
const LOCAL_ROPE_BASE: f32 = 10_000.0;
/// Every this many layers, one is global: HF's `sliding_window_pattern` default.
const GLOBAL_EVERY: usize = 6;

/// Gemma 3's hyperparameters: the sizes, epsilon, global RoPE base and window as Llama's
/// GGUF keys give them (under `gemma3.*`), and the local layers' RoPE base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct Gemma3Config {
    /// Sizes, the global layers' RoPE base, RMSNorm epsilon, and the local layers' window
    /// (`rope_style` is [`RopeStyle::SplitHalf`]).
    pub base: LlamaConfig,
    /// RoPE base of the local layers.
    pub rope_local_theta: f32,
}

impl Gemma3Config {
    /// Reads the `gemma3.*` keys of a GGUF file.
    pub fn from_gguf(path: &Path, gguf: &GgufFile) -> Result<Self> {
        let bad = |what: &str| Error::Config(format!("{}: {what}", path.display()));
        let arch = gguf.get_str("general.architecture")?;
        if arch != "gemma3" {
            return Err(bad(&format!("architecture '{arch}' is not gemma3")));
        }
        let base = LlamaConfig::from_gguf_keys(gguf, arch)?;
        if base.sliding_window.is_none() || base.rope_dim != base.head_dim {
            return Err(bad(
                "no sliding window, or RoPE on part of each head: not Gemma 3's",
            ));
        }
        let base = LlamaConfig {
            rope_style: RopeStyle::SplitHalf,
            ..base
        };
        Ok(Gemma3Config {
            base,
            rope_local_theta: LOCAL_ROPE_BASE,
        })
    }

    /// Whether layer `i` attends globally (every sixth layer) rather than in the window.
    pub fn is_global(&self, i: usize) -> bool {
        (i + 1).is_multiple_of(GLOBAL_EVERY)
    }
}

/// Attention with RMSNorm on each query and key head, RoPE on split halves, grouped-query
/// heads, and the window of its layer's cache (none in global layers).
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
    #[weight("attn_q_norm.weight", shape = [cfg.head_dim])]
    q_norm: Weight,
    #[weight("attn_k_norm.weight", shape = [cfg.head_dim])]
    k_norm: Weight,
    #[weight("attn_output.weight", shape = [cfg.hidden, cfg.n_heads * cfg.head_dim])]
    o: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Attention {
    /// Projects, normalizes and rotates q and k per head, appends k and v, attends.
    fn run(
        &self,
        m: ExecutionMode,
        x: &Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
    ) -> Result<Tensor> {
        let (c, mm, pos) = (&self.cfg, linear(m), positions(kv, x, self.cfg.hidden));
        let heads = |t: Tensor, w: &Weight, n| {
            let t = rms_norm(&t.reshape([pos.len() * n, c.head_dim])?, w, c.rms_eps)?;
            let mut t = t.reshape([pos.len(), n * c.head_dim])?;
            ops::rope(&mut t, RopeStyle::SplitHalf, n, c.head_dim, &pos, rope)?;
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

/// The GeGLU feed-forward network: `down(gelu_tanh(gate(x)) · up(x))`.
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

#[strategy(prefill, decode, via = run)]
impl FeedForward {
    fn run(&self, mode: ExecutionMode, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate()?, self.up()?);
        let [mut g, u] = project(mode, [&*gate, &*up], x)?;
        ops::geglu_in_place(&mut g, &u)?;
        Ok(linear(mode)(&*self.down()?, &g)?)
    }
}

/// A block with sandwich norms: `x += post_attn(attn(pre_attn(x)))`, then the same around
/// the feed-forward.
#[lazy_module]
pub struct Block {
    #[config]
    cfg: LlamaConfig,
    #[weight("attn_norm.weight", shape = [cfg.hidden])]
    attn_norm: Weight,
    #[submodule]
    attn: Attention,
    #[weight("post_attention_norm.weight", shape = [cfg.hidden])]
    post_attn_norm: Weight,
    #[weight("ffn_norm.weight", shape = [cfg.hidden])]
    ffn_norm: Weight,
    #[submodule]
    ffn: FeedForward,
    #[weight("post_ffw_norm.weight", shape = [cfg.hidden])]
    post_ffn_norm: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Block {
    fn run(&self, m: ExecutionMode, x: &mut Tensor, kv: &mut KvCache, r: &RopeTable) -> Result<()> {
        let norm = |x: &Tensor, w| rms_norm(x, w, self.cfg.rms_eps);
        let a = self.attn.forward(m, &norm(x, &self.attn_norm)?, kv, r)?;
        ops::add_in_place(x, &norm(&a, &self.post_attn_norm)?)?;
        let f = self.ffn.forward(m, &norm(x, &self.ffn_norm)?)?;
        Ok(ops::add_in_place(x, &norm(&f, &self.post_ffn_norm)?)?)
    }
}

/// The model: scaled token embeddings, blocks, final norm, LM head tied to the embeddings.
#[lazy_module]
pub struct Gemma3 {
    #[config]
    cfg: Gemma3Config,
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
impl Gemma3 {
    /// `ids` (the prompt in prefill, one token in decode) after what `cache` holds: the
    /// last position's logits `[1, vocab]`.
    fn run(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        self.logits(&ops::last_row(&self.hidden(mode, ids, cache)?)?)
    }
}

impl Gemma3 {
    /// Opens a Gemma 3 GGUF file and binds the model to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Gemma3> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::open(path)?;
        let only = Error::Config(format!(
            "{}: Gemma 3 is read from GGUF only",
            path.display()
        ));
        let cfg = Gemma3Config::from_gguf(path, checkpoint.gguf().ok_or(only)?)?;
        Ok(Gemma3::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    /// A fresh per-sequence cache: local layers' KV caches hold the window, global ones
    /// everything; two RoPE tables (local, global).
    pub fn new_cache(&self) -> Result<Cache> {
        let c = &self.cfg.base;
        let windows = (0..c.n_layers).map(|i| c.sliding_window.filter(|_| !self.cfg.is_global(i)));
        let bases = [self.cfg.rope_local_theta, c.rope_theta];
        Ok(Cache::for_config(
            self.state().device(),
            c,
            windows,
            &bases,
        )?)
    }

    /// Logits at every position of `ids`, `[n, vocab]` (parity checks).
    pub fn prefill_all_logits(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let _pin = self.resident().pin()?;
        self.logits(&self.hidden(ExecutionMode::PREFILL, ids, cache)?)
    }

    /// Embeddings scaled by `sqrt(hidden)` through every block (global ones with the second
    /// RoPE table): hidden states `[n, hidden]`.
    fn hidden(&self, mode: ExecutionMode, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let (c, scale) = (&self.cfg, Some((self.cfg.base.hidden as f32).sqrt()));
        common::hidden(&self.token_embd, ids, scale, cache, |i, x, kv, ropes| {
            let rope = &ropes[usize::from(c.is_global(i))];
            self.blocks[i].forward(mode, x, kv, rope)
        })
    }

    /// Final norm and LM head over hidden states `[n, hidden]`: `[n, vocab]`.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        common::lm_head(x, &self.output_norm, &self.output, self.cfg.base.rms_eps)
    }
}

crate::impl_causal_lm!(Gemma3, "gemma3", Some(crate::chat::GEMMA_TEMPLATE));
