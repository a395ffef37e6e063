//! Our GGUF tokenizer and chat template against the references `tools/make_refs.py` wrote
//! with HF transformers (pre-tokenizer fixed to SmolLM2's original one, see that script).

mod common;

use common::ids;

use lazyforge::source::gguf::{GgufWriter, MetaType, WriteValue};
use lazyforge_models::{ChatMessage, ChatTemplate, Error, TextTokenizer};
use serde_json::Value;
use std::sync::OnceLock;

/// The SmolLM2 tokenizer, built once for all tests.
fn smollm2() -> &'static TextTokenizer {
    static TOKENIZER: OnceLock<TextTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        TextTokenizer::from_gguf_file(common::smollm2_path())
            .expect("SmolLM2's GGUF tokenizer builds")
    })
}

fn reference_strings() -> Vec<(String, Vec<u32>, Vec<u32>, bool)> {
    let refs = common::smollm2_refs();
    refs["strings"]
        .as_array()
        .expect("strings")
        .iter()
        .map(|s| {
            (
                s["text"].as_str().expect("text").to_string(),
                ids(&s["ids"]),
                ids(&s["transformers_gguf_ids"]),
                s["has_digits"].as_bool().expect("has_digits"),
            )
        })
        .collect()
}

#[test]
fn smollm2_ids_equal_the_reference_for_every_string() {
    let tok = smollm2();
    let strings = reference_strings();
    assert!(strings.len() >= 10, "the fixture pins at least 10 strings");
    let mut wrong = Vec::new();
    for (text, expected, _, _) in &strings {
        let got = tok.encode(text, false).unwrap();
        if &got != expected {
            wrong.push(format!("{text:?}: got {got:?}, reference {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "ids differ:\n{}", wrong.join("\n"));
}

#[test]
fn smollm2_splits_digits_where_transformers_gguf_conversion_does_not() {
    // The fixture records what transformers' own GGUF conversion gives; it ignores
    // tokenizer.ggml.pre = "smollm". We must match the original tokenizer, not it.
    let tok = smollm2();
    let mut differing = 0;
    for (text, expected, transformers_ids, has_digits) in reference_strings() {
        if expected != transformers_ids {
            assert!(has_digits, "{text:?}: only digit handling may differ");
            differing += 1;
        }
        assert_eq!(tok.encode(&text, false).unwrap(), expected, "{text:?}");
    }
    assert!(
        differing > 0,
        "at least one digit string (\"b  22\") shows the trap"
    );
}

#[test]
fn smollm2_decode_round_trips() {
    let tok = smollm2();
    for (text, expected, _, _) in reference_strings() {
        assert_eq!(tok.decode(&expected).unwrap(), text);
    }
}

#[test]
fn smollm2_stream_decode_equals_decode_and_never_breaks_utf8() {
    let tok = smollm2();
    for (text, expected, _, _) in reference_strings() {
        let mut stream = tok.stream(false);
        let mut out = String::new();
        for &id in &expected {
            if let Some(piece) = stream.step(id).unwrap() {
                assert!(
                    !piece.contains(char::REPLACEMENT_CHARACTER),
                    "{text:?}: broken character in {piece:?}"
                );
                out.push_str(&piece);
            }
        }
        if let Some(rest) = stream.finish().unwrap() {
            out.push_str(&rest);
        }
        assert_eq!(out, text);
    }
}

#[test]
fn smollm2_special_ids_and_flags_come_from_metadata() {
    let tok = smollm2();
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    // EOS first, then <|endoftext|>, a control token with an end-of-generation text.
    assert_eq!(tok.eos_ids(), &[2, 0]);
    assert!(!tok.add_bos() && !tok.add_eos());
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(
        tok.encode("Hi", true).unwrap(),
        tok.encode("Hi", false).unwrap()
    );
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.encode("<|im_end|>", false).unwrap(), vec![2]);
    assert_eq!(tok.decode_with(&[1, 2], true).unwrap(), "");
    assert!(tok.decode(&[49152]).is_err());
}

#[test]
fn smollm2_chat_template_renders_like_transformers() {
    let tok = smollm2();
    let refs = common::smollm2_refs();
    let chat = &refs["chat"];
    let messages: Vec<ChatMessage> =
        serde_json::from_value(chat["messages"].clone()).expect("messages");
    let template = ChatTemplate::from_tokenizer(tok)
        .expect("SmolLM2 ships a chat template")
        .unwrap();
    let add_generation_prompt = chat["add_generation_prompt"].as_bool().unwrap();
    let rendered = template.render(&messages, add_generation_prompt).unwrap();
    assert_eq!(rendered, chat["rendered"].as_str().unwrap());
    assert_eq!(tok.encode(&rendered, false).unwrap(), ids(&chat["ids"]));
}

#[test]
fn smollm2_tokenizer_json_round_trip_through_an_hf_directory() {
    // Save our tokenizer as tokenizer.json, load it back the HF way: same ids.
    let tok = smollm2();
    let dir = tempfile::tempdir().unwrap();
    tok.inner()
        .expect("SmolLM2's byte-level BPE runs on the tokenizers crate")
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let config = serde_json::json!({
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>"},
        "chat_template": tok.chat_template().unwrap(),
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"eos_token_id": [2, 0]}"#,
    )
    .unwrap();
    let hf = TextTokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(hf.bos(), Some(1));
    assert_eq!(hf.eos(), Some(2));
    assert_eq!(hf.eos_ids(), &[2, 0]);
    assert_eq!(hf.chat_template(), tok.chat_template());
    // chat_template.jinja, where present, is the template.
    std::fs::write(dir.path().join("chat_template.jinja"), "{{ messages }}").unwrap();
    let hf2 = TextTokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(hf2.chat_template(), Some("{{ messages }}"));
    for (text, expected, _, _) in reference_strings() {
        assert_eq!(hf.encode(&text, false).unwrap(), expected, "{text:?}");
    }
}

/// Writes a GGUF holding only tokenizer metadata.
fn tokenizer_gguf(entries: Vec<(&str, WriteValue)>) -> tempfile::NamedTempFile {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama").unwrap();
    for (k, v) in entries {
        w.add_metadata(k, v).unwrap();
    }
    let file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    w.write_to_path(file.path()).unwrap();
    file
}

fn strings(v: &[&str]) -> WriteValue {
    WriteValue::array(
        MetaType::String,
        v.iter().map(|s| WriteValue::from(*s)).collect(),
    )
    .unwrap()
}

#[test]
fn unknown_pre_tokenizer_is_an_error_naming_it() {
    let file = tokenizer_gguf(vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "brand-new-pre".into()),
        ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"])),
        ("tokenizer.ggml.merges", strings(&["a b"])),
    ]);
    let err = TextTokenizer::from_gguf_file(file.path()).unwrap_err();
    assert!(matches!(err, Error::TokenizerSetup { .. }), "{err}");
    assert!(err.to_string().contains("\"brand-new-pre\""), "{err}");
}

#[test]
fn llama3_pre_tokenizer_adds_bos_by_default_and_groups_digits_by_three() {
    let file = tokenizer_gguf(vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "llama-bpe".into()),
        (
            "tokenizer.ggml.tokens",
            strings(&[
                "1",
                "2",
                "3",
                "4",
                "12",
                "123",
                "<|begin_of_text|>",
                "<|eot_id|>",
            ]),
        ),
        ("tokenizer.ggml.merges", strings(&["1 2", "12 3"])),
        (
            "tokenizer.ggml.token_type",
            vec![1i32, 1, 1, 1, 1, 1, 3, 3].into(),
        ),
        ("tokenizer.ggml.bos_token_id", 6u32.into()),
        ("tokenizer.ggml.eos_token_id", 7u32.into()),
    ]);
    let tok = TextTokenizer::from_gguf_file(file.path()).unwrap();
    assert!(tok.add_bos());
    // "1234" splits as "123" + "4" (groups of up to three digits), then BOS in front.
    assert_eq!(tok.encode("1234", true).unwrap(), vec![6, 5, 3]);
    assert_eq!(tok.encode("1234", false).unwrap(), vec![5, 3]);
    assert_eq!(tok.eos_ids(), &[7]);
}

#[test]
fn unknown_tokenizer_model_is_an_error_naming_it() {
    let file = tokenizer_gguf(vec![
        ("tokenizer.ggml.model", "bert".into()),
        ("tokenizer.ggml.tokens", strings(&["a"])),
    ]);
    let err = TextTokenizer::from_gguf_file(file.path()).unwrap_err();
    assert!(err.to_string().contains("\"bert\""), "{err}");
}

#[test]
fn sentencepiece_gguf_adds_bos_uses_scores_and_byte_fallback() {
    let file = tokenizer_gguf(vec![
        ("tokenizer.ggml.model", "llama".into()),
        (
            "tokenizer.ggml.tokens",
            strings(&[
                "<unk>", "<s>", "</s>", "<0x0A>", "<0xF0>", "<0x9F>", "<0xA6>", "<0x80>", "▁", "h",
                "e", "y", "▁h", "he", "▁he", "▁hey", "y▁",
            ]),
        ),
        (
            "tokenizer.ggml.scores",
            vec![
                0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -2.0, -3.0, -2.5,
                -1.5, -1.0, -9.0,
            ]
            .into(),
        ),
        (
            "tokenizer.ggml.token_type",
            vec![2i32, 3, 3, 6, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1].into(),
        ),
        ("tokenizer.ggml.bos_token_id", 1u32.into()),
        ("tokenizer.ggml.eos_token_id", 2u32.into()),
        ("tokenizer.ggml.unknown_token_id", 0u32.into()),
        (
            "tokenizer.chat_template",
            "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"
                .into(),
        ),
    ]);
    let tok = TextTokenizer::from_gguf_file(file.path()).unwrap();
    assert!(
        tok.add_bos(),
        "SentencePiece files add BOS unless they say otherwise"
    );
    // "hey" -> "▁hey" (space prefix); "\n" and the crab (F0 9F A6 80) fall back to bytes.
    let ids = tok.encode("hey\n🦀", true).unwrap();
    assert_eq!(ids, vec![1, 15, 3, 4, 5, 6, 7]);
    assert_eq!(tok.decode_with(&ids, true).unwrap(), "hey\n🦀");
    // Streaming holds the crab's bytes back until the character is whole.
    let mut stream = tok.stream(true);
    let pieces: Vec<Option<String>> = ids.iter().map(|&id| stream.step(id).unwrap()).collect();
    assert_eq!(
        pieces,
        vec![
            None,
            Some("hey".into()),
            Some("\n".into()),
            None,
            None,
            None,
            Some("🦀".into())
        ]
    );
    let template = ChatTemplate::from_tokenizer(&tok).unwrap().unwrap();
    let text = template.render(&[ChatMessage::user("hey")], false).unwrap();
    assert_eq!(text, "<s>hey</s>");
}

/// `fixtures/refs/spm_tiny.json`: SentencePiece's own ids for a tiny trained model.
fn spm_refs() -> Value {
    let path = common::fixtures_dir().join("refs").join("spm_tiny.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate it with `python3 tools/make_refs.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("spm_tiny.json is valid JSON")
}

#[test]
fn sentencepiece_gguf_ids_equal_sentencepiece_itself() {
    let refs = spm_refs();
    let path = common::fixtures_dir()
        .join("refs")
        .join(refs["gguf_file"].as_str().unwrap());
    let tok = TextTokenizer::from_gguf_file(path).unwrap();
    let bos = refs["bos_id"].as_u64().unwrap() as u32;
    assert_eq!(tok.bos(), Some(bos));
    assert!(tok.add_bos());
    let mut wrong = Vec::new();
    for s in refs["strings"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let expected = ids(&s["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != expected {
            wrong.push(format!("{text:?}: got {got:?}, SentencePiece {expected:?}"));
            continue;
        }
        let mut with_bos = vec![bos];
        with_bos.extend(&expected);
        assert_eq!(tok.encode(text, true).unwrap(), with_bos, "{text:?}");
        assert_eq!(tok.decode_with(&with_bos, true).unwrap(), text);
        // Streaming keeps SentencePiece's spaces between pieces and whole characters.
        let mut stream = tok.stream(true);
        let mut streamed = String::new();
        for &id in &with_bos {
            if let Some(piece) = stream.step(id).unwrap() {
                assert!(!piece.contains(char::REPLACEMENT_CHARACTER), "{text:?}");
                streamed.push_str(&piece);
            }
        }
        streamed.extend(stream.finish().unwrap());
        assert_eq!(streamed, text);
    }
    assert!(wrong.is_empty(), "ids differ:\n{}", wrong.join("\n"));
}
