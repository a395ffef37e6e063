//! Models built on lazyforge, and the pieces of the `lazyforge` command-line tool: tokenizers
//! built from checkpoint metadata, chat templates, token sampling and the generation loop.
//!
//! ```
//! use lazyforge_models::{ChatMessage, ChatTemplate, Sampler, SamplingConfig};
//!
//! # fn main() -> lazyforge_models::Result<()> {
//! // A chat template as a checkpoint ships it (Jinja), rendered like transformers does.
//! let template = ChatTemplate::new(
//!     "{% for m in messages %}<|{{ m.role }}|>{{ m.content.strip() }}\n{% endfor %}\
//!      {% if add_generation_prompt %}<|assistant|>{% endif %}",
//!     "<s>",
//!     "</s>",
//! )?;
//! let prompt = template.render(&[ChatMessage::user(" Hi! ")], true)?;
//! assert_eq!(prompt, "<|user|>Hi!\n<|assistant|>");
//!
//! // Temperature 0 is greedy: the largest logit wins.
//! let mut sampler = Sampler::new(SamplingConfig::greedy())?;
//! assert_eq!(sampler.sample(&[0.1, 2.5, -1.0], &[])?, 1);
//! # Ok(())
//! # }
//! ```
//!
//! A tokenizer comes from the checkpoint itself:
//! `TextTokenizer::from_gguf_file("SmolLM2-135M-Instruct.Q4_1.gguf")?` or
//! `TextTokenizer::from_hf_dir("path/to/model")?`.

pub mod cache;
pub mod chat;
pub mod cli;
mod common;
pub mod error;
pub mod fetch;
#[doc(hidden)]
pub mod fuzzing;
pub mod gemma3;
pub mod generate;
pub mod hf;
pub mod inspect;
pub mod llama;
pub mod npy;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod registry;
pub mod run;
pub mod sampling;
pub mod synth;
pub mod tokenizer;

pub use cache::Cache;
pub use chat::{ChatMessage, ChatTemplate};
pub use error::{Error, Result};
pub use gemma3::{Gemma3, Gemma3Config};
pub use generate::{
    generate, generate_ids, peak_rss_bytes, GenerateOptions, Generation, GenerationStats,
};
pub use llama::{Llama, LlamaCache, LlamaConfig, Mistral};
pub use phi3::{Phi3, Phi3Config};
pub use qwen2::{Qwen2, Qwen2Config};
pub use qwen3::{Qwen3, Qwen3Config};
pub use registry::{CausalLm, Registry};
pub use sampling::{Sampler, SamplingConfig, StopCondition, StopReason, StopStep};
pub use tokenizer::{TextStream, TextTokenizer};
