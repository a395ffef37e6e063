//! GPT-2 in the `lazyforge` command line: an opener that reads the config from a GGUF
//! file's `gpt2.*` keys, a [`CausalLm`] for [`Gpt2`], and [`register`], which adds both to a
//! [`Registry`]. The crate's `lazyforge-gpt2` binary is the `lazyforge` tool with GPT-2
//! registered: `lazyforge-gpt2 run --model gpt2.gguf --prompt-ids 1,2,3`.

use crate::{Gpt2, GptConfig};
use lazyforge::source::gguf::GgufFile;
use lazyforge::{Bind, Checkpoint, Device, LazyModule, Scope, Tensor};
use lazyforge_models::registry::{CausalLm, Registry};
use lazyforge_models::{Cache, Error, Result};
use std::path::Path;

impl GptConfig {
    /// Reads the `gpt2.*` keys of a GGUF file (vocabulary from the token embeddings).
    pub fn from_gguf(gguf: &GgufFile) -> Result<GptConfig> {
        let key = |k: &str| -> Result<usize> { Ok(gguf.get_u64(&format!("gpt2.{k}"))? as usize) };
        let vocab = gguf
            .tensor("token_embd.weight")
            .and_then(|t| t.shape.first().copied())
            .ok_or_else(|| {
                Error::Config(format!("{}: no token_embd.weight", gguf.path().display()))
            })?;
        Ok(GptConfig {
            hidden: key("embedding_length")?,
            n_heads: key("attention.head_count")?,
            intermediate: key("feed_forward_length")?,
            n_layers: key("block_count")?,
            vocab,
            context: key("context_length")?,
            eps: gguf.get_f32("gpt2.attention.layer_norm_epsilon")?,
        })
    }
}

impl Gpt2 {
    /// Opens a GPT-2 GGUF file and binds the model: reads metadata only.
    pub fn open(path: &Path, device: Device) -> Result<Gpt2> {
        let checkpoint = Checkpoint::open(path)?;
        let gguf = checkpoint
            .gguf()
            .ok_or_else(|| Error::Config(format!("{}: GPT-2 is read from GGUF", path.display())))?;
        let cfg = GptConfig::from_gguf(gguf)?;
        Ok(Gpt2::bind(cfg, &Scope::root(&checkpoint, device))?)
    }
}

impl CausalLm for Gpt2 {
    fn architecture(&self) -> &str {
        "gpt2"
    }

    fn module(&self) -> &dyn LazyModule {
        self
    }

    fn new_cache(&self) -> Result<Cache> {
        let (c, device) = (&self.cfg, self.state().device());
        let layers = lazyforge::ops::KvCache::for_layers_on(
            device,
            c.n_layers,
            c.n_heads,
            c.head_dim(),
            None,
        )?;
        Ok(Cache::new(device, layers, Vec::new()))
    }

    fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        Ok(self.forward_prefill(ids, cache.prepare(ids.len()).0)?)
    }

    fn decode(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        Ok(self.forward_decode(ids, cache.prepare(ids.len()).0)?)
    }

    fn prefill_all_logits(&self, _ids: &[u32], _cache: &mut Cache) -> Result<Tensor> {
        Err(Error::Config(
            "GPT-2 here computes last-position logits only".into(),
        ))
    }
}

/// Adds GPT-2 (`general.architecture = gpt2`) to `registry`.
pub fn register(registry: &mut Registry) -> &mut Registry {
    registry.register(&["gpt2"], |path, device| {
        Ok(Box::new(Gpt2::open(path, device)?))
    })
}
