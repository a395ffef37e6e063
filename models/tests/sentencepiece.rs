//! lazyforge's SentencePiece engine against the `tokenizers` crate's BPE built from the same
//! GGUF vocabulary (merges ranked by score, byte fallback, control and user-defined pieces
//! as added tokens): the same ids and the same text for a thousand generated strings on
//! Gemma 3's real 262 144-piece vocabulary, and on a small vocabulary that has holes (no
//! byte piece for some bytes, an unknown piece, a space prefix). The transformers /
//! SentencePiece fixtures are checked in gemma3_parity.rs; this test covers what they do
//! not reach.

mod common;

use lazyforge::source::gguf::{GgufFile, GgufWriter, MetaType, WriteValue};
use lazyforge_models::fuzzing::sentencepiece_reference;
use lazyforge_models::TextTokenizer;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The models crate's own generator (`rand_chacha`, as sampling uses), seeded.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
}

/// Pieces of text the generated strings are made of: words of several scripts, runs of
/// spaces, tabs and newlines, digits, markup, control and user-defined pieces, characters
/// that only byte pieces can spell.
const FRAGMENTS: &[&str] = &[
    "the",
    " the",
    "The",
    " capital",
    " of",
    " France",
    " is",
    " Paris",
    ".",
    ",",
    "!",
    "?",
    " ",
    "  ",
    "   ",
    "    ",
    "        ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    " \n ",
    "0",
    "7",
    "42",
    "2026",
    "3.14159",
    "-",
    "_",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "`",
    "#",
    "*",
    "<",
    ">",
    "</",
    "/>",
    "<table>",
    "<tr>",
    "<td>",
    "<b>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "<pad>",
    "<unk>",
    "<unused0>",
    "<unused17>",
    "<mask>",
    "user",
    "model",
    "héllo",
    "naïve",
    "über",
    "façade",
    "日本語",
    "漢字",
    "中文",
    "한국어",
    "русский",
    "ελληνικά",
    "עברית",
    "العربية",
    "हिन्दी",
    "ไทย",
    "🦀",
    "🙂",
    "👩‍💻",
    "∑",
    "√",
    "≠",
    "→",
    "▁",
    "▁▁",
    "\u{2581}x",
    "\u{0301}",
    "\u{200d}",
    "\u{feff}",
    "\u{e000}",
    "\u{10ffff}",
    "\u{1f9ff}",
    "<0x41>",
    "fn main() {",
    "    return x;",
    "}",
    "http://example.org/a?b=c",
    "a",
    "b",
    "zz",
];

/// A random code point (not a surrogate), weighted towards the rarer planes.
fn random_char(rng: &mut Rng) -> char {
    loop {
        let cp = match rng.below(4) {
            0 => rng.below(0x80) as u32,
            1 => rng.below(0x800) as u32,
            2 => rng.below(0x10000) as u32,
            _ => rng.below(0x110000) as u32,
        };
        if let Some(c) = char::from_u32(cp) {
            return c;
        }
    }
}

fn random_text(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(24) {
        if rng.below(5) == 0 {
            for _ in 0..1 + rng.below(3) {
                s.push(random_char(rng));
            }
        } else {
            s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
    }
    s
}

/// Encodes and decodes `texts` with both tokenizers; panics on the first difference.
fn compare(ours: &TextTokenizer, reference: &TextTokenizer, texts: &[String]) {
    assert_eq!(ours.vocab_size(), reference.vocab_size());
    for text in texts {
        for add_special in [false, true] {
            let got = ours.encode(text, add_special).unwrap();
            let want = reference.encode(text, add_special).unwrap();
            assert_eq!(got, want, "ids of {text:?} (add_special {add_special})");
            if add_special {
                // The same ids plus BOS/EOS; the `tokenizers` crate decodes slowly (about
                // 0.2 ms per id on Gemma's vocabulary), so each text is decoded once.
                continue;
            }
            for skip in [false, true] {
                assert_eq!(
                    ours.decode_with(&got, skip).unwrap(),
                    reference.decode_with(&got, skip).unwrap(),
                    "text of the ids of {text:?} (skip_special {skip})"
                );
            }
        }
    }
}

/// Random id sequences (byte pieces that make invalid UTF-8, control pieces, anything)
/// decode to the same text.
fn compare_decoding(ours: &TextTokenizer, reference: &TextTokenizer, rng: &mut Rng) {
    let n = ours.vocab_size();
    let bytes: Vec<u32> = (0..=255u8)
        .filter_map(|b| ours.token_to_id(&format!("<0x{b:02X}>")))
        .collect();
    for _ in 0..1000 {
        let ids: Vec<u32> = (0..rng.below(12))
            .map(|_| match rng.below(3) {
                0 if !bytes.is_empty() => bytes[rng.below(bytes.len())],
                1 => rng.below(300.min(n)) as u32,
                _ => rng.below(n) as u32,
            })
            .collect();
        for skip in [false, true] {
            assert_eq!(
                ours.decode_with(&ids, skip).unwrap(),
                reference.decode_with(&ids, skip).unwrap(),
                "text of {ids:?} (skip_special {skip})"
            );
        }
    }
}

#[test]
fn gemma3_vocabulary_encodes_and_decodes_as_the_tokenizers_crate_does() {
    let ckpt = lazyforge::Checkpoint::open(common::gemma3_path()).unwrap();
    let gguf = ckpt.gguf().unwrap();
    let ours = TextTokenizer::from_gguf(gguf).unwrap();
    assert!(
        ours.inner().is_none(),
        "Gemma 3's SentencePiece vocabulary runs on lazyforge's engine"
    );
    let reference = sentencepiece_reference(gguf).unwrap();
    let mut rng = Rng::new(0x5EED_0F6E_33A3);
    let mut texts: Vec<String> = common::gemma3_refs()["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    texts.extend(FRAGMENTS.iter().map(|f| f.to_string()));
    texts.extend((0..1000).map(|_| random_text(&mut rng)));
    // One long stretch: many merges in one word.
    texts.push((0..400).map(|_| random_text(&mut rng)).collect());
    compare(&ours, &reference, &texts);
    compare_decoding(&ours, &reference, &mut rng);
    for piece in ["<start_of_turn>", "▁the", "<0x0A>", "not a piece at all"] {
        assert_eq!(
            ours.token_to_id(piece),
            reference.token_to_id(piece),
            "{piece}"
        );
    }
    for id in [0, 1, 2, 3, 106, 107, 1000, 262_143] {
        assert_eq!(ours.id_to_token(id), reference.id_to_token(id), "{id}");
    }
}

/// A GGUF SentencePiece vocabulary with holes: byte pieces for some bytes only, an unknown
/// piece, user-defined and control pieces, a space prefix.
fn small_vocabulary(path: &std::path::Path, add_space_prefix: bool) {
    let mut pieces: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types: Vec<i32> = vec![2, 3, 3];
    // Byte pieces for ASCII and for the bytes of 'é' (C3 A9) only.
    for b in (0x00..0x80u8).chain([0xC3, 0xA9]) {
        pieces.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for p in [
        "▁", "h", "e", "l", "o", "▁h", "he", "ll", "lo", "llo", "hello", "▁hello", "▁▁", "w", "or",
        "ld", "▁w", "▁wor", "wor", "world", "▁world", "é", "ü", "<tag>", "<t", "▁<",
    ] {
        pieces.push(p.into());
        types.push(1);
    }
    for p in ["<tag>x", "\n\n", "  "] {
        pieces.push(p.into());
        types.push(4);
    }
    pieces.push("<ctl>".into());
    types.push(3);
    let scores: Vec<f32> = (0..pieces.len())
        .map(|i| -((i * 7919 % 97) as f32) / 10.0)
        .collect();
    let strings = pieces
        .iter()
        .map(|p| WriteValue::from(p.as_str()))
        .collect();
    let entries: Vec<(&str, WriteValue)> = vec![
        ("tokenizer.ggml.model", "llama".into()),
        (
            "tokenizer.ggml.tokens",
            WriteValue::array(MetaType::String, strings).unwrap(),
        ),
        ("tokenizer.ggml.scores", scores.into()),
        ("tokenizer.ggml.token_type", types.into()),
        ("tokenizer.ggml.bos_token_id", 1u32.into()),
        ("tokenizer.ggml.eos_token_id", 2u32.into()),
        ("tokenizer.ggml.add_eos_token", true.into()),
        ("tokenizer.ggml.add_space_prefix", add_space_prefix.into()),
    ];
    let mut w = GgufWriter::new();
    for (k, v) in entries {
        w.add_metadata(k, v).unwrap();
    }
    w.write_to_path(path).unwrap();
}

#[test]
fn a_vocabulary_with_holes_encodes_and_decodes_as_the_tokenizers_crate_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xC0FF_EE00_1234_5678);
    for add_space_prefix in [false, true] {
        let path = dir.path().join(format!("small-{add_space_prefix}.gguf"));
        small_vocabulary(&path, add_space_prefix);
        let ckpt = lazyforge::Checkpoint::open(&path).unwrap();
        let gguf: &GgufFile = ckpt.gguf().unwrap();
        let ours = TextTokenizer::from_gguf(gguf).unwrap();
        let reference = sentencepiece_reference(gguf).unwrap();
        let mut texts: Vec<String> = [
            "hello world",
            " hello  world ",
            "héllo wörld",
            "日本 hello",
            "<tag>x<tag><ctl>hello<s></s>",
            "\n\n\n  hello\n",
            "",
            " ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        texts.extend((0..1000).map(|_| random_text(&mut rng)));
        compare(&ours, &reference, &texts);
        compare_decoding(&ours, &reference, &mut rng);
    }
}
