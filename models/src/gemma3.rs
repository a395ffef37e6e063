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
use lazyforge::{
    lazy_module, strategy, Bind, Checkpoint, Device, LazyModule, Scope, Tensor, Weight,
};
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
    /// Longest context the model was trained for.
    pub context_length: usize,
}

impl Gemma3Config {
    /// Reads the `gemma3.*` keys of a GGUF file.
    pub fn from_gguf(path: &Path, gguf: &lazyforge::source::gguf::GgufFile) -> Result<Self> {
        let arch = gguf.get_str("general.architecture")?;
        if arch != "gemma3" {
            return Err(Error::Config(format!(
                "{}: architecture '{arch}' is not gemma3",
                path.display()
            )));
        }
        let get = |k: &str| -> Result<usize> { Ok(gguf.get_u64(&format!("gemma3.{k}"))? as usize) };
        let n_heads = get("attention.head_count")?;
        let cfg = Gemma3Config {
            vocab: gguf.get_string_array("tokenizer.ggml.tokens")?.len(),
            hidden: get("embedding_length")?,
            intermediate: get("feed_forward_length")?,
            n_layers: get("block_count")?,
            n_heads,
            n_kv_heads: get("attention.head_count_kv")?,
            head_dim: get("attention.key_length")?,
            rope_theta: gguf.get_f32("gemma3.rope.freq_base")?,
            rope_local_theta: LOCAL_ROPE_BASE,
            sliding_window: get("attention.sliding_window")?,
            rms_eps: gguf.get_f32("gemma3.attention.layer_norm_rms_epsilon")?,
            context_length: get("context_length")?,
        };
        let bad = |what: String| Err(Error::Config(format!("{}: {what}", path.display())));
        if cfg.n_kv_heads == 0 || !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
            return bad(format!(
                "{n_heads} heads is not a multiple of {} key/value heads",
                cfg.n_kv_heads
            ));
        }
        if cfg.sliding_window == 0 || !cfg.head_dim.is_multiple_of(2) {
            return bad(format!(
                "window {} / head dimension {}",
                cfg.sliding_window, cfg.head_dim
            ));
        }
        Ok(cfg)
    }

    /// Whether layer `i` attends globally (every sixth layer) rather than in the window.
    pub fn is_global(&self, i: usize) -> bool {
        (i + 1).is_multiple_of(GLOBAL_EVERY)
    }
}

/// Attention with RMSNorm on each query and key head, RoPE (split halves) and GQA.
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
    fn prefill(
        &self,
        x: &Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let (q, k, v) = (
            ops::matmul(x, &wq)?,
            ops::matmul(x, &wk)?,
            ops::matmul(x, &wv)?,
        );
        let mixed = self.attend(q, k, v, kv, rope, window)?;
        Ok(ops::matmul(&mixed, &*self.o()?)?)
    }

    fn decode(
        &self,
        x: &Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let (wq, wk, wv) = (self.q()?, self.k()?, self.v()?);
        let (q, k, v) = (
            ops::matvec(&wq, x)?,
            ops::matvec(&wk, x)?,
            ops::matvec(&wv, x)?,
        );
        let mixed = self.attend(q, k, v, kv, rope, window)?;
        Ok(ops::matvec(&*self.o()?, &mixed)?)
    }
}

impl Attention {
    /// Normalizes and rotates q and k (`[n, heads * head_dim]`), appends k and v, attends.
    fn attend(
        &self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let n = q.elem_count() / (c.n_heads * c.head_dim);
        let start = kv.next_position();
        let positions: Vec<usize> = (start..start + n).collect();
        let mut q = head_norm(q, &*self.q_norm()?, c.n_heads, c)?;
        let mut k = head_norm(k, &*self.k_norm()?, c.n_kv_heads, c)?;
        ops::rope(
            &mut q,
            RopeStyle::SplitHalf,
            c.n_heads,
            c.head_dim,
            &positions,
            rope,
        )?;
        ops::rope(
            &mut k,
            RopeStyle::SplitHalf,
            c.n_kv_heads,
            c.head_dim,
            &positions,
            rope,
        )?;
        kv.append(&k, &v, &positions)?;
        Ok(ops::attention(&q, &positions, c.n_heads, kv, window)?)
    }
}

/// RMSNorm of every head's vector of `x` (`[n, heads * head_dim]`) with one `[head_dim]`
/// weight.
fn head_norm(x: Tensor, w: &Tensor, heads: usize, c: &Gemma3Config) -> Result<Tensor> {
    let n = x.elem_count() / (heads * c.head_dim);
    let rows = x.reshape([n * heads, c.head_dim])?;
    Ok(ops::rms_norm(&rows, w, c.rms_eps)?.reshape([n, heads * c.head_dim])?)
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
        let mut g = ops::matmul(x, &*self.gate()?)?;
        ops::geglu_in_place(&mut g, &ops::matmul(x, &*self.up()?)?)?;
        Ok(ops::matmul(&g, &*self.down()?)?)
    }

    fn decode(&self, x: &Tensor) -> Result<Tensor> {
        let mut g = ops::matvec(&*self.gate()?, x)?;
        ops::geglu_in_place(&mut g, &ops::matvec(&*self.up()?, x)?)?;
        Ok(ops::matvec(&*self.down()?, &g)?)
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
    fn prefill(
        &self,
        x: &mut Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
        window: Option<usize>,
    ) -> Result<()> {
        let a = self
            .attn
            .forward_prefill(&self.norm(x, &*self.attn_norm()?)?, kv, rope, window)?;
        ops::add_in_place(x, &self.norm(&a, &*self.post_attn_norm()?)?)?;
        let f = self
            .ffn
            .forward_prefill(&self.norm(x, &*self.ffn_norm()?)?)?;
        ops::add_in_place(x, &self.norm(&f, &*self.post_ffn_norm()?)?)?;
        Ok(())
    }

    fn decode(
        &self,
        x: &mut Tensor,
        kv: &mut KvCache,
        rope: &RopeTable,
        window: Option<usize>,
    ) -> Result<()> {
        let a = self
            .attn
            .forward_decode(&self.norm(x, &*self.attn_norm()?)?, kv, rope, window)?;
        ops::add_in_place(x, &self.norm(&a, &*self.post_attn_norm()?)?)?;
        let f = self
            .ffn
            .forward_decode(&self.norm(x, &*self.ffn_norm()?)?)?;
        ops::add_in_place(x, &self.norm(&f, &*self.post_ffn_norm()?)?)?;
        Ok(())
    }
}

impl Block {
    fn norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, w, self.cfg.rms_eps)?)
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
        if ids.is_empty() {
            return Err(Error::Config(
                "a forward pass needs at least one token".into(),
            ));
        }
        let c = &self.cfg;
        let mut x = ops::embedding(&*self.token_embd()?, ids)?;
        ops::scale_in_place(&mut x, (c.hidden as f32).sqrt())?;
        let (layers, ropes) = cache.prepare(ids.len());
        for (i, (block, kv)) in self.blocks.iter().zip(layers).enumerate() {
            let (rope, window) = match c.is_global(i) {
                true => (&ropes[1], None),
                false => (&ropes[0], Some(c.sliding_window)),
            };
            match prefill {
                true => block.forward_prefill(&mut x, kv, rope, window)?,
                false => block.forward_decode(&mut x, kv, rope, window)?,
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

/// Gemma's turn format, for files that carry no chat template (as Gemma's own template: a
/// system message opens the first user turn; the assistant's role is `model`).
pub const CHAT_TEMPLATE: &str = r#"{{ bos_token }}{% if messages and messages[0].role == 'system' %}{% set sys = (messages[0].content | trim) ~ '\n\n' %}{% set turns = messages[1:] %}{% else %}{% set sys = '' %}{% set turns = messages %}{% endif %}{% for m in turns %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}
{{ (sys if loop.first else '') ~ (m.content | trim) }}<end_of_turn>
{% endfor %}{% if add_generation_prompt %}<start_of_turn>model
{% endif %}"#;

crate::impl_causal_lm!(Gemma3, "gemma3", Some(CHAT_TEMPLATE));
