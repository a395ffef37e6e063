//! A forward cursor over a [`Mapping`] that reads GGUF's little-endian fields.
//!
//! When the file is memory-mapped the cursor reads the map directly. Otherwise it keeps a
//! read-ahead window (64 KiB, or one field if that is larger) filled by positioned reads, so
//! skipping a 50 000-string tokenizer array costs a few dozen reads, not 50 000.

use super::value::{MetaArray, MetaType, MetaValue};
use crate::error::{Error, Result};
use crate::source::Mapping;

/// Size of one read-ahead refill when the file is not mapped.
const READ_AHEAD: usize = 64 * 1024;

/// Arrays nested deeper than this (an array inside an array inside ...) are refused, so a
/// hostile file cannot recurse without bound.
pub(super) const MAX_ARRAY_DEPTH: u32 = 8;

/// A position in a GGUF file plus the bytes around it.
pub(super) struct Cursor<'a> {
    mapping: &'a Mapping,
    /// The whole file, when it is mapped.
    mapped: Option<&'a [u8]>,
    /// Read-ahead bytes starting at `window_start` (unmapped files only).
    window: Vec<u8>,
    window_start: u64,
    pos: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos`.
    pub(super) fn new(mapping: &'a Mapping, pos: u64) -> Cursor<'a> {
        let mapped = usize::try_from(mapping.len())
            .ok()
            .and_then(|len| mapping.mapped_slice(0, len).ok().flatten());
        Cursor {
            mapping,
            mapped,
            window: Vec::new(),
            window_start: 0,
            pos,
        }
    }

    /// The absolute offset of the next byte to read.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The file's path, for messages.
    pub(super) fn path(&self) -> &std::path::Path {
        self.mapping.path()
    }

    /// Bytes between the cursor and the end of the file.
    pub(super) fn remaining(&self) -> u64 {
        self.mapping.len().saturating_sub(self.pos)
    }

    /// A `Corrupt` error about this file at `offset`.
    pub(super) fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.mapping.path().to_path_buf(),
            format: "GGUF",
            offset,
            reason: reason.into(),
        }
    }

    /// Errors unless `n` more bytes exist; `what` names the field for the message.
    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        if n > self.remaining() {
            return Err(self.corrupt(
                self.pos,
                format!(
                    "file ends inside {}: {n} bytes needed, {} left",
                    what(),
                    self.remaining()
                ),
            ));
        }
        Ok(())
    }

    /// The next `n` bytes, advancing past them.
    pub(super) fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&[u8]> {
        self.need(n as u64, what)?;
        let start = self.pos;
        self.pos += n as u64;
        if let Some(bytes) = self.mapped {
            // `need` checked start + n <= len, and len fits usize because the file is mapped.
            return Ok(&bytes[start as usize..start as usize + n]);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if start < self.window_start || start + n as u64 > window_end {
            let fill = n.max(READ_AHEAD) as u64;
            let fill = fill.min(self.mapping.len() - start) as usize;
            self.window.resize(fill, 0);
            self.window_start = start;
            if let Err(e) = self.mapping.read_exact_at(start, &mut self.window) {
                self.window.clear();
                return Err(e);
            }
        }
        let at = (start - self.window_start) as usize;
        Ok(&self.window[at..at + n])
    }

    /// Moves past `n` bytes without reading them.
    pub(super) fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.need(n, what)?;
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A little-endian `u32`.
    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string (u64 length, UTF-8 bytes). Invalid UTF-8 is an error naming its offset.
    pub(super) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len_at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(self.corrupt(
                len_at,
                format!(
                    "{} has length {len}, but only {} bytes remain in the file",
                    what(),
                    self.remaining()
                ),
            ));
        }
        let at = self.pos;
        let bytes = self.take(len as usize, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => {
                let bad = at + e.valid_up_to() as u64;
                Err(self.corrupt(
                    bad,
                    format!("{} is not valid UTF-8 (at byte {bad})", what()),
                ))
            }
        }
    }

    /// Moves past a GGUF string without reading its bytes.
    pub(super) fn skip_string(&mut self, what: &dyn Fn() -> String) -> Result<()> {
        let len_at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(self.corrupt(
                len_at,
                format!(
                    "{} has length {len}, but only {} bytes remain in the file",
                    what(),
                    self.remaining()
                ),
            ));
        }
        self.pos += len;
        Ok(())
    }

    /// Moves past `count` consecutive GGUF strings (a tokenizer's vocabulary or merges)
    /// without reading their bytes. Strings that lie wholly in the bytes at hand (the map,
    /// or the read-ahead window) are stepped over in a tight loop; the others, and every
    /// error, go through [`Cursor::skip_string`].
    fn skip_strings(&mut self, count: u64, what: &dyn Fn(u64) -> String) -> Result<()> {
        let mut i = 0;
        while i < count {
            let (bytes, base) = match self.mapped {
                Some(bytes) => (bytes, 0),
                None => (self.window.as_slice(), self.window_start),
            };
            let mut at = self.pos.saturating_sub(base) as usize;
            if self.pos >= base {
                while i < count && bytes.len().saturating_sub(at) >= 8 {
                    let len = u64::from_le_bytes(
                        bytes[at..at + 8]
                            .try_into()
                            .expect("an 8-byte slice converts to [u8; 8]"),
                    );
                    match len.checked_add(8) {
                        Some(n) if n <= (bytes.len() - at) as u64 => at += n as usize,
                        _ => break,
                    }
                    i += 1;
                }
                self.pos = base + at as u64;
            }
            if i < count {
                self.skip_string(&|| what(i))?;
                i += 1;
            }
        }
        Ok(())
    }

    /// A value type id, checked.
    pub(super) fn meta_type(&mut self, what: &dyn Fn() -> String) -> Result<MetaType> {
        let at = self.pos;
        let id = self.u32(&|| format!("the value type of {}", what()))?;
        MetaType::from_id(id).ok_or_else(|| {
            self.corrupt(
                at,
                format!(
                    "{} has unknown value type id {id} (GGUF defines 0 to 12)",
                    what()
                ),
            )
        })
    }

    /// One value of type `ty`. Scalars and strings are decoded; an array (at nesting level
    /// `depth`) is located and skipped over.
    pub(super) fn value(
        &mut self,
        ty: MetaType,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<MetaValue> {
        Ok(match ty {
            MetaType::U8 => MetaValue::U8(u8::from_le_bytes(self.array(what)?)),
            MetaType::I8 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            MetaType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            MetaType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            MetaType::U32 => MetaValue::U32(u32::from_le_bytes(self.array(what)?)),
            MetaType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            MetaType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            MetaType::U64 => MetaValue::U64(u64::from_le_bytes(self.array(what)?)),
            MetaType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            MetaType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            MetaType::Bool => {
                let at = self.pos;
                match self.array::<1>(what)?[0] {
                    0 => MetaValue::Bool(false),
                    1 => MetaValue::Bool(true),
                    b => {
                        return Err(self.corrupt(
                            at,
                            format!("{} is a bool stored as {b}; only 0 and 1 are valid", what()),
                        ))
                    }
                }
            }
            MetaType::String => MetaValue::String(self.string(what)?),
            MetaType::Array => MetaValue::Array(self.locate_array(depth, what)?),
        })
    }

    /// Reads an array's header (element type, length), checks that its elements can fit in
    /// the rest of the file, and skips over them.
    pub(super) fn locate_array(
        &mut self,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<MetaArray> {
        let header_at = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.corrupt(
                header_at,
                format!(
                    "{} nests arrays deeper than {MAX_ARRAY_DEPTH} levels",
                    what()
                ),
            ));
        }
        let elem_type = self.meta_type(&|| format!("the elements of {}", what()))?;
        let len_at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        let fits = len
            .checked_mul(elem_type.min_size())
            .is_some_and(|min| min <= self.remaining());
        if !fits {
            return Err(self.corrupt(
                len_at,
                format!(
                    "{} claims {len} {elem_type} elements, which cannot fit in the {} bytes left \
                     in the file",
                    what(),
                    self.remaining()
                ),
            ));
        }
        let offset = self.pos;
        let element = |i: u64| format!("element {i} of {}", what());
        match elem_type.fixed_size() {
            Some(size) => self.skip(len * size, &|| format!("the elements of {}", what()))?,
            None if elem_type == MetaType::String => self.skip_strings(len, &element)?,
            None => {
                for i in 0..len {
                    self.locate_array(depth + 1, &|| element(i))?;
                }
            }
        }
        Ok(MetaArray {
            elem_type,
            len,
            offset,
            end: self.pos,
            depth,
        })
    }
}
