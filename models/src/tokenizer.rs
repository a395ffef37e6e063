//! Text ⇄ token ids, built on the `tokenizers` crate from what a checkpoint says about its
//! tokenizer: the `tokenizer.ggml.*` metadata of a GGUF file, or an HF `tokenizer.json`.
//!
//! GGUF describes two families, by `tokenizer.ggml.model`:
//!
//! - `gpt2`: byte-level BPE (vocabulary + merges). How text is split into words before BPE
//!   is not in the file: `tokenizer.ggml.pre` names it, and we map each name to the
//!   pre-tokenizer of the model's original `tokenizer.json` (the same regexes llama.cpp uses
//!   for that name). A name we do not know is an error, never a guess: a wrong split gives
//!   plausible but wrong ids (SmolLM2's `smollm` splits every digit on its own, so
//!   `"12345"` is five tokens, not one or two).
//! - `llama`: SentencePiece BPE. Pieces carry `▁` for spaces and scores; a pair merges
//!   first when the piece it makes scores highest, as SentencePiece and llama.cpp do;
//!   characters outside the vocabulary fall back to `<0xNN>` byte tokens. This family has its
//!   own compact engine (`spm`): the vocabulary in one buffer and an index, no merge list
//!   (Gemma 3's 262 144 pieces would imply half a million merges, over 60 MB in the
//!   `tokenizers` crate's tables, against under 10 MB here).
//!
//! Control tokens (`token_type` 3) become special tokens and user-defined ones (4) added
//! tokens, so both are matched whole in input text (a chat template's `<|im_start|>` is one
//! id); `add_bos`/`add_eos` come from the metadata.

use crate::error::{Error, Result};
use ahash::AHashMap;
use lazyforge::source::gguf::GgufFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod spm;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

/// GGUF `token_type` of a token that is ordinary text.
const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF `token_type` of the unknown token.
const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// GGUF `token_type` of a control token (`<s>`, `<|im_start|>`): special, skipped on decode.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `token_type` of a user-defined token: matched whole in text, decoded as text.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Texts of control tokens that end generation whatever the metadata names (llama.cpp's
/// end-of-generation list).
const END_OF_GENERATION: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "<end_of_utterance>",
];

/// The GPT-2 word-splitting regex (`'s`, letters, numbers, other symbols, spaces).
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3's regex, as in its tokenizer.json: numbers in groups of up to three.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's regex, as in its tokenizer.json: every digit on its own.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer plus what generation needs to know about it: BOS/EOS ids, whether encoding
/// adds them, and the chat template the checkpoint ships.
#[derive(Clone)]
pub struct TextTokenizer {
    engine: Engine,
    bos: Option<u32>,
    eos: Option<u32>,
    eos_ids: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    chat_template: Option<String>,
    source: PathBuf,
}

/// What turns text into ids and back.
#[derive(Clone)]
enum Engine {
    /// The `tokenizers` crate (byte-level BPE, HF `tokenizer.json`), BOS/EOS added by its
    /// post-processor.
    Hf(Box<Tokenizer>),
    /// lazyforge's SentencePiece BPE; BOS/EOS added by [`TextTokenizer::encode`].
    Spm(spm::Spm),
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Builds the tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<TextTokenizer> {
        TextTokenizer::from_gguf_with(gguf, false)
    }

    /// [`from_gguf`](TextTokenizer::from_gguf); with `hf_sentencepiece`, a SentencePiece
    /// vocabulary is built on the `tokenizers` crate's BPE (merges ranked by score) instead
    /// of lazyforge's engine: the reference the engine is tested against.
    pub(crate) fn from_gguf_with(gguf: &GgufFile, hf_sentencepiece: bool) -> Result<TextTokenizer> {
        let path = gguf.path().to_path_buf();
        let setup = |reason: String| Error::TokenizerSetup {
            path: path.clone(),
            reason,
        };
        let model = gguf.get_str("tokenizer.ggml.model")?.to_string();
        let tokens = gguf.get_string_array("tokenizer.ggml.tokens")?;
        let types = match gguf.get("tokenizer.ggml.token_type") {
            Some(_) => gguf.get_i32_array("tokenizer.ggml.token_type")?,
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        // Ids are u32 everywhere below; a longer vocabulary is refused here, once.
        if u32::try_from(tokens.len()).is_err() {
            return Err(setup(format!(
                "tokenizer.ggml.tokens has {} entries, more than u32 ids can number",
                tokens.len()
            )));
        }
        if types.len() != tokens.len() {
            return Err(setup(format!(
                "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                types.len(),
                tokens.len()
            )));
        }
        let optional_id = |key: &str| -> Result<Option<u32>> {
            match gguf.get(key) {
                Some(_) => {
                    let id = gguf.get_u32(key)?;
                    if id as usize >= tokens.len() {
                        return Err(setup(format!(
                            "{key} = {id} is outside the vocabulary of {} tokens",
                            tokens.len()
                        )));
                    }
                    Ok(Some(id))
                }
                None => Ok(None),
            }
        };
        let optional_bool = |key: &str, default: bool| -> Result<bool> {
            match gguf.get(key) {
                Some(_) => Ok(gguf.get_bool(key)?),
                None => Ok(default),
            }
        };
        let bos = optional_id("tokenizer.ggml.bos_token_id")?;
        let eos = optional_id("tokenizer.ggml.eos_token_id")?;
        let eot = optional_id("tokenizer.ggml.eot_token_id")?;
        let eom = optional_id("tokenizer.ggml.eom_token_id")?;

        // llama.cpp's default where the file says nothing: SentencePiece adds BOS, BPE
        // only for some pre-tokenizers.
        let mut add_bos_default = model == "llama";
        let mut engine = match model.as_str() {
            "gpt2" => {
                let pre = match gguf.get("tokenizer.ggml.pre") {
                    Some(_) => gguf.get_str("tokenizer.ggml.pre")?,
                    None => "default",
                };
                let pre = pre_split_for(pre).map_err(setup)?;
                add_bos_default = pre.add_bos;
                let merges = gguf.get_string_array("tokenizer.ggml.merges")?;
                Engine::Hf(Box::new(
                    byte_level_bpe(&tokens, &merges, &pre).map_err(setup)?,
                ))
            }
            "llama" => {
                let scores = match gguf.get("tokenizer.ggml.scores") {
                    Some(_) => gguf.get_f32_array("tokenizer.ggml.scores")?,
                    None => vec![0.0; tokens.len()],
                };
                let add_space_prefix = optional_bool("tokenizer.ggml.add_space_prefix", true)?;
                let unk = optional_id("tokenizer.ggml.unknown_token_id")?;
                if hf_sentencepiece {
                    Engine::Hf(Box::new(
                        sentencepiece_bpe(&tokens, &scores, &types, unk, add_space_prefix)
                            .map_err(setup)?,
                    ))
                } else {
                    Engine::Spm(
                        spm::Spm::new(&tokens, &scores, &types, unk, add_space_prefix)
                            .map_err(setup)?,
                    )
                }
            }
            other => {
                return Err(setup(format!(
                    "tokenizer.ggml.model = {other:?} is not supported (supported: \"gpt2\", \
                     \"llama\")"
                )))
            }
        };

        if let Engine::Hf(inner) = &mut engine {
            add_listed_tokens(inner, &tokens, &types).map_err(setup)?;
        }

        let add_bos = optional_bool("tokenizer.ggml.add_bos_token", add_bos_default)?;
        let add_eos = optional_bool("tokenizer.ggml.add_eos_token", false)?;
        let chat_template = match gguf.get("tokenizer.chat_template") {
            Some(_) => Some(gguf.get_str("tokenizer.chat_template")?.to_string()),
            None => None,
        };
        let eos_ids = end_of_generation_ids(&tokens, &types, &[eos, eot, eom]);
        TextTokenizer::assemble(
            engine,
            Specials {
                bos,
                eos,
                eos_ids,
                add_bos,
                add_eos,
            },
            chat_template,
            path,
        )
    }

    /// Opens `path` as a checkpoint and builds the tokenizer its GGUF metadata describes.
    pub fn from_gguf_file(path: impl AsRef<Path>) -> Result<TextTokenizer> {
        let path = path.as_ref();
        let ckpt = lazyforge::Checkpoint::open(path)?;
        let gguf = ckpt.gguf().ok_or_else(|| Error::TokenizerSetup {
            path: path.to_path_buf(),
            reason: "not a GGUF file; for an HF directory use TextTokenizer::from_hf_dir".into(),
        })?;
        TextTokenizer::from_gguf(gguf)
    }

    /// Loads an HF `tokenizer.json` as it is (its own normalizer, pre-tokenizer, post-processor
    /// and special tokens). BOS/EOS are read from the tokenizer's own special tokens when they
    /// have a well-known name; use [`TextTokenizer::from_hf_dir`] to read them from
    /// `tokenizer_config.json` as well.
    pub fn from_file(path: impl AsRef<Path>) -> Result<TextTokenizer> {
        let path = path.as_ref();
        let inner = Tokenizer::from_file(path).map_err(|e| Error::TokenizerSetup {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let bos = find(&["<s>", "<|begin_of_text|>", "<|endoftext|>", "<|im_start|>"]);
        let eos = find(&["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"]);
        let specials = Specials {
            bos,
            eos,
            eos_ids: eos.into_iter().collect(),
            // The tokenizer.json's post-processor already adds what the model wants.
            add_bos: false,
            add_eos: false,
        };
        TextTokenizer::assemble(
            Engine::Hf(Box::new(inner)),
            specials,
            None,
            path.to_path_buf(),
        )
    }

    /// Loads an HF model directory's tokenizer: `tokenizer.json`, plus `tokenizer_config.json`
    /// (BOS/EOS tokens, chat template), `chat_template.jinja`, and `generation_config.json` /
    /// `config.json` (EOS ids) where present.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<TextTokenizer> {
        let dir = dir.as_ref();
        let mut tok = TextTokenizer::from_file(dir.join("tokenizer.json"))?;
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&path).map_err(|e| Error::TokenizerSetup {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::TokenizerSetup {
                    path,
                    reason: format!("not valid JSON: {e}"),
                })
        };
        // A token in tokenizer_config.json is a string or {"content": "..."}.
        let token_text = |v: &serde_json::Value| -> Option<String> {
            v.as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))
                .map(str::to_string)
        };
        if let Some(config) = read_json("tokenizer_config.json")? {
            if let Some(id) = config
                .get("bos_token")
                .and_then(token_text)
                .and_then(|t| tok.token_to_id(&t))
            {
                tok.bos = Some(id);
            }
            if let Some(id) = config
                .get("eos_token")
                .and_then(token_text)
                .and_then(|t| tok.token_to_id(&t))
            {
                tok.eos = Some(id);
                tok.eos_ids = vec![id];
            }
            // A template string, or a list of {"name", "template"} whose "default" is the chat.
            let template = match config.get("chat_template") {
                Some(serde_json::Value::String(t)) => Some(t.clone()),
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template").and_then(|t| t.as_str()))
                    .map(str::to_string),
                _ => None,
            };
            if template.is_some() {
                tok.chat_template = template;
            }
        }
        // Newer transformers save the template beside the config, as chat_template.jinja.
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| Error::TokenizerSetup {
                path: jinja.clone(),
                reason: e.to_string(),
            })?;
            tok.chat_template = Some(text);
        }
        for name in ["generation_config.json", "config.json"] {
            if let Some(config) = read_json(name)? {
                let ids: Vec<u32> = match config.get("eos_token_id") {
                    Some(serde_json::Value::Number(n)) => n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .into_iter()
                        .collect(),
                    Some(serde_json::Value::Array(a)) => a
                        .iter()
                        .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect(),
                    _ => Vec::new(),
                };
                for id in ids {
                    if !tok.eos_ids.contains(&id) {
                        tok.eos_ids.push(id);
                    }
                }
            }
        }
        Ok(tok)
    }

    fn assemble(
        mut engine: Engine,
        specials: Specials,
        chat_template: Option<String>,
        source: PathBuf,
    ) -> Result<TextTokenizer> {
        if specials.add_bos || specials.add_eos {
            let name = |id: Option<u32>, what: &str| -> Result<(String, u32)> {
                let id = id.ok_or_else(|| Error::TokenizerSetup {
                    path: source.clone(),
                    reason: format!("the metadata asks to add {what} but names no {what} id"),
                })?;
                let text =
                    engine_id_to_token(&engine, id).ok_or_else(|| Error::TokenizerSetup {
                        path: source.clone(),
                        reason: format!("{what} id {id} is not in the vocabulary"),
                    })?;
                Ok((text, id))
            };
            let mut single = Vec::new();
            let mut tokens = Vec::new();
            if specials.add_bos {
                let (text, id) = name(specials.bos, "BOS")?;
                single.push("BOS");
                tokens.push(
                    SpecialToken::new("BOS".into(), vec![id], vec![text]).map_err(|e| {
                        Error::TokenizerSetup {
                            path: source.clone(),
                            reason: e.to_string(),
                        }
                    })?,
                );
            }
            single.push("$A");
            if specials.add_eos {
                let (text, id) = name(specials.eos, "EOS")?;
                single.push("EOS");
                tokens.push(
                    SpecialToken::new("EOS".into(), vec![id], vec![text]).map_err(|e| {
                        Error::TokenizerSetup {
                            path: source.clone(),
                            reason: e.to_string(),
                        }
                    })?,
                );
            }
            let template = TemplateProcessing::builder()
                .try_single(single.join(" "))
                .and_then(|b| b.special_tokens(tokens).build().map_err(|e| e.to_string()))
                .map_err(|e| Error::TokenizerSetup {
                    path: source.clone(),
                    reason: format!("BOS/EOS template: {e}"),
                })?;
            if let Engine::Hf(inner) = &mut engine {
                inner.with_post_processor(Some(template));
            }
        }
        Ok(TextTokenizer {
            engine,
            bos: specials.bos,
            eos: specials.eos,
            eos_ids: specials.eos_ids,
            add_bos: specials.add_bos,
            add_eos: specials.add_eos,
            chat_template,
            source,
        })
    }

    /// The ids of `text`. With `add_special`, BOS/EOS are added as the checkpoint asks.
    /// Special tokens written in `text` (`<|im_start|>`) are recognized either way.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let failed = |e: String| Error::Tokenize(format!("encoding {:?}: {e}", preview(text)));
        match &self.engine {
            Engine::Hf(inner) => {
                let encoding = inner
                    .encode(text, add_special)
                    .map_err(|e| failed(e.to_string()))?;
                Ok(encoding.get_ids().to_vec())
            }
            Engine::Spm(spm) => {
                let mut ids = Vec::new();
                if add_special && self.add_bos {
                    ids.extend(self.bos);
                }
                ids.extend(spm.encode(text).map_err(failed)?);
                if add_special && self.add_eos {
                    ids.extend(self.eos);
                }
                Ok(ids)
            }
        }
    }

    /// The text of `ids`, special tokens included (as their text).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_with(ids, false)
    }

    /// The text of `ids`; with `skip_special`, control tokens are left out.
    pub fn decode_with(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(Error::Tokenize(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.vocab_size()
            )));
        }
        match &self.engine {
            Engine::Hf(inner) => inner
                .decode(ids, skip_special)
                .map_err(|e| Error::Tokenize(format!("decoding {} ids: {e}", ids.len()))),
            Engine::Spm(spm) => Ok(spm.decode(ids, skip_special)),
        }
    }

    /// A decoder that turns ids into text one at a time, as they are generated.
    pub fn stream(&self, skip_special: bool) -> TextStream<'_> {
        TextStream {
            tokenizer: self,
            skip_special,
            ids: Vec::new(),
            prefix_start: 0,
            read: 0,
        }
    }

    /// The id of the token whose text is `token`, if there is one.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.engine {
            Engine::Hf(inner) => inner.token_to_id(token),
            Engine::Spm(spm) => spm.lookup(token.as_bytes()),
        }
    }

    /// The text of the token `id` as the vocabulary stores it (`Ġ`/`▁` markers and all).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        engine_id_to_token(&self.engine, id)
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.engine {
            Engine::Hf(inner) => inner.get_vocab_size(true),
            Engine::Spm(spm) => spm.len(),
        }
    }

    /// The beginning-of-sequence id, if the checkpoint names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence id, if the checkpoint names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Every id that ends generation (EOS, end-of-turn, `eos_token_id` lists).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(_, true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// The BOS token's text (`""` when there is none), e.g. for a chat template.
    pub fn bos_text(&self) -> String {
        self.bos
            .and_then(|id| self.id_to_token(id))
            .unwrap_or_default()
    }

    /// The EOS token's text (`""` when there is none), e.g. for a chat template.
    pub fn eos_text(&self) -> String {
        self.eos
            .and_then(|id| self.id_to_token(id))
            .unwrap_or_default()
    }

    /// The Jinja chat template the checkpoint ships (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The file this tokenizer was built from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The underlying `tokenizers::Tokenizer`, where the `tokenizers` crate does the work
    /// (byte-level BPE and HF `tokenizer.json` files); `None` for a GGUF SentencePiece
    /// vocabulary, which lazyforge's own engine handles.
    pub fn inner(&self) -> Option<&Tokenizer> {
        match &self.engine {
            Engine::Hf(inner) => Some(inner),
            Engine::Spm(_) => None,
        }
    }
}

fn engine_id_to_token(engine: &Engine, id: u32) -> Option<String> {
    match engine {
        Engine::Hf(inner) => inner.id_to_token(id),
        Engine::Spm(spm) => spm.piece_str(id).map(str::to_string),
    }
}

/// BOS/EOS settings gathered from a checkpoint.
struct Specials {
    bos: Option<u32>,
    eos: Option<u32>,
    eos_ids: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
}

/// Turns generated ids into text as they come, never splitting a UTF-8 character: a byte
/// token that starts a multi-byte character is held until the character is complete.
///
/// Each step decodes a short window of recent ids and emits what it adds to the window's
/// previous text, so tokenizers whose decoding depends on neighbours (SentencePiece's
/// leading space) come out right.
#[derive(Debug)]
pub struct TextStream<'t> {
    tokenizer: &'t TextTokenizer,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the window whose text has been emitted up to `read`.
    prefix_start: usize,
    /// Ids before this have been emitted.
    read: usize,
}

/// Ids held back at most while waiting for a character to complete (a UTF-8 character is
/// at most 4 bytes, each at most one byte token).
const MAX_PENDING_IDS: usize = 4;

impl TextStream<'_> {
    /// Adds one generated id; returns the text it completes, if any.
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.window_text(self.prefix_start, self.read)?;
        let full = self.window_text(self.prefix_start, self.ids.len())?;
        let pending = self.ids.len() - self.read;
        let incomplete = full.ends_with(char::REPLACEMENT_CHARACTER);
        if full.len() <= prefix.len() || (incomplete && pending < MAX_PENDING_IDS) {
            return Ok(None);
        }
        let new_text = match full.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.to_string(),
            // A decoder that rewrote earlier text: emit what follows the common part.
            None => {
                let common = common_prefix_len(&prefix, &full);
                full[common..].to_string()
            }
        };
        self.prefix_start = self.read;
        self.read = self.ids.len();
        Ok(Some(new_text))
    }

    /// Text of ids still held back (an incomplete character at the end), lossily decoded.
    pub fn finish(&mut self) -> Result<Option<String>> {
        if self.read == self.ids.len() {
            return Ok(None);
        }
        let prefix = self.window_text(self.prefix_start, self.read)?;
        let full = self.window_text(self.prefix_start, self.ids.len())?;
        let common = common_prefix_len(&prefix, &full);
        self.prefix_start = self.read;
        self.read = self.ids.len();
        Ok(Some(full[common..].to_string()).filter(|s| !s.is_empty()))
    }

    /// Every id stepped so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn window_text(&self, from: usize, to: usize) -> Result<String> {
        self.tokenizer
            .decode_with(&self.ids[from..to], self.skip_special)
    }
}

/// Length in bytes of the longest common prefix of `a` and `b` that ends on a char boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}

/// The first 40 characters of `text`, for error messages.
fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}

/// What a `tokenizer.ggml.pre` name implies for a byte-level BPE tokenizer.
struct PreSplit {
    /// How text is cut into words before BPE.
    pre_tokenizer: PreTokenizerWrapper,
    /// Whether a whole word found in the vocabulary is taken as it is (Llama 3).
    ignore_merges: bool,
    /// Whether BOS is added when the file has no `tokenizer.ggml.add_bos_token`.
    add_bos: bool,
}

/// The pre-tokenizer llama.cpp's `tokenizer.ggml.pre` name stands for, as the HF
/// pre-tokenizer of that model's original tokenizer.json, with llama.cpp's per-name
/// defaults (`ignore_merges`, `add_bos`). Err names what is unknown.
fn pre_split_for(pre: &str) -> Result<PreSplit, String> {
    let split = |regex: &str| -> Result<PreTokenizerWrapper, String> {
        Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(PreTokenizerWrapper::Split)
        .map_err(|e| format!("pre-tokenizer regex for {pre:?}: {e}"))
    };
    // Byte-level mapping only, after an explicit split.
    let bytes_only = || PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false));
    // The GPT-2 regex split and the byte mapping in one.
    let gpt2 = || PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
    let seq = |v: Vec<PreTokenizerWrapper>| PreTokenizerWrapper::Sequence(PreSequence::new(v));
    let plain = |pre_tokenizer| PreSplit {
        pre_tokenizer,
        ignore_merges: false,
        add_bos: false,
    };
    Ok(match pre {
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "exaone4" => plain(gpt2()),
        // llama.cpp: "\p{N}" then the GPT-2 regex; the original tokenizer.json: Digits
        // (individual) then ByteLevel with its regex. The same split.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            plain(seq(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                gpt2(),
            ]))
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "dbrx"
        | "smaug-bpe" => PreSplit {
            pre_tokenizer: seq(vec![split(LLAMA3_REGEX)?, bytes_only()]),
            ignore_merges: true,
            // llama.cpp adds BOS by default for the llama3 family only (not dbrx, smaug).
            add_bos: !matches!(pre, "dbrx" | "smaug-bpe"),
        },
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "stablelm2" | "megrez" => {
            plain(seq(vec![split(QWEN2_REGEX)?, bytes_only()]))
        }
        // llama.cpp's fallback for files without a `pre` key.
        "default" => plain(seq(vec![
            split(r"[\p{P}\$\+<=>\^~\|]+")?,
            split(GPT2_REGEX)?,
            split(r"\p{N}+")?,
            split(r"[0-9][0-9][0-9]")?,
            bytes_only(),
        ])),
        other => {
            return Err(format!(
                "tokenizer.ggml.pre = {other:?} is not a pre-tokenizer lazyforge knows \
                 (a wrong guess would give wrong ids); known: gpt2 (gpt-2, phi-2, mpt, olmo, \
                 jais, exaone4), smollm (starcoder, refact, command-r, codeshell, exaone, \
                 minerva-7b), llama3 (llama-v3, llama-bpe, falcon3, falcon-h1, pixtral, dbrx, \
                 smaug-bpe), qwen2 (deepseek-r1-qwen, kormo, stablelm2, megrez), default"
            ))
        }
    })
}

/// Byte-level BPE from a GGUF vocabulary and merges, split by the `pre` pre-tokenizer.
fn byte_level_bpe(
    tokens: &[String],
    merges: &[String],
    pre: &PreSplit,
) -> Result<Tokenizer, String> {
    let vocab = vocab_map(tokens);
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge {i} ({m:?}) is not two tokens separated by a space"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| format!("BPE model: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre.pre_tokenizer.clone()));
    tokenizer.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
    Ok(tokenizer)
}

/// SentencePiece-style BPE: merges ranked by the score of the piece they make, byte
/// fallback for characters outside the vocabulary, `▁` for spaces.
fn sentencepiece_bpe(
    tokens: &[String],
    scores: &[f32],
    types: &[i32],
    unk: Option<u32>,
    add_space_prefix: bool,
) -> Result<Tokenizer, String> {
    if scores.len() != tokens.len() {
        return Err(format!(
            "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
            scores.len(),
            tokens.len()
        ));
    }
    let vocab = vocab_map(tokens);
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    // Every split of a mergeable piece into two pieces of the vocabulary is a merge; the
    // higher the merged piece's score, the earlier it applies.
    let mergeable = |i: usize| matches!(types[i], TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED);
    let mut ranked: Vec<(usize, usize, usize)> = Vec::new();
    for (merged, piece) in tokens.iter().enumerate() {
        if !mergeable(merged) {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                if mergeable(l) && mergeable(r) {
                    ranked.push((merged, l, r));
                }
            }
        }
    }
    ranked.sort_by(|a, b| {
        scores[b.0]
            .total_cmp(&scores[a.0])
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    let merges = ranked
        .into_iter()
        .map(|(_, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect();
    let unk = unk
        .map(|id| id as usize)
        .or_else(|| types.iter().position(|&t| t == TOKEN_TYPE_UNKNOWN));
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(tokens[unk].clone());
    }
    let bpe = builder.build().map_err(|e| format!("BPE model: {e}"))?;

    let mut normalizers = Vec::new();
    if add_space_prefix {
        normalizers.push(NormalizerWrapper::Prepend(Prepend::new("▁".into())));
    }
    normalizers.push(NormalizerWrapper::Replace(
        Replace::new(" ", "▁").map_err(|e| e.to_string())?,
    ));
    let mut decoders = vec![
        DecoderWrapper::Replace(Replace::new("▁", " ").map_err(|e| e.to_string())?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if add_space_prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(
            normalizers,
        ))))
        .map_err(|e| e.to_string())?;
    tokenizer.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(
        decoders,
    ))));
    Ok(tokenizer)
}

/// Registers the vocabulary's control tokens as special tokens (matched whole in text,
/// skipped by `decode_with(_, true)`) and its user-defined tokens as added tokens (matched
/// whole, decoded as text).
fn add_listed_tokens(
    inner: &mut Tokenizer,
    tokens: &[String],
    types: &[i32],
) -> Result<(), String> {
    let listed = |wanted: i32| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|(_, &t)| t == wanted)
            .map(|(text, _)| {
                AddedToken::from(text.clone(), wanted == TOKEN_TYPE_CONTROL).normalized(false)
            })
            .collect()
    };
    inner
        .add_special_tokens(listed(TOKEN_TYPE_CONTROL))
        .map_err(|e| format!("adding control tokens: {e}"))?;
    inner
        .add_tokens(listed(TOKEN_TYPE_USER_DEFINED))
        .map_err(|e| format!("adding user-defined tokens: {e}"))?;
    Ok(())
}

/// The ids that end generation: those the metadata names (EOS, end-of-turn,
/// end-of-message), then, as llama.cpp does, every control token whose text is a well-known
/// end-of-generation marker. No duplicates; named ids first.
fn end_of_generation_ids(tokens: &[String], types: &[i32], named: &[Option<u32>]) -> Vec<u32> {
    let by_text = tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (text, &t))| {
            t == TOKEN_TYPE_CONTROL && END_OF_GENERATION.contains(&text.as_str())
        })
        .map(|(id, _)| id as u32);
    let mut ids: Vec<u32> = Vec::new();
    for id in named.iter().flatten().copied().chain(by_text) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Token text → id. When a text appears twice, the last id wins, as in llama.cpp and in
/// transformers' GGUF conversion.
fn vocab_map(tokens: &[String]) -> AHashMap<String, u32> {
    let mut vocab = AHashMap::with_capacity(tokens.len());
    for (id, text) in tokens.iter().enumerate() {
        // from_gguf refuses vocabularies of more than u32::MAX entries before we get here.
        let id = u32::try_from(id).expect("vocabulary length checked against u32 in from_gguf");
        vocab.insert(text.clone(), id);
    }
    vocab
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error_naming_it() {
        let err = pre_split_for("mystery-pre").err().unwrap();
        assert!(err.contains("\"mystery-pre\""), "{err}");
    }

    #[test]
    fn every_supported_pre_tokenizer_builds() {
        for pre in ["gpt2", "smollm", "llama-bpe", "qwen2", "default"] {
            let split = pre_split_for(pre).unwrap_or_else(|e| panic!("{pre}: {e}"));
            byte_level_bpe(&strings(&["a", "b", "ab"]), &strings(&["a b"]), &split)
                .unwrap_or_else(|e| panic!("{pre}: {e}"));
        }
    }

    #[test]
    fn sentencepiece_merges_by_score_and_falls_back_to_bytes() {
        // <unk>, <s>, </s>, byte tokens for '\n' and 'é' (C3 A9), pieces.
        let tokens = strings(&[
            "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "h", "i", "▁h", "▁hi", "hi",
        ]);
        let scores = [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -3.0, -1.5, -5.0,
        ];
        let types = [2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1];
        let mut tok = sentencepiece_bpe(&tokens, &scores, &types, Some(0), true).unwrap();
        tok.add_special_tokens([
            AddedToken::from("<s>", true).normalized(false),
            AddedToken::from("</s>", true).normalized(false),
        ])
        .unwrap();
        let ids = tok.encode("hi\né", false).unwrap().get_ids().to_vec();
        // "▁hi" (score -1.5) beats "hi" (score -5): ▁ + h → ▁h, then ▁h + i → ▁hi.
        assert_eq!(ids, vec![10, 3, 4, 5]);
        assert_eq!(tok.decode(&ids, false).unwrap(), "hi\né");
        let ids = tok.encode("<s>hi", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![1, 10]);
    }

    #[test]
    fn common_prefix_stops_at_char_boundaries() {
        assert_eq!(common_prefix_len("abc", "abd"), 2);
        assert_eq!(common_prefix_len("ab", "abc"), 2);
        assert_eq!(common_prefix_len("é", "è"), 0);
    }
}
