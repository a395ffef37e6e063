//! What the models crate's fuzz targets run (`fuzz/fuzz_targets/tokenizer.rs`,
//! `chat_template.rs`), here so that the corpus replay test (`models/tests/fuzz_corpus.rs`)
//! runs exactly the same code on stable. Not part of the public API.

use crate::{ChatMessage, ChatTemplate, TextTokenizer};

/// Inputs longer than this are skipped by the tokenizer target: a tokenizer is built from
/// the whole vocabulary, so time grows with the input; the GGUF parser itself is fuzzed
/// at any size by the `gguf` target.
pub const MAX_TOKENIZER_INPUT: usize = 64 * 1024;

/// Text encoded by the tokenizer target: words, digits, spaces, control tokens, a
/// character outside most vocabularies.
const SAMPLE: &str = "Hello world! 12345  \n\t<|im_start|>user<s></s> héllo ▁x 漢字 🦀";

/// Target `tokenizer`: a GGUF file (metadata only) from which a tokenizer is built; when
/// that succeeds, text is encoded, decoded, stream-decoded, and the file's chat template
/// (if any) is compiled and rendered. A SentencePiece vocabulary is also built as
/// [`sentencepiece_reference`] and must give the same ids and text.
pub fn tokenizer(data: &[u8]) {
    if data.len() > MAX_TOKENIZER_INPUT {
        return;
    }
    let Ok(gguf) = lazyforge::fuzzing::gguf_from_bytes(data) else {
        return;
    };
    let Ok(tok) = TextTokenizer::from_gguf(&gguf) else {
        return;
    };
    // A SentencePiece vocabulary: lazyforge's engine must agree with the `tokenizers` crate
    // wherever that builds one too.
    if tok.inner().is_none() {
        if let Ok(reference) = sentencepiece_reference(&gguf) {
            for add_special in [false, true] {
                if let (Ok(ours), Ok(want)) = (
                    tok.encode(SAMPLE, add_special),
                    reference.encode(SAMPLE, add_special),
                ) {
                    assert_eq!(ours, want, "SentencePiece ids differ from the reference");
                    for skip in [false, true] {
                        assert_eq!(
                            tok.decode_with(&ours, skip).ok(),
                            reference.decode_with(&ours, skip).ok(),
                            "SentencePiece text differs from the reference"
                        );
                    }
                }
            }
        }
    }
    for add_special in [false, true] {
        let Ok(ids) = tok.encode(SAMPLE, add_special) else {
            continue;
        };
        let _ = tok.decode(&ids);
        let _ = tok.decode_with(&ids, false);
        let mut stream = tok.stream(true);
        for &id in &ids {
            let _ = stream.step(id);
        }
        let _ = stream.finish();
    }
    // Ids the tokenizer did not make: out of range, every special one.
    let _ = tok.decode(&[u32::MAX, 0, tok.vocab_size() as u32]);
    if let Some(Ok(template)) = ChatTemplate::from_tokenizer(&tok) {
        let _ = template.render(&messages("hi"), true);
    }
}

/// The tokenizer of a GGUF file with a SentencePiece (`llama`) vocabulary built on the
/// `tokenizers` crate's BPE, merges ranked by score, instead of lazyforge's own engine: the
/// reference the engine is compared with (models/tests/sentencepiece.rs, and the `tokenizer`
/// target, which fails on any difference).
pub fn sentencepiece_reference(
    gguf: &lazyforge::source::gguf::GgufFile,
) -> crate::error::Result<TextTokenizer> {
    TextTokenizer::from_gguf_with(gguf, true)
}

/// Target `chat_template`: the bytes up to the first NUL are a template's source (lossy
/// UTF-8, as metadata strings are only trusted to be bytes), the rest is a user message.
/// The template is compiled and rendered with and without a generation prompt.
pub fn chat_template(data: &[u8]) {
    let (source, content) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let source = String::from_utf8_lossy(source);
    let content = String::from_utf8_lossy(content);
    let Ok(template) = ChatTemplate::new(source, "<s>", "</s>") else {
        return;
    };
    let msgs = messages(&content);
    let _ = template.render(&msgs, true);
    let _ = template.render(&msgs[1..], false);
}

fn messages(user: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are {{ helpful }} %s %n {0}."),
        ChatMessage::user(user),
        ChatMessage::assistant("ok"),
    ]
}

/// A chat template of the ChatML family, as SmolLM2 and Qwen ship it.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Starting inputs for target `target` (`tokenizer`, `chat_template`).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use lazyforge::source::gguf::{GgufWriter, MetaType, WriteValue};
    let strings = |v: &[&str]| {
        WriteValue::array(
            MetaType::String,
            v.iter().map(|s| WriteValue::from(*s)).collect(),
        )
        .expect("strings make a string array")
    };
    match target {
        "tokenizer" => {
            let mut bpe = GgufWriter::new();
            let entries: Vec<(&str, WriteValue)> = vec![
                ("tokenizer.ggml.model", "gpt2".into()),
                ("tokenizer.ggml.pre", "smollm".into()),
                (
                    "tokenizer.ggml.tokens",
                    strings(&["<|im_start|>", "<|im_end|>", "H", "e", "l", "o", "He", "ll", "Ġ", "1", "2"]),
                ),
                ("tokenizer.ggml.merges", strings(&["H e", "l l"])),
                ("tokenizer.ggml.token_type", vec![3i32, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1].into()),
                ("tokenizer.ggml.bos_token_id", 0u32.into()),
                ("tokenizer.ggml.eos_token_id", 1u32.into()),
                ("tokenizer.chat_template", CHATML.into()),
            ];
            for (k, v) in entries {
                bpe.add_metadata(k, v).expect("seed metadata");
            }
            let mut spm = GgufWriter::new();
            let entries: Vec<(&str, WriteValue)> = vec![
                ("tokenizer.ggml.model", "llama".into()),
                (
                    "tokenizer.ggml.tokens",
                    strings(&["<unk>", "<s>", "</s>", "<0x0A>", "<0xF0>", "▁", "h", "e", "▁h", "he", "▁he"]),
                ),
                (
                    "tokenizer.ggml.scores",
                    vec![0.0f32, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -3.0, -2.5, -1.5].into(),
                ),
                ("tokenizer.ggml.token_type", vec![2i32, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1].into()),
                ("tokenizer.ggml.bos_token_id", 1u32.into()),
                ("tokenizer.ggml.eos_token_id", 2u32.into()),
                ("tokenizer.ggml.unknown_token_id", 0u32.into()),
            ];
            for (k, v) in entries {
                spm.add_metadata(k, v).expect("seed metadata");
            }
            vec![bpe.to_bytes(), spm.to_bytes()]
        }
        "chat_template" => [
            CHATML,
            "{{ bos_token }}{% for m in messages %}{% if loop.first and m.role == 'system' %}[{{ m.content.strip() }}]{% else %}{{ m.role|upper }}: {{ m.content|trim }}{{ eos_token }}{% endif %}{% endfor %}",
            "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
            "{% set ns = namespace(s='a') %}{% for i in range(3) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "{{ messages|tojson(indent=2) }}{{ 'x'|indent(4) }}{{ '%05d'|format(3) }}{{ '{:>4}'.format('a') }}{{ [1,2,3]|batch(2)|list }}{{ [1,2]|slice(2)|list }}",
            "{% include 'other.jinja' %}",
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[1].content.split(' ')|join(',') }}",
        ]
        .iter()
        .map(|t| {
            let mut v = t.as_bytes().to_vec();
            v.push(0);
            v.extend_from_slice("user says {{ 7*7 }} %s \u{1F980}".as_bytes());
            v
        })
        .collect(),
        _ => Vec::new(),
    }
}
