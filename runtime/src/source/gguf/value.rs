//! GGUF metadata values: the 13 value types, decoded scalars, and located (not decoded)
//! arrays.

use std::fmt;

/// The value types a GGUF metadata entry can have, with their ids in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MetaType {
    /// Unsigned 8-bit integer (id 0).
    U8 = 0,
    /// Signed 8-bit integer (id 1).
    I8 = 1,
    /// Unsigned 16-bit integer (id 2).
    U16 = 2,
    /// Signed 16-bit integer (id 3).
    I16 = 3,
    /// Unsigned 32-bit integer (id 4).
    U32 = 4,
    /// Signed 32-bit integer (id 5).
    I32 = 5,
    /// IEEE 754 single precision (id 6).
    F32 = 6,
    /// One byte, 0 or 1 (id 7).
    Bool = 7,
    /// UTF-8 string: a u64 byte length, then the bytes (id 8).
    String = 8,
    /// Array: a u32 element type, a u64 length, then the elements (id 9).
    Array = 9,
    /// Unsigned 64-bit integer (id 10).
    U64 = 10,
    /// Signed 64-bit integer (id 11).
    I64 = 11,
    /// IEEE 754 double precision (id 12).
    F64 = 12,
}

impl MetaType {
    /// Every value type, in id order.
    pub const ALL: [MetaType; 13] = [
        MetaType::U8,
        MetaType::I8,
        MetaType::U16,
        MetaType::I16,
        MetaType::U32,
        MetaType::I32,
        MetaType::F32,
        MetaType::Bool,
        MetaType::String,
        MetaType::Array,
        MetaType::U64,
        MetaType::I64,
        MetaType::F64,
    ];

    /// The type's id in GGUF files.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// The type with GGUF id `id`, if there is one.
    pub fn from_id(id: u32) -> Option<MetaType> {
        MetaType::ALL.get(id as usize).copied()
    }

    /// Bytes per value for fixed-size types; `None` for strings and arrays.
    pub const fn fixed_size(self) -> Option<u64> {
        match self {
            MetaType::U8 | MetaType::I8 | MetaType::Bool => Some(1),
            MetaType::U16 | MetaType::I16 => Some(2),
            MetaType::U32 | MetaType::I32 | MetaType::F32 => Some(4),
            MetaType::U64 | MetaType::I64 | MetaType::F64 => Some(8),
            MetaType::String | MetaType::Array => None,
        }
    }

    /// The fewest bytes one value of this type takes in a file (a string's length field, an
    /// array's type and length fields).
    pub const fn min_size(self) -> u64 {
        match self.fixed_size() {
            Some(n) => n,
            None if matches!(self, MetaType::String) => 8,
            None => 12,
        }
    }

    /// Lower-case name used in messages (`"u32"`, `"string"`, `"array"`).
    pub const fn name(self) -> &'static str {
        match self {
            MetaType::U8 => "u8",
            MetaType::I8 => "i8",
            MetaType::U16 => "u16",
            MetaType::I16 => "i16",
            MetaType::U32 => "u32",
            MetaType::I32 => "i32",
            MetaType::F32 => "f32",
            MetaType::Bool => "bool",
            MetaType::String => "string",
            MetaType::Array => "array",
            MetaType::U64 => "u64",
            MetaType::I64 => "i64",
            MetaType::F64 => "f64",
        }
    }
}

impl fmt::Display for MetaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata array as located in the file: its element type, its length and where its
/// elements start. It holds no elements (it is `Copy`): opening a file only skips over
/// arrays, and [`GgufFile::array_values`](super::GgufFile::array_values) or the typed
/// getters decode them on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaArray {
    pub(super) elem_type: MetaType,
    pub(super) len: u64,
    pub(super) offset: u64,
    pub(super) end: u64,
    pub(super) depth: u32,
}

impl MetaArray {
    /// The type of every element.
    pub fn elem_type(&self) -> MetaType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute file offset of the first element.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes the elements take in the file.
    pub fn byte_len(&self) -> u64 {
        self.end - self.offset
    }

    /// How deeply this array is nested (0 for the value of a metadata key, 1 for an array
    /// inside it, ...).
    pub fn depth(&self) -> u32 {
        self.depth
    }
}

/// One metadata value. Scalars and strings are decoded when the file is opened; arrays are
/// only located (see [`MetaArray`]).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Unsigned 8-bit integer.
    U8(u8),
    /// Signed 8-bit integer.
    I8(i8),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Signed 16-bit integer.
    I16(i16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Signed 32-bit integer.
    I32(i32),
    /// Single-precision float.
    F32(f32),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Signed 64-bit integer.
    I64(i64),
    /// Double-precision float.
    F64(f64),
    /// An array, located but not decoded.
    Array(MetaArray),
}

impl MetaValue {
    /// The value's GGUF type.
    pub fn meta_type(&self) -> MetaType {
        match self {
            MetaValue::U8(_) => MetaType::U8,
            MetaValue::I8(_) => MetaType::I8,
            MetaValue::U16(_) => MetaType::U16,
            MetaValue::I16(_) => MetaType::I16,
            MetaValue::U32(_) => MetaType::U32,
            MetaValue::I32(_) => MetaType::I32,
            MetaValue::F32(_) => MetaType::F32,
            MetaValue::Bool(_) => MetaType::Bool,
            MetaValue::String(_) => MetaType::String,
            MetaValue::U64(_) => MetaType::U64,
            MetaValue::I64(_) => MetaType::I64,
            MetaValue::F64(_) => MetaType::F64,
            MetaValue::Array(_) => MetaType::Array,
        }
    }

    /// The type's name for messages (`"u32"`, `"string"`, `"array"`).
    pub fn type_name(&self) -> &'static str {
        self.meta_type().name()
    }

    /// The value as a signed 128-bit integer, for any integer type (not bool or float).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as `u64`, for any integer type whose value fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as `f64`, for `F32` and `F64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The string, for `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The located array, for `Array`.
    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}
