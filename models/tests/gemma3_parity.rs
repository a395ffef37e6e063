//! Gemma 3 270M (the real Q4_K_M GGUF) against HF transformers in float32, fixtures from
//! `tools/make_gemma3_refs.py`: tokenizer ids (SentencePiece's), last-position logits (one prompt longer than
//! the 512-token window), greedy continuations (one decoding past the window), the window
//! bounding the local layers' caches, and the turn-format chat template.

mod common;

use common::ids;
use lazyforge::{Device, LazyModule};
use lazyforge_models::chat::GEMMA_TEMPLATE;
use lazyforge_models::gemma3::Gemma3;
use lazyforge_models::sampling::argmax;
use lazyforge_models::{npy, ChatMessage, ChatTemplate, TextTokenizer};

/// Relative L2 error allowed on logits (the bound for the real file).
const LOGITS_TOLERANCE: f64 = 1e-3;
/// Below this top-1/top-2 logit margin the reference's pick is a near tie: float rounding
/// may choose the other token, and the continuations are compared only up to there.
const TIE_MARGIN: f64 = 0.1;

/// The reference ids are SentencePiece's BPE on the file's pieces and scores, with control
/// and user-defined pieces (Gemma's runs of literal spaces) matched whole first, as llama.cpp
/// does; transformers' converted tokenizer splits long runs of spaces differently (its ids
/// are in the fixture as `transformers_ids`).
#[test]
fn tokenizer_matches_sentencepiece() {
    let tokenizer = TextTokenizer::from_gguf_file(common::gemma3_path()).unwrap();
    let refs = common::gemma3_refs();
    let strings = refs["strings"].as_array().unwrap();
    assert!(strings.len() >= 10);
    let differ = strings
        .iter()
        .filter(|c| c["ids"] != c["transformers_ids"])
        .count();
    assert!(differ > 0, "the fixture shows where transformers differs");
    for case in strings {
        let text = case["text"].as_str().unwrap();
        let got = tokenizer.encode(text, true).unwrap();
        assert_eq!(got, ids(&case["ids"]), "{text:?}");
    }
    assert_eq!(tokenizer.bos(), Some(2));
}

#[test]
fn last_position_logits_match_transformers() {
    let model = Gemma3::open(common::gemma3_path(), Device::Cpu).unwrap();
    let refs = common::gemma3_refs();
    let table = npy::read_f32(common::fixtures_dir().join("gemma3/logits.npy")).unwrap();
    let cases = refs["logits"].as_array().unwrap();
    assert!(cases
        .iter()
        .any(|c| c["ids"].as_array().unwrap().len() > 512));
    for case in cases {
        let prompt = ids(&case["ids"]);
        let want = table.row(case["row"].as_u64().unwrap() as usize).unwrap();
        let mut cache = model.new_cache().unwrap();
        let got = model.forward_prefill(&prompt, &mut cache).unwrap();
        let got = got.as_f32().unwrap();
        let err = common::relative_l2(got, want);
        eprintln!("{} tokens: relative L2 {err:.2e}", prompt.len());
        assert!(
            err < LOGITS_TOLERANCE,
            "{} tokens: relative L2 {err:e}",
            prompt.len()
        );
        assert_eq!(argmax(got), argmax(want), "{} tokens", prompt.len());
    }
}

#[test]
fn greedy_continuations_match_transformers_and_local_caches_hold_the_window() {
    let model = Gemma3::open(common::gemma3_path(), Device::Cpu).unwrap();
    let cfg = model.config().clone();
    let refs = common::gemma3_refs();
    for case in refs["greedy"].as_array().unwrap() {
        let prompt = ids(&case["ids"]);
        let want = ids(&case["new_ids"]);
        let gaps: Vec<f64> = case["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_f64().unwrap())
            .collect();
        let mut cache = model.new_cache().unwrap();
        let mut logits = model.forward_prefill(&prompt, &mut cache).unwrap();
        let mut got = Vec::new();
        for (step, &gap) in gaps.iter().enumerate() {
            let next = argmax(logits.as_f32().unwrap()).unwrap();
            got.push(next);
            if gap < TIE_MARGIN {
                break; // a near tie in the reference: either pick is right
            }
            assert_eq!(
                next, want[step],
                "{:?}: step {step} (got {got:?}, want {want:?})",
                case["prompt"]
            );
            logits = model.forward_decode(&[next], &mut cache).unwrap();
        }
        for (i, layer) in cache.layers().iter().enumerate() {
            let expected = if cfg.is_global(i) {
                cache.position()
            } else {
                cache
                    .position()
                    .min(cfg.base.sliding_window.expect("gemma3 has a window"))
            };
            assert_eq!(
                layer.len(),
                expected,
                "layer {i} holds {} keys",
                layer.len()
            );
        }
    }
}

#[test]
fn fallback_chat_template_renders_gemmas_turn_format() {
    let tokenizer = TextTokenizer::from_gguf_file(common::gemma3_path()).unwrap();
    assert!(
        tokenizer.chat_template().is_none(),
        "the file carries no template"
    );
    let template =
        ChatTemplate::new(GEMMA_TEMPLATE, tokenizer.bos_text(), tokenizer.eos_text()).unwrap();
    let rendered = template
        .render(&[ChatMessage::user("What is the capital of France?")], true)
        .unwrap();
    let refs = common::gemma3_refs();
    let chat = refs["logits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["prompt"].as_str().unwrap().starts_with("<start_of_turn>"))
        .unwrap();
    assert_eq!(
        tokenizer.encode(&rendered, false).unwrap(),
        ids(&chat["ids"]),
        "{rendered:?}"
    );
    let with_system = template
        .render(
            &[
                ChatMessage::system("Be brief."),
                ChatMessage::user("Hi"),
                ChatMessage::assistant("Hello!"),
                ChatMessage::user("Bye"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(
        with_system,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n"
    );
}

#[test]
fn opening_reads_no_weights_and_tied_embeddings_count_once() {
    let model = Gemma3::open(common::gemma3_path(), Device::Cpu).unwrap();
    assert!(!model.is_materialized());
    let file = std::fs::metadata(common::gemma3_path()).unwrap().len();
    // Every weight once (the LM head is the token embeddings): the file less its metadata.
    let bytes = model.total_bytes();
    assert!(
        bytes < file && file - bytes < 8 << 20,
        "{bytes} bytes of weights in a {file}-byte file"
    );
}
