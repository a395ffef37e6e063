//! The generation loop, independent of any one model: prefill the prompt, then sample,
//! stream and decode one token at a time until EOS, a stop string or the token budget.
//!
//! The model is a closure `forward(new_ids) -> last-position logits`: called once with the
//! whole prompt (prefill), then once per generated token (decode), so the model keeps its
//! own KV cache and this loop never sees it.

use crate::error::{Error, Result};
use crate::sampling::{Sampler, SamplingConfig, StopCondition, StopReason};
use crate::tokenizer::{TextStream, TextTokenizer};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long to generate, and how to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate (EOS included).
    pub max_tokens: usize,
    /// Texts that end generation; the output stops just before the first one.
    pub stop_strings: Vec<String>,
    /// Sampling settings (temperature 0 = greedy).
    pub sampling: SamplingConfig,
}

impl Default for GenerateOptions {
    /// 128 greedy tokens, no stop strings.
    fn default() -> GenerateOptions {
        GenerateOptions {
            max_tokens: 128,
            stop_strings: Vec::new(),
            sampling: SamplingConfig::greedy(),
        }
    }
}

/// Timings and counts of one generation run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (a final EOS included).
    pub generated_tokens: usize,
    /// From the start of prefill to the first generated token, in milliseconds.
    pub first_token_ms: f64,
    /// Prompt tokens per second of prefill.
    pub prefill_tokens_per_s: f64,
    /// Generated tokens per second of decode (forward passes after the first token).
    pub decode_tokens_per_s: f64,
    /// The whole run, in milliseconds.
    pub total_ms: f64,
    /// Peak resident memory of the process at the end of the run, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// What a generation run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The prompt, as given.
    pub prompt_ids: Vec<u32>,
    /// Every generated id, a final EOS included.
    pub generated_ids: Vec<u32>,
    /// The generated text, special tokens and any stop string left out.
    pub text: String,
    /// Why it stopped.
    pub stop: StopReason,
    /// Timings and counts.
    pub stats: GenerationStats,
}

/// Generates a continuation of `prompt_ids`. `forward` runs the model on new ids and returns
/// the logits at the last of them; `on_text` receives the text as it is produced, never a
/// broken character and never part of a stop string.
pub fn generate<F, T>(
    tokenizer: &TextTokenizer,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    forward: F,
    on_text: T,
) -> Result<Generation>
where
    F: FnMut(&[u32]) -> Result<Vec<f32>>,
    T: FnMut(&str),
{
    generate_inner(Some(tokenizer), prompt_ids, options, forward, on_text)
}

/// Generates ids only, for a model without a tokenizer: ids in, ids out. No EOS is known,
/// so it stops after `max_tokens`; stop strings need a tokenizer and are an error; the
/// [`Generation`]'s text is empty.
pub fn generate_ids<F>(
    prompt_ids: &[u32],
    options: &GenerateOptions,
    forward: F,
) -> Result<Generation>
where
    F: FnMut(&[u32]) -> Result<Vec<f32>>,
{
    if !options.stop_strings.is_empty() {
        return Err(Error::Sampling(
            "stop strings need the model's tokenizer, and this model has none".into(),
        ));
    }
    generate_inner(None, prompt_ids, options, forward, |_| {})
}

fn generate_inner<F, T>(
    tokenizer: Option<&TextTokenizer>,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    mut forward: F,
    mut on_text: T,
) -> Result<Generation>
where
    F: FnMut(&[u32]) -> Result<Vec<f32>>,
    T: FnMut(&str),
{
    if prompt_ids.is_empty() {
        return Err(Error::Sampling(
            "the prompt is empty: give at least one token (e.g. BOS)".into(),
        ));
    }
    let mut sampler = Sampler::new(options.sampling.clone())?;
    let eos_ids: &[u32] = tokenizer.map_or(&[], |t| t.eos_ids());
    let mut stop = StopCondition::new(eos_ids, &options.stop_strings, options.max_tokens);
    let mut stream = tokenizer.map(|t| t.stream(true));
    let mut history = prompt_ids.to_vec();
    let mut generated = Vec::new();
    let mut stats = GenerationStats {
        prompt_tokens: prompt_ids.len(),
        ..GenerationStats::default()
    };

    let start = Instant::now();
    if options.max_tokens == 0 {
        return Ok(Generation {
            prompt_ids: prompt_ids.to_vec(),
            generated_ids: generated,
            text: String::new(),
            stop: StopReason::MaxTokens,
            stats,
        });
    }
    let mut logits = forward(prompt_ids)?;
    let prefill = start.elapsed();
    let mut decode = Duration::ZERO;
    let mut decode_steps = 0usize;
    let reason = loop {
        let id = sampler.sample(&logits, &history)?;
        if generated.is_empty() {
            stats.first_token_ms = ms(start.elapsed());
        }
        generated.push(id);
        history.push(id);
        let piece = match stream.as_mut() {
            Some(stream) if !eos_ids.contains(&id) => stream.step(id)?,
            _ => None,
        };
        let step = stop.push(id, piece.as_deref().unwrap_or(""));
        if !step.text.is_empty() {
            on_text(&step.text);
        }
        if let Some(reason) = step.stop {
            if !matches!(reason, StopReason::StopString(_)) {
                // Bytes of a character the budget cut off, shown as they are.
                if let Some(tail) = stream
                    .as_mut()
                    .map(TextStream::finish)
                    .transpose()?
                    .flatten()
                {
                    let text = stop.flush(&tail);
                    if !text.is_empty() {
                        on_text(&text);
                    }
                }
            }
            break reason;
        }
        let t = Instant::now();
        logits = forward(&[id])?;
        decode += t.elapsed();
        decode_steps += 1;
    };

    stats.generated_tokens = generated.len();
    stats.prefill_tokens_per_s = per_second(prompt_ids.len(), prefill);
    stats.decode_tokens_per_s = per_second(decode_steps, decode);
    stats.total_ms = ms(start.elapsed());
    stats.peak_rss_bytes = peak_rss_bytes();
    Ok(Generation {
        prompt_ids: prompt_ids.to_vec(),
        generated_ids: generated,
        text: stop.text().to_string(),
        stop: reason,
        stats,
    })
}

/// Peak resident memory of this process so far, in bytes: Linux's `VmHWM` from
/// `/proc/self/status`; `None` where that is not available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_second(count: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        count as f64 / d.as_secs_f64()
    }
}
