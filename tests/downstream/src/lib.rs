//! A GPT-2-style transformer defined outside lazyforge with its macros alone: the proof that a
//! downstream crate can add an architecture without touching lazyforge.
//!
//! Read top to bottom like GPT-2's diagram: config; LayerNorm (with bias); attention (fused
//! QKV with biases, causal, KV cache outside the weights); GELU MLP; the block (pre-norm,
//! two residuals); the model (token + learned position embeddings, blocks, final norm, LM
//! head tied to the token embeddings when the checkpoint has no `output.weight`).
//!
//! ```no_run
//! use lazyforge::{Bind, Checkpoint, Device, Scope};
//! use lazyforge::ops::KvCache;
//! use lazyforge_downstream::{Gpt2, GptConfig};
//!
//! let ckpt = Checkpoint::open("gpt2-tiny.gguf")?;
//! let cfg = GptConfig { hidden: 16, n_heads: 2, intermediate: 64, n_layers: 2, vocab: 32, context: 64, eps: 1e-5 };
//! let model = Gpt2::bind(cfg.clone(), &Scope::root(&ckpt, Device::Cpu))?; // metadata only
//! let mut caches = KvCache::for_layers(cfg.n_layers, cfg.n_heads, cfg.head_dim(), None)?;
//! let logits = model.forward_prefill(&[1, 2, 3], &mut caches)?;
//! # Ok::<(), lazyforge::Error>(())
//! ```

pub mod cli;

use lazyforge::ops::{self, KvCache};
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, strategy, Error, Result, Tensor, Weight};

/// GPT-2's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
pub struct GptConfig {
    /// Width of the residual stream.
    pub hidden: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Width of the MLP's hidden layer (4 × hidden in GPT-2).
    pub intermediate: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Positions with a learned embedding.
    pub context: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl GptConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.n_heads
    }
}

/// LayerNorm with a bias.
#[lazy_module]
pub struct LayerNorm {
    #[config]
    cfg: GptConfig,
    #[weight("weight", shape = [cfg.hidden])]
    weight: Weight,
    #[weight("bias", shape = [cfg.hidden])]
    bias: Weight,
}

#[strategy(unified)]
impl LayerNorm {
    fn unified(&self, x: &Tensor) -> Result<Tensor> {
        let (weight, bias) = (self.weight()?, self.bias()?);
        ops::layer_norm(x, &weight, Some(&bias), self.cfg.eps)
    }
}

/// Causal self-attention with a fused QKV projection and biases.
#[lazy_module]
pub struct Attention {
    #[config]
    cfg: GptConfig,
    #[weight("attn_qkv.weight", shape = [3 * cfg.hidden, cfg.hidden])]
    qkv: Weight,
    #[weight("attn_qkv.bias", shape = [3 * cfg.hidden])]
    qkv_bias: Weight,
    #[weight("attn_output.weight", shape = [cfg.hidden, cfg.hidden])]
    out: Weight,
    #[weight("attn_output.bias", shape = [cfg.hidden])]
    out_bias: Weight,
}

#[strategy(prefill, decode)]
impl Attention {
    /// Many tokens: matrix-matrix projections.
    fn prefill(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (w, b) = (self.qkv()?, self.qkv_bias()?);
        let mut qkv = ops::matmul(x, &w)?;
        ops::add_bias_in_place(&mut qkv, &b)?;
        let mixed = self.attend(&qkv, cache)?;
        let (w, b) = (self.out()?, self.out_bias()?);
        let mut y = ops::matmul(&mixed, &w)?;
        ops::add_bias_in_place(&mut y, &b)?;
        Ok(y)
    }

    /// One token: matrix-vector projections.
    fn decode(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (w, b) = (self.qkv()?, self.qkv_bias()?);
        let mut qkv = ops::matvec(&w, x)?;
        ops::add_bias_in_place(&mut qkv, &b)?;
        let mixed = self.attend(&qkv, cache)?;
        let (w, b) = (self.out()?, self.out_bias()?);
        let mut y = ops::matvec(&w, &mixed)?;
        ops::add_bias_in_place(&mut y, &b)?;
        Ok(y)
    }

    /// Splits `[n, 3·hidden]` into q, k, v, appends k and v to the cache and attends.
    fn attend(&self, qkv: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let d = self.cfg.hidden;
        let n = qkv.elem_count() / (3 * d);
        let (q, k, v) = (
            qkv.narrow(1, 0, d)?,
            qkv.narrow(1, d, d)?,
            qkv.narrow(1, 2 * d, d)?,
        );
        let start = cache.next_position();
        let positions: Vec<usize> = (start..start + n).collect();
        cache.append(&k, &v, &positions)?;
        ops::attention(&q, &positions, self.cfg.n_heads, cache, None)
    }
}

/// The MLP: up-projection, GELU (tanh), down-projection, with biases.
#[lazy_module]
pub struct Mlp {
    #[config]
    cfg: GptConfig,
    #[weight("ffn_up.weight", shape = [cfg.intermediate, cfg.hidden])]
    up: Weight,
    #[weight("ffn_up.bias", shape = [cfg.intermediate])]
    up_bias: Weight,
    #[weight("ffn_down.weight", shape = [cfg.hidden, cfg.intermediate])]
    down: Weight,
    #[weight("ffn_down.bias", shape = [cfg.hidden])]
    down_bias: Weight,
}

#[strategy(unified)]
impl Mlp {
    fn unified(&self, x: &Tensor) -> Result<Tensor> {
        let (up, up_bias) = (self.up()?, self.up_bias()?);
        let mut h = ops::matmul(x, &up)?;
        ops::add_bias_in_place(&mut h, &up_bias)?;
        ops::gelu_tanh_in_place(&mut h)?;
        let (down, down_bias) = (self.down()?, self.down_bias()?);
        let mut y = ops::matmul(&h, &down)?;
        ops::add_bias_in_place(&mut y, &down_bias)?;
        Ok(y)
    }
}

/// A pre-norm transformer block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[lazy_module]
pub struct Block {
    #[config]
    cfg: GptConfig,
    #[submodule("attn_norm")]
    ln_1: LayerNorm,
    #[submodule]
    attn: Attention,
    #[submodule("ffn_norm")]
    ln_2: LayerNorm,
    #[submodule]
    mlp: Mlp,
}

#[strategy(prefill, decode)]
impl Block {
    fn prefill(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let attn = self
            .attn
            .forward_prefill(&self.ln_1.forward_unified(x)?, cache)?;
        self.finish(x, attn)
    }

    fn decode(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let attn = self
            .attn
            .forward_decode(&self.ln_1.forward_unified(x)?, cache)?;
        self.finish(x, attn)
    }

    /// The two residual adds around the attention output and the MLP.
    fn finish(&self, x: &Tensor, attn: Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        ops::add_in_place(&mut x, &attn)?;
        let mlp = self.mlp.forward_unified(&self.ln_2.forward_unified(&x)?)?;
        ops::add_in_place(&mut x, &mlp)?;
        Ok(x)
    }
}

/// The model: embeddings, blocks, final norm, LM head.
#[lazy_module]
pub struct Gpt2 {
    #[config]
    cfg: GptConfig,
    #[weight("token_embd.weight", shape = [cfg.vocab, cfg.hidden], device = host)]
    wte: Weight,
    #[weight("position_embd.weight", shape = [cfg.context, cfg.hidden], device = host)]
    wpe: Weight,
    /// The transformer blocks, `blk.0` to `blk.{n_layers - 1}`.
    #[submodules("blk.{i}", count = cfg.n_layers)]
    pub blocks: Vec<Block>,
    #[submodule("output_norm")]
    ln_f: LayerNorm,
    #[weight("output.weight", shape = [cfg.vocab, cfg.hidden], fallback = "token_embd.weight")]
    lm_head: Weight,
}

#[strategy(prefill, decode)]
impl Gpt2 {
    /// Runs `ids` through every block, filling `caches` (one per block); returns the logits
    /// of the last token, `[1, vocab]`.
    fn prefill(&self, ids: &[u32], caches: &mut [KvCache]) -> Result<Tensor> {
        let mut x = self.embed(ids, caches)?;
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = block.forward_prefill(&x, cache)?;
        }
        self.logits(&x)
    }

    /// One token against the caches; returns its logits, `[1, vocab]`.
    fn decode(&self, ids: &[u32], caches: &mut [KvCache]) -> Result<Tensor> {
        let mut x = self.embed(ids, caches)?;
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = block.forward_decode(&x, cache)?;
        }
        self.logits(&x)
    }

    fn embed(&self, ids: &[u32], caches: &[KvCache]) -> Result<Tensor> {
        if caches.len() != self.blocks.len() {
            return Err(Error::Invalid(format!(
                "GPT-2 with {} blocks needs {} KV caches, {} given",
                self.blocks.len(),
                self.blocks.len(),
                caches.len()
            )));
        }
        let start = caches.first().map_or(0, KvCache::next_position) as u32;
        let positions: Vec<u32> = (start..start + ids.len() as u32).collect();
        let (wte, wpe) = (self.wte()?, self.wpe()?);
        let mut x = ops::embedding(&wte, ids)?;
        let pos = ops::embedding(&wpe, &positions)?;
        ops::add_in_place(&mut x, &pos)?;
        Ok(x)
    }

    /// Final norm, then the LM head on the last token: `[1, vocab]`.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.ln_f.forward_unified(x)?;
        let lm_head = self.lm_head()?;
        ops::matvec(&lm_head, &ops::last_row(&x)?)
    }
}
