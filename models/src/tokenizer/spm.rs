//! SentencePiece BPE over a GGUF `llama` vocabulary (pieces, scores, token types), held
//! compactly: every piece's bytes in one buffer, an open-addressing index from bytes to id,
//! and no merge table at all.
//!
//! A pair of adjacent pieces `(l, r)` merges when the piece `l + r` is in the vocabulary
//! and all three are mergeable (normal or user-defined); among the possible merges the one
//! whose merged piece scores highest applies first (ties: the lower merged id, then the
//! lower left id, then the leftmost position). That is exactly the order of a merge list
//! ranked by the merged piece's score, which is how SentencePiece BPE vocabularies are
//! converted to merge lists, so the merge list itself (half a million strings for Gemma 3's
//! 262 144 pieces, several times the memory of the vocabulary) is never built.
//!
//! Text is cut first at control and user-defined pieces, matched whole (leftmost, then
//! longest); each stretch between them has `▁` prepended (when the file asks for a space
//! prefix) and its spaces replaced by `▁`, and is merged as one word. Characters outside the
//! vocabulary fall back to `<0xNN>` byte pieces, else to one unknown piece per run.

use super::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_USER_DEFINED};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// No id / no node.
const NONE: u32 = u32::MAX;

/// The SentencePiece word marker that stands for a space.
const SPACE_MARK: &str = "\u{2581}";

/// A SentencePiece BPE vocabulary, ready to encode and decode.
#[derive(Clone)]
pub(crate) struct Spm {
    /// Every piece's bytes, one after another.
    text: Box<[u8]>,
    /// Piece `i` is `text[offsets[i]..offsets[i + 1]]`.
    offsets: Box<[u32]>,
    scores: Box<[f32]>,
    types: Box<[i32]>,
    /// Open addressing, linear probing: `id + 1` of the piece whose bytes hash there, 0 for
    /// an empty slot. When two ids have the same text, the later one is indexed (as
    /// llama.cpp and transformers' conversion do).
    table: Box<[u32]>,
    hasher: ahash::RandomState,
    /// The id of the piece `<0xNN>` for each byte value, `NONE` where there is none.
    bytes: Box<[u32; 256]>,
    unk: Option<u32>,
    add_space_prefix: bool,
    /// Control and user-defined pieces, matched whole in input text.
    added: Trie,
    /// Per id: whether its text is a control piece's (skipped by `decode(_, true)`).
    special: Box<[bool]>,
}

impl std::fmt::Debug for Spm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spm")
            .field("pieces", &self.len())
            .field("unk", &self.unk)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish_non_exhaustive()
    }
}

impl Spm {
    /// Builds the vocabulary; `Err` says what in the metadata is inconsistent.
    pub(crate) fn new(
        tokens: &[String],
        scores: &[f32],
        types: &[i32],
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Spm, String> {
        let n = tokens.len();
        if scores.len() != n {
            return Err(format!(
                "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {n}",
                scores.len()
            ));
        }
        if types.len() != n {
            return Err(format!(
                "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n}",
                types.len()
            ));
        }
        let total: usize = tokens.iter().map(String::len).sum();
        if u32::try_from(n).is_err() || u32::try_from(total).is_err() {
            return Err(format!(
                "{n} pieces of {total} bytes in all: more than 32-bit offsets can address"
            ));
        }
        let mut text = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        for t in tokens {
            text.extend_from_slice(t.as_bytes());
            // In range: the total was checked against u32 above.
            offsets.push(text.len() as u32);
        }
        let slots = (2 * n).max(16).next_power_of_two();
        let mut spm = Spm {
            text: text.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
            scores: scores.into(),
            types: types.into(),
            table: vec![0u32; slots].into_boxed_slice(),
            // Fixed seeds: the index is rebuilt per process and never exposed, so nothing
            // is gained from random ones, and runs stay reproducible.
            hasher: ahash::RandomState::with_seeds(
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ),
            bytes: Box::new([NONE; 256]),
            unk: None,
            add_space_prefix,
            added: Trie::default(),
            special: vec![false; n].into_boxed_slice(),
        };
        for id in 0..n as u32 {
            spm.insert(id);
        }
        for b in 0..=255u8 {
            spm.bytes[b as usize] = spm
                .lookup(format!("<0x{b:02X}>").as_bytes())
                .unwrap_or(NONE);
        }
        let unk = match unk {
            Some(id) if id as usize >= n => {
                return Err(format!(
                    "the unknown token id {id} is outside the vocabulary of {n} pieces"
                ))
            }
            Some(id) => Some(id),
            None => types
                .iter()
                .position(|&t| t == super::TOKEN_TYPE_UNKNOWN)
                .map(|i| i as u32),
        };
        // The id its text indexes (the last of duplicates), as for every other piece.
        spm.unk = unk.and_then(|u| spm.lookup(spm.piece(u)));
        // Control pieces first: a text that is both keeps its control meaning.
        for wanted in [TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED] {
            for id in 0..n {
                if types[id] != wanted || tokens[id].is_empty() {
                    continue;
                }
                let Some(indexed) = spm.lookup(tokens[id].as_bytes()) else {
                    continue;
                };
                if spm.added.insert(tokens[id].as_bytes(), indexed) && wanted == TOKEN_TYPE_CONTROL
                {
                    spm.special[indexed as usize] = true;
                }
            }
        }
        // Every id whose text is a control piece's is special, duplicates included.
        for (id, token) in tokens.iter().enumerate() {
            if let Some(indexed) = spm.lookup(token.as_bytes()) {
                spm.special[id] = spm.special[indexed as usize];
            }
        }
        Ok(spm)
    }

    /// Number of pieces.
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.text[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The text of piece `id`.
    pub(crate) fn piece_str(&self, id: u32) -> Option<&str> {
        if id as usize >= self.len() {
            return None;
        }
        // Pieces were copied from `String`s whole, so each is valid UTF-8.
        std::str::from_utf8(self.piece(id)).ok()
    }

    fn insert(&mut self, id: u32) {
        let mask = self.table.len() - 1;
        let mut slot = self.hasher.hash_one(self.piece(id)) as usize & mask;
        loop {
            match self.table[slot] {
                0 => break,
                other if self.piece(other - 1) == self.piece(id) => break,
                _ => slot = (slot + 1) & mask,
            }
        }
        self.table[slot] = id + 1;
    }

    /// The id whose piece is `bytes` (the last such id).
    pub(crate) fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut slot = self.hasher.hash_one(bytes) as usize & mask;
        loop {
            match self.table[slot] {
                0 => return None,
                id if self.piece(id - 1) == bytes => return Some(id - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    fn mergeable(&self, id: u32) -> bool {
        matches!(
            self.types[id as usize],
            TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED
        )
    }

    /// The piece `l + r`, if the pair merges.
    fn merge_of(&self, l: u32, r: u32, scratch: &mut Vec<u8>) -> Option<u32> {
        if !self.mergeable(l) || !self.mergeable(r) {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(self.piece(l));
        scratch.extend_from_slice(self.piece(r));
        self.lookup(scratch).filter(|&m| self.mergeable(m))
    }

    /// Whether `id` is a control piece (or has a control piece's text).
    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The ids of `text` (no BOS/EOS).
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        let mut plain_from = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            match self.added.longest_at(bytes, i) {
                Some((end, id)) => {
                    self.encode_plain(&text[plain_from..i], &mut out)?;
                    out.push(id);
                    i = end;
                    plain_from = end;
                }
                None => i += 1,
            }
        }
        self.encode_plain(&text[plain_from..], &mut out)?;
        Ok(out)
    }

    /// A stretch of text without control or user-defined pieces: normalized, then merged
    /// as one word.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let mut word = String::with_capacity(text.len() + 3 * (text.len() / 4 + 1));
        if self.add_space_prefix {
            word.push_str(SPACE_MARK);
        }
        for c in text.chars() {
            match c {
                ' ' => word.push_str(SPACE_MARK),
                c => word.push(c),
            }
        }
        self.merge_word(&word, out)
    }

    fn merge_word(&self, word: &str, out: &mut Vec<u32>) -> Result<(), String> {
        // One symbol per character: its piece, else its byte pieces, else the unknown
        // piece. Unknown characters are fused into one unknown piece, which is placed when
        // the next character with a piece of its own (or the end) comes; characters given
        // as byte pieces neither end the run nor wait for it (the order of the `tokenizers`
        // crate's BPE with byte fallback and fused unknowns, which only matters in a
        // vocabulary that lacks some byte pieces).
        let mut ids: Vec<u32> = Vec::with_capacity(word.len());
        let mut unknown = false;
        let unk = self.unk;
        let mut buf = [0u8; 4];
        for c in word.chars() {
            let s = c.encode_utf8(&mut buf).as_bytes();
            if let Some(id) = self.lookup(s) {
                if std::mem::take(&mut unknown) {
                    ids.extend(unk);
                }
                ids.push(id);
            } else if s.iter().all(|&b| self.bytes[b as usize] != NONE) {
                ids.extend(s.iter().map(|&b| self.bytes[b as usize]));
            } else if unk.is_some() {
                unknown = true;
            } else {
                return Err(format!(
                    "character {c:?} (U+{:04X}) is not in the vocabulary, which has neither \
                     its byte pieces nor an unknown piece",
                    c as u32
                ));
            }
        }
        if unknown {
            ids.extend(unk);
        }
        let n = ids.len();
        if n < 2 {
            out.extend_from_slice(&ids);
            return Ok(());
        }
        // Doubly linked symbols; a merged-away symbol's id becomes NONE.
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<u32> = (1..=n as u32)
            .map(|i| if i as usize == n { NONE } else { i })
            .collect();
        let mut scratch = Vec::new();
        let mut heap = BinaryHeap::with_capacity(n);
        let candidate = |pos: u32, l: u32, r: u32, scratch: &mut Vec<u8>| {
            self.merge_of(l, r, scratch).map(|m| Merge {
                score: self.scores[m as usize],
                merged: m,
                left: l,
                pos,
            })
        };
        for pos in 0..n - 1 {
            if let Some(m) = candidate(pos as u32, ids[pos], ids[pos + 1], &mut scratch) {
                heap.push(m);
            }
        }
        while let Some(top) = heap.pop() {
            let pos = top.pos as usize;
            if ids[pos] == NONE || next[pos] == NONE {
                continue;
            }
            let right = next[pos] as usize;
            // Stale: one side has merged since; the pair now makes another piece or none.
            if self.merge_of(ids[pos], ids[right], &mut scratch) != Some(top.merged) {
                continue;
            }
            ids[pos] = top.merged;
            ids[right] = NONE;
            next[pos] = next[right];
            if next[pos] != NONE {
                prev[next[pos] as usize] = pos as u32;
            }
            if prev[pos] != NONE {
                let p = prev[pos] as usize;
                if let Some(m) = candidate(p as u32, ids[p], ids[pos], &mut scratch) {
                    heap.push(m);
                }
            }
            if next[pos] != NONE {
                let q = next[pos] as usize;
                if let Some(m) = candidate(pos as u32, ids[pos], ids[q], &mut scratch) {
                    heap.push(m);
                }
            }
        }
        out.extend(ids.into_iter().filter(|&id| id != NONE));
        Ok(())
    }

    /// The text of `ids` (all below [`len`](Spm::len)): `▁` back to spaces, runs of byte
    /// pieces back to their UTF-8 text (each byte of an invalid run as U+FFFD), and with a
    /// space prefix, the first leading space dropped.
    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut out = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let flush = |pending: &mut Vec<u8>, out: &mut String| {
            if pending.is_empty() {
                return;
            }
            match std::str::from_utf8(pending) {
                Ok(s) => out.push_str(s),
                Err(_) => out.extend(std::iter::repeat_n(
                    char::REPLACEMENT_CHARACTER,
                    pending.len(),
                )),
            }
            pending.clear();
        };
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            let Some(piece) = self.piece_str(id) else {
                continue;
            };
            // `▁` back to a space before the byte-piece test, as the reference decoder does.
            let piece = match piece.contains(SPACE_MARK) {
                true => std::borrow::Cow::Owned(piece.replace(SPACE_MARK, " ")),
                false => std::borrow::Cow::Borrowed(piece),
            };
            match byte_piece(&piece) {
                Some(b) => pending.push(b),
                None => {
                    flush(&mut pending, &mut out);
                    out.push_str(&piece);
                }
            }
        }
        flush(&mut pending, &mut out);
        if self.add_space_prefix && out.starts_with(' ') {
            out.remove(0);
        }
        out
    }
}

/// The byte a `<0xNN>` piece stands for.
fn byte_piece(piece: &str) -> Option<u8> {
    if piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>') {
        u8::from_str_radix(&piece[3..5], 16).ok()
    } else {
        None
    }
}

/// A possible merge of the symbol at `pos` with the next one; the heap pops the best first.
#[derive(Debug, Clone, Copy)]
struct Merge {
    score: f32,
    merged: u32,
    left: u32,
    pos: u32,
}

impl Ord for Merge {
    /// Greater is applied first: higher score, then lower merged id, lower left id, lower
    /// position.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.merged.cmp(&self.merged))
            .then(other.left.cmp(&self.left))
            .then(other.pos.cmp(&self.pos))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Merge {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Merge {}

/// A byte trie of the pieces matched whole in input text.
#[derive(Debug, Clone)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    first_child: u32,
    next_sibling: u32,
    byte: u8,
    /// The piece that ends here, `NONE` if none.
    id: u32,
}

impl Default for Trie {
    fn default() -> Trie {
        Trie {
            nodes: vec![Node {
                first_child: NONE,
                next_sibling: NONE,
                byte: 0,
                id: NONE,
            }],
        }
    }
}

impl Trie {
    fn child(&self, node: u32, byte: u8) -> Option<u32> {
        let mut c = self.nodes[node as usize].first_child;
        while c != NONE {
            let n = &self.nodes[c as usize];
            if n.byte == byte {
                return Some(c);
            }
            c = n.next_sibling;
        }
        None
    }

    /// Adds `bytes` as piece `id`; false (and nothing changes) if it is there already.
    fn insert(&mut self, bytes: &[u8], id: u32) -> bool {
        let mut node = 0u32;
        for &b in bytes {
            node = match self.child(node, b) {
                Some(c) => c,
                None => {
                    let c = self.nodes.len() as u32;
                    let first = self.nodes[node as usize].first_child;
                    self.nodes.push(Node {
                        first_child: NONE,
                        next_sibling: first,
                        byte: b,
                        id: NONE,
                    });
                    self.nodes[node as usize].first_child = c;
                    c
                }
            };
        }
        let n = &mut self.nodes[node as usize];
        if n.id != NONE {
            return false;
        }
        n.id = id;
        true
    }

    /// The longest piece that starts at `text[at..]`: its end and id.
    fn longest_at(&self, text: &[u8], at: usize) -> Option<(usize, u32)> {
        let mut node = 0u32;
        let mut best = None;
        for (i, &b) in text[at..].iter().enumerate() {
            match self.child(node, b) {
                Some(c) => node = c,
                None => break,
            }
            let id = self.nodes[node as usize].id;
            if id != NONE {
                best = Some((at + i + 1, id));
            }
        }
        best
    }
}
