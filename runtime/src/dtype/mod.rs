//! Element and block formats: what a tensor's bytes mean, and how to turn them into `f32`.
//!
//! Quantized formats store a row as a sequence of fixed-size *blocks*; each block holds
//! `block_size()` values in `type_size()` bytes. Layouts follow ggml (GGUF), little-endian.

mod quant;
mod rowdot;

pub(crate) use quant::dequantize_here;
pub use quant::{dequantize, dequantize_block, dot};
pub use rowdot::{dot_rows, dot_rows_prepared, kernel_isa, Prepared};

use std::fmt;

/// A tensor's storage format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[allow(non_camel_case_types)]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 32 values: f16 scale, 4-bit values offset by 8.
    Q4_0,
    /// 32 values: f16 scale and minimum, 4-bit values.
    Q4_1,
    /// 32 values: f16 scale, 5-bit values offset by 16.
    Q5_0,
    /// 32 values: f16 scale and minimum, 5-bit values.
    Q5_1,
    /// 32 values: f16 scale, 8-bit signed values.
    Q8_0,
    /// 256 values in 16 sub-blocks: 4-bit scales and minimums, 2-bit values.
    Q2_K,
    /// 256 values in 16 sub-blocks: 6-bit scales, 3-bit values.
    Q3_K,
    /// 256 values in 8 sub-blocks: 6-bit scales and minimums, 4-bit values.
    Q4_K,
    /// 256 values in 8 sub-blocks: 6-bit scales and minimums, 5-bit values.
    Q5_K,
    /// 256 values in 16 sub-blocks: 8-bit scales, 6-bit values.
    Q6_K,
    /// 256 values: f32 scale, 8-bit values, 16 block sums (an activation format).
    Q8_K,
}

impl DType {
    /// Every dtype, in ggml id order.
    pub const ALL: [DType; 14] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
        DType::Q8_K,
    ];

    /// Values per block (1 for plain floats).
    pub const fn block_size(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => 32,
            DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K | DType::Q8_K => {
                256
            }
        }
    }

    /// Bytes per block.
    pub const fn type_size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q2_K => 84,
            DType::Q3_K => 110,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
            DType::Q8_K => 292,
        }
    }

    /// Whether values are stored in blocks with shared scales.
    pub const fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes taken by `n` values, or `None` when `n` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// The ggml type id used in GGUF tensor tables.
    pub const fn gguf_id(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 6,
            DType::Q5_1 => 7,
            DType::Q8_0 => 8,
            DType::Q2_K => 10,
            DType::Q3_K => 11,
            DType::Q4_K => 12,
            DType::Q5_K => 13,
            DType::Q6_K => 14,
            DType::Q8_K => 15,
            DType::BF16 => 30,
        }
    }

    /// The dtype with ggml type id `id`, if this build reads it.
    pub fn from_gguf_id(id: u32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.gguf_id() == id)
    }

    /// The name used by ggml and in this crate's messages (`"Q4_K"`, `"F32"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q2_K => "Q2_K",
            DType::Q3_K => "Q3_K",
            DType::Q4_K => "Q4_K",
            DType::Q5_K => "Q5_K",
            DType::Q6_K => "Q6_K",
            DType::Q8_K => "Q8_K",
        }
    }

    /// The dtype named `name` (case-insensitive), as printed by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
