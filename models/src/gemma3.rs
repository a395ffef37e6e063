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
use crate::error::{Error, Result};
use lazyforge::ops::{self, KvCache, RopeStyle, RopeTable};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::source::gguf::GgufFile;
use lazyforge::{lazy_module, strategy, Bind, Checkpoint, Device, LazyModule, Scope};
use lazyforge::{Tensor, Weight};
use std::path::Path;

/// RoPE base of the local (sliding-window) layers: HF's `rope_local_base_freq` default.
const LOCAL_ROPE_BASE: f32 = 10_000.0;
/// Every this many layers, one is global: HF's `sliding_window_pattern` default.
const GLOBAL_EVERY: usize = 6;

/// Gemma 3's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct Gemma3Config {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the GeGLU hidden layer.
    pub intermediate: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RoPE base of the global layers.
    pub rope_theta: f32,
    /// RoPE base of the local layers.
    pub rope_local_theta: f32,
    /// The local layers' window: query i attends keys j with i-W < j <= i.
    pub sliding_window: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
}

impl Gemma3Config {
    /// Reads the `gemma3.*` keys of a GGUF file.
    pub fn from_gguf(path: &Path, gguf: &GgufFile) -> Result<Self> {
        let bad = |what: String| Error::Config(format!("{}: {what}", path.display()));
        let arch = gguf.get_str("general.architecture")?;
        if arch != "gemma3" {
            return Err(bad(format!("architecture '{arch}' is not gemma3")));
        }
        let get = |k: &str| Ok::<_, Error>(gguf.get_u64(&format!("gemma3.{k}"))? as usize);
        let cfg = Gemma3Config {
            vocab: gguf.get_string_array("tokenizer.ggml.tokens")?.len(),
            hidden: get("embedding_length")?,
            intermediate: get("feed_forward_length")?,
            n_layers: get("block_count")?,
            n_heads: get("attention.head_count")?,
            n_kv_heads: get("attention.head_count_kv")?,
            head_dim: get("attention.key_length")?,
            rope_theta: gguf.get_f32("gemma3.rope.freq_base")?,
            rope_local_theta: LOCAL_ROPE_BASE,
            sliding_window: get("attention.sliding_window")?,
            rms_eps: gguf.get_f32("gemma3.attention.layer_norm_rms_epsilon")?,
        };
        let (h, kv) = (cfg.n_heads, cfg.n_kv_heads);
        if kv == 0 || !h.is_multiple_of(kv) || cfg.sliding_window == 0 || cfg.head_dim % 2 == 1 {
            let (w, d) = (cfg.sliding_window, cfg.head_dim);
            return Err(bad(format!(
                "{h} heads, {kv} kv heads, window {w}, head dim {d}"
            )));
        }
        Ok(cfg)
    }

    /// Whether layer `i` attends globally (every sixth layer) rather than in the window.
    pub fn is_global(&self, i: usize) -> bool {
        (i + 1).is_multiple_of(GLOBAL_EVERY)
    }
}

/// A product with a weight: `|w, x| ops::matmul(x, w)` in prefill, `ops::matvec` in decode.
type Linear = fn(&Tensor, &Tensor) -> lazyforge::Result<Tensor>;

/// Attention with RMSNorm on each query and key head, RoPE on split halves, grouped-query
/// heads, and the window of its layer's cache (none in global layers).
#[lazy_module]
pub struct Attention {
    #[config]
    cfg: Gemma3Config,
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

#[strategy(prefill, decode)]
impl Attention {
    fn prefill(&self, x: &Tensor, kv: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        self.run(x, kv, rope, |w, x| ops::matmul(x, w))
    }

    fn decode(&self, x: &Tensor, kv: &mut KvCache, rope: &RopeTable) -> Result<Tensor> {
        self.run(x, kv, rope, ops::matvec)
    }

    /// Projects, normalizes and rotates q and k per head, appends k and v, attends.
    fn run(&self, x: &Tensor, kv: &mut KvCache, rope: &RopeTable, mm: Linear) -> Result<Tensor> {
        let (c, start) = (&self.cfg, kv.next_position());
        let pos: Vec<usize> = (start..start + x.elem_count() / c.hidden).collect();
        let heads = |t: Tensor, w: &Tensor, n| head_norm_rope(t, w, n, &pos, rope, c);
        let q = heads(mm(&*self.q()?, x)?, &*self.q_norm()?, c.n_heads)?;
        let k = heads(mm(&*self.k()?, x)?, &*self.k_norm()?, c.n_kv_heads)?;
        kv.append(&k, &mm(&*self.v()?, x)?, &pos)?;
        let mixed = ops::attention(&q, &pos, c.n_heads, kv, kv.window())?;
        Ok(mm(&*self.o()?, &mixed)?)
    }
}

/// RMSNorm of every head's vector of `x` (`[n, heads * head_dim]`) with one `[head_dim]`
/// weight, then RoPE on split halves at positions `pos`.
fn head_norm_rope(
    x: Tensor,
    w: &Tensor,
    heads: usize,
    pos: &[usize],
    rope: &RopeTable,
    c: &Gemma3Config,
) -> Result<Tensor> {
    let rows = x.reshape([pos.len() * heads, c.head_dim])?;
    let mut x = ops::rms_norm(&rows, w, c.rms_eps)?.reshape([pos.len(), heads * c.head_dim])?;
    ops::rope(&mut x, RopeStyle::SplitHalf, heads, c.head_dim, pos, rope)?;
    Ok(x)
}

/// The GeGLU feed-forward network: `down(gelu_tanh(gate(x)) · up(x))`.
#[lazy_module]
pub struct FeedForward {
    #[config]
    cfg: Gemma3Config,
    #[weight("ffn_gate.weight", shape = [cfg.intermediate, cfg.hidden])]
    gate: Weight,
    #[weight("ffn_up.weight", shape = [cfg.intermediate, cfg.hidden])]
    up: Weight,
    #[weight("ffn_down.weight", shape = [cfg.hidden, cfg.intermediate])]
    down: Weight,
}

#[strategy(prefill, decode)]
impl FeedForward {
    fn prefill(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, |w, x| ops::matmul(x, w))
    }

    fn decode(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, ops::matvec)
    }

    fn run(&self, x: &Tensor, mm: Linear) -> Result<Tensor> {
        let mut g = mm(&*self.gate()?, x)?;
        ops::geglu_in_place(&mut g, &mm(&*self.up()?, x)?)?;
        Ok(mm(&*self.down()?, &g)?)
    }
}

/// A block with sandwich norms: `x + post_attn(attn(pre(x)))`, then the same around the
/// feed-forward.
#[lazy_module]
pub struct Block {
    #[config]
    cfg: Gemma3Config,
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

#[strategy(prefill, decode)]
impl Block {
    fn prefill(&self, x: &mut Tensor, kv: &mut KvCache, rope: &RopeTable) -> Result<()> {
        let a = self.attn.forward_prefill(&self.pre_attn(x)?, kv, rope)?;
        self.add_normed(x, &a, &*self.post_attn_norm()?)?;
        let f = self.ffn.forward_prefill(&self.pre_ffn(x)?)?;
        self.add_normed(x, &f, &*self.post_ffn_norm()?)
    }

    fn decode(&self, x: &mut Tensor, kv: &mut KvCache, rope: &RopeTable) -> Result<()> {
        let a = self.attn.forward_decode(&self.pre_attn(x)?, kv, rope)?;
        self.add_normed(x, &a, &*self.post_attn_norm()?)?;
        let f = self.ffn.forward_decode(&self.pre_ffn(x)?)?;
        self.add_normed(x, &f, &*self.post_ffn_norm()?)
    }
}

impl Block {
    fn pre_attn(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &*self.attn_norm()?, self.cfg.rms_eps)?)
    }

    fn pre_ffn(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &*self.ffn_norm()?, self.cfg.rms_eps)?)
    }

    /// The residual with a post-norm: `x += rms_norm(y) · w`.
    fn add_normed(&self, x: &mut Tensor, y: &Tensor, w: &Tensor) -> Result<()> {
        Ok(ops::add_in_place(
            x,
            &ops::rms_norm(y, w, self.cfg.rms_eps)?,
        )?)
    }
}

/// The model: scaled token embeddings, blocks, final norm, LM head tied to the embeddings.
#[lazy_module]
pub struct Gemma3 {
    #[config]
    cfg: Gemma3Config,
    #[weight("token_embd.weight", shape = [cfg.vocab, cfg.hidden])]
    token_embd: Weight,
    #[submodules("blk.{i}", count = cfg.n_layers)]
    blocks: Vec<Block>,
    #[weight("output_norm.weight", shape = [cfg.hidden])]
    output_norm: Weight,
    #[weight("output.weight", shape = [cfg.vocab, cfg.hidden], fallback = "token_embd.weight")]
    output: Weight,
}

#[strategy(prefill, decode)]
impl Gemma3 {
    /// The prompt `ids` after what `cache` holds: last-position logits `[1, vocab]`.
    fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let x = self.hidden(ids, cache, true)?;
        self.logits(ops::last_row(&x)?)
    }

    /// One token against the cache: its logits `[1, vocab]`.
    fn decode(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let x = self.hidden(ids, cache, false)?;
        self.logits(x)
    }
}

impl Gemma3 {
    /// Opens a Gemma 3 GGUF file and binds the model to it: reads metadata only.
    pub fn open(path: impl AsRef<Path>, device: Device) -> Result<Gemma3> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::open(path)?;
        let gguf = checkpoint.gguf().ok_or_else(|| {
            Error::Config(format!(
                "{}: Gemma 3 is read from GGUF files only",
                path.display()
            ))
        })?;
        let cfg = Gemma3Config::from_gguf(path, gguf)?;
        Ok(Gemma3::bind(cfg, &Scope::root(&checkpoint, device))?)
    }

    /// The model's config.
    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    /// A fresh per-sequence cache: local layers' KV caches hold the window, global ones
    /// everything; two RoPE tables (local, global).
    pub fn new_cache(&self) -> Result<Cache> {
        let (c, device) = (&self.cfg, self.state().device());
        let layers = (0..c.n_layers)
            .map(|i| {
                let window = (!c.is_global(i)).then_some(c.sliding_window);
                KvCache::new_on(device, c.n_kv_heads, c.head_dim, window)
            })
            .collect::<lazyforge::Result<Vec<_>>>()?;
        let ropes = vec![
            RopeTable::on_demand(device, c.head_dim, c.rope_local_theta)?,
            RopeTable::on_demand(device, c.head_dim, c.rope_theta)?,
        ];
        Ok(Cache::new(device, layers, ropes))
    }

    /// Logits at every position of `ids`, `[n, vocab]` (parity checks).
    pub fn prefill_all_logits(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let _pin = self.resident().pin()?;
        let x = self.hidden(ids, cache, true)?;
        self.logits(x)
    }

    /// Scaled embeddings through every block: hidden states `[n, hidden]`.
    fn hidden(&self, ids: &[u32], cache: &mut Cache, prefill: bool) -> Result<Tensor> {
        let none = || Error::Config("a forward pass needs at least one token".into());
        ids.first().ok_or_else(none)?;
        let c = &self.cfg;
        let mut x = ops::embedding(&*self.token_embd()?, ids)?;
        ops::scale_in_place(&mut x, (c.hidden as f32).sqrt())?;
        let (layers, ropes) = cache.prepare(ids.len());
        for (i, (block, kv)) in self.blocks.iter().zip(layers).enumerate() {
            let rope = &ropes[usize::from(c.is_global(i))];
            match prefill {
                true => block.forward_prefill(&mut x, kv, rope)?,
                false => block.forward_decode(&mut x, kv, rope)?,
            }
        }
        Ok(x)
    }

    /// Final norm and LM head over hidden states `[n, hidden]`: `[n, vocab]`.
    fn logits(&self, x: Tensor) -> Result<Tensor> {
        let x = ops::rms_norm(&x, &*self.output_norm()?, self.cfg.rms_eps)?;
        Ok(ops::matmul(&x, &*self.output()?)?)
    }
}

crate::impl_causal_lm!(Gemma3, "gemma3", Some(crate::chat::GEMMA_TEMPLATE));
