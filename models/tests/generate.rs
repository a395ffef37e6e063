//! The generation loop with a scripted stand-in for a model, on SmolLM2's real tokenizer:
//! streaming, EOS, stop strings and the token budget behave as a user sees them.

mod common;

use lazyforge_models::{generate, GenerateOptions, SamplingConfig, StopReason, TextTokenizer};
use std::sync::OnceLock;

fn smollm2() -> &'static TextTokenizer {
    static TOKENIZER: OnceLock<TextTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        TextTokenizer::from_gguf_file(common::smollm2_path())
            .expect("SmolLM2's GGUF tokenizer builds")
    })
}

/// A "model" that answers with `script`, one id per forward pass, as one-hot logits.
fn scripted(
    script: Vec<u32>,
    vocab: usize,
) -> impl FnMut(&[u32]) -> lazyforge_models::Result<Vec<f32>> {
    let mut next = 0;
    move |_new_ids| {
        let mut logits = vec![0.0; vocab];
        let id = script.get(next).copied().unwrap_or(0);
        logits[id as usize] = 10.0;
        next += 1;
        Ok(logits)
    }
}

fn run(
    answer_ids: Vec<u32>,
    options: &GenerateOptions,
) -> (lazyforge_models::Generation, Vec<String>) {
    let tok = smollm2();
    let prompt = tok.encode("Say something.", false).unwrap();
    let mut chunks = Vec::new();
    let out = generate(
        tok,
        &prompt,
        options,
        scripted(answer_ids, tok.vocab_size()),
        |text| chunks.push(text.to_string()),
    )
    .unwrap();
    (out, chunks)
}

#[test]
fn streams_the_answer_and_stops_at_eos() {
    let tok = smollm2();
    let mut ids = tok.encode("Crabs 🦀 say ½ hello.", false).unwrap();
    let answer_len = ids.len();
    ids.push(2); // <|im_end|>
    ids.extend(tok.encode(" never shown", false).unwrap());
    let (out, chunks) = run(ids, &GenerateOptions::default());
    assert_eq!(out.text, "Crabs 🦀 say ½ hello.");
    assert_eq!(out.stop, StopReason::Eos(2));
    assert_eq!(out.generated_ids.len(), answer_len + 1);
    assert_eq!(chunks.concat(), out.text);
    assert!(chunks
        .iter()
        .all(|c| !c.contains(char::REPLACEMENT_CHARACTER)));
    assert_eq!(out.stats.generated_tokens, answer_len + 1);
    assert!(out.stats.prompt_tokens > 0);
    if cfg!(target_os = "linux") {
        assert!(out.stats.peak_rss_bytes.unwrap() > 1 << 20);
    }
}

#[test]
fn stop_string_ends_the_output_just_before_it() {
    let tok = smollm2();
    let ids = tok.encode("The answer is 4.\nUser: and 5?", false).unwrap();
    let options = GenerateOptions {
        stop_strings: vec!["\nUser:".into()],
        ..GenerateOptions::default()
    };
    let (out, chunks) = run(ids, &options);
    assert_eq!(out.text, "The answer is 4.");
    assert_eq!(out.stop, StopReason::StopString("\nUser:".into()));
    assert_eq!(chunks.concat(), "The answer is 4.");
}

#[test]
fn token_budget_stops_generation() {
    let tok = smollm2();
    let ids = tok.encode("one two three four five six", false).unwrap();
    let options = GenerateOptions {
        max_tokens: 3,
        ..GenerateOptions::default()
    };
    let (out, chunks) = run(ids.clone(), &options);
    assert_eq!(out.stop, StopReason::MaxTokens);
    assert_eq!(out.generated_ids, ids[..3].to_vec());
    assert_eq!(out.text, tok.decode(&ids[..3]).unwrap());
    assert_eq!(chunks.concat(), out.text);
}

#[test]
fn same_seed_same_sampled_text() {
    let tok = smollm2();
    let prompt = tok.encode("Hello", false).unwrap();
    // A flat distribution over a few ids, so sampling really chooses.
    let forward = |_: &[u32]| {
        let mut logits = vec![f32::NEG_INFINITY; tok.vocab_size()];
        logits[100..120].fill(0.0);
        Ok(logits)
    };
    let options = GenerateOptions {
        max_tokens: 12,
        sampling: SamplingConfig {
            temperature: 1.0,
            seed: 7,
            ..SamplingConfig::greedy()
        },
        ..GenerateOptions::default()
    };
    let a = generate(tok, &prompt, &options, forward, |_| {}).unwrap();
    let b = generate(tok, &prompt, &options, forward, |_| {}).unwrap();
    assert_eq!(a.generated_ids, b.generated_ids);
    assert!(a.generated_ids.iter().all(|&id| (100..120).contains(&id)));
}

#[test]
fn empty_prompt_is_an_error() {
    let tok = smollm2();
    let err = generate(
        tok,
        &[],
        &GenerateOptions::default(),
        scripted(vec![], tok.vocab_size()),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("prompt is empty"), "{err}");
}
