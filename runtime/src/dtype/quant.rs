//! Dequantization of every block format to `f32`, and [`dot`], the dot product of one
//! quantized row with `f32` activations (its kernels are in `rowdot`).
//!
//! One function per format decodes one block; its comment gives ggml's `block_*` layout.
//! The arithmetic follows ggml's `dequantize_row_*` operation for operation (the same
//! products, in the same order, never fused into a multiply-add), so every value is
//! bit-exact with gguf-py's numpy dequantizer and with ggml's C reference built without FMA
//! contraction. The fixtures in `fixtures/dequant/` pin this.

use super::DType;
use crate::error::Result;
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rayon::prelude::*;

/// Above this many values, [`dequantize`] splits the work across rayon's threads.
const PARALLEL_MIN_VALUES: usize = 1 << 16;
/// Values per parallel task: a multiple of every block size, large enough to amortize a task.
const PARALLEL_CHUNK_VALUES: usize = 1 << 14;

/// Dequantizes `bytes` (a whole number of `dtype` blocks) into `out`, which must hold exactly
/// the number of values those blocks encode; otherwise returns an error and writes nothing.
///
/// Large tensors (more than 64Ki values) are decoded in parallel; the result is the same.
pub fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check_len("dequantize", dtype, bytes.len(), out.len())?;
    if out.len() > PARALLEL_MIN_VALUES {
        let chunk_bytes = PARALLEL_CHUNK_VALUES / dtype.block_size() * dtype.type_size();
        out.par_chunks_mut(PARALLEL_CHUNK_VALUES)
            .zip(bytes.par_chunks(chunk_bytes))
            .for_each(|(y, b)| dequantize_dispatch(dtype, b, y));
    } else {
        dequantize_dispatch(dtype, bytes, out);
    }
    Ok(())
}

/// [`dequantize`] on the calling thread whatever the size (callers that are already one of
/// many parallel tasks, such as `matmul`'s tiles).
pub(crate) fn dequantize_here(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    check_len("dequantize", dtype, bytes.len(), out.len())?;
    dequantize_dispatch(dtype, bytes, out);
    Ok(())
}

/// Dequantizes one block.
///
/// # Panics
///
/// If `block.len()` is not `dtype.type_size()` or `out.len()` is not `dtype.block_size()`;
/// callers slice with those sizes.
pub fn dequantize_block(dtype: DType, block: &[u8], out: &mut [f32]) {
    assert!(
        block.len() == dtype.type_size() && out.len() == dtype.block_size(),
        "dequantize_block {dtype}: got {} bytes and {} values, expected {} and {}",
        block.len(),
        out.len(),
        dtype.type_size(),
        dtype.block_size()
    );
    dequantize_serial(dtype, block, out);
}

/// The dot product of one row of `dtype` values with `f32` activations `x`:
/// `sum_i dequantize(row)[i] * x[i]`, with `f32` activations (not rounded to 8 bits as
/// llama.cpp does).
///
/// This is [`dot_rows`](super::dot_rows) for a single row, with the same fused kernels
/// (scales factored out of each block, multiply-adds, several partial sums), so results
/// may differ from a sequential sum in the last bits. For a matrix, call `dot_rows` once:
/// it checks lengths and picks the kernel once rather than per row.
///
/// Returns an error if `row` does not encode exactly `x.len()` values.
pub fn dot(dtype: DType, row: &[u8], x: &[f32]) -> Result<f32> {
    super::rowdot::dot_one(dtype, row, x)
}

use super::rowdot::check_len;

/// [`dequantize_serial`], compiled for AVX-512 or AVX2 when the CPU has it (same results:
/// no multiply-add is fused, only the vectors are wider), within the row-dot kernels'
/// `LAZYFORGE_CPU_KERNELS` cap.
fn dequantize_dispatch(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if !DEQUANT_AVX2_PREFERRED.contains(&dtype) && super::rowdot::has_avx512() {
        // SAFETY: `dequantize_avx512` only requires AVX-512 F and BW, which `has_avx512`
        // checked the CPU has.
        return unsafe { dequantize_avx512(dtype, bytes, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::rowdot::has_avx2() {
        // SAFETY: `dequantize_avx2` only requires AVX2, which `has_avx2` checked the CPU has.
        return unsafe { dequantize_avx2(dtype, bytes, out) };
    }
    dequantize_serial(dtype, bytes, out)
}

/// Dtypes whose AVX2 dequantization runs even where AVX-512 is available: measured slower in
/// their AVX-512 build on the AVX-512 host of BENCHMARKS.md (Q4_K 9.2 against 10.6 Gvalues/s
/// on one core; Q5_0 gains the most the other way, 12.4 against 6.2).
const DEQUANT_AVX2_PREFERRED: [DType; 1] = [DType::Q4_K];

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn dequantize_avx512(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    dequantize_serial(dtype, bytes, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dequantize_avx2(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    dequantize_serial(dtype, bytes, out)
}

/// Runs the block decoder `decode` (an `fn(&[u8; TS], &mut [f32; BS])`) on each block of
/// `bytes` and its slot in `out`. Fixed-size arrays let the compiler drop bounds checks and
/// vectorize the per-format loops. A macro, not a function taking `impl Fn`: through `Fn`
/// the decoder was called as a separate function compiled without the caller's AVX-512 or
/// AVX2 features (measured: 3.4% of Gemma 3's prefill in baseline-x86 Q4_K and Q6_K loops);
/// called directly it is inlined into them.
///
/// `outlined decode` calls it through an opaque function pointer instead, for Q4_0 and Q4_1:
/// inlined, LLVM vectorizes their 16-byte nibble loops across blocks (byte-by-byte inserts
/// from four blocks at a time) instead of within one, about 2x slower (measured on one core,
/// 8 rows of 640 values: 1.4-3.1 against 5.1-5.4 Gvalues/s).
macro_rules! each_block {
    ($bytes:expr, $out:expr, outlined $decode:ident) => {
        each_block!(@run $bytes, $out, $decode, std::hint::black_box($decode as fn(&_, &mut _)))
    };
    ($bytes:expr, $out:expr, $decode:ident) => {
        each_block!(@run $bytes, $out, $decode, $decode)
    };
    (@run $bytes:expr, $out:expr, $decode:ident, $call:expr) => {{
        let (bytes, out): (&[u8], &mut [f32]) = ($bytes, $out);
        let (ts, bs) = block_sizes($decode as fn(&_, &mut _));
        debug_assert_eq!(bytes.len() / ts * bs, out.len());
        for (b, y) in bytes.chunks_exact(ts).zip(out.chunks_exact_mut(bs)) {
            let b = b.try_into().expect("chunks_exact yields TS bytes");
            let y = y.try_into().expect("chunks_exact_mut yields BS values");
            ($call)(b, y);
        }
    }};
}

/// The block sizes (bytes, values) of a block decoder, read from its type.
#[inline(always)]
const fn block_sizes<const TS: usize, const BS: usize>(
    _: fn(&[u8; TS], &mut [f32; BS]),
) -> (usize, usize) {
    (TS, BS)
}

/// Dequantizes whole blocks on the calling thread; lengths are already checked.
#[inline(always)]
fn dequantize_serial(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        DType::F32 => each_block!(bytes, out, dequantize_f32),
        DType::F16 => dequantize_f16_run(bytes, out),
        DType::BF16 => each_block!(bytes, out, dequantize_bf16),
        DType::Q4_0 => each_block!(bytes, out, outlined dequantize_q4_0),
        DType::Q4_1 => each_block!(bytes, out, outlined dequantize_q4_1),
        DType::Q5_0 => each_block!(bytes, out, dequantize_q5_0),
        DType::Q5_1 => each_block!(bytes, out, dequantize_q5_1),
        DType::Q8_0 => each_block!(bytes, out, dequantize_q8_0),
        DType::Q2_K => each_block!(bytes, out, dequantize_q2_k),
        DType::Q3_K => each_block!(bytes, out, dequantize_q3_k),
        DType::Q4_K => each_block!(bytes, out, dequantize_q4_k),
        DType::Q5_K => each_block!(bytes, out, dequantize_q5_k),
        DType::Q6_K => each_block!(bytes, out, dequantize_q6_k),
        DType::Q8_K => each_block!(bytes, out, dequantize_q8_k),
    }
}

/// Reads the little-endian f16 at `b[i..i + 2]` as f32 (exact). The portable conversion
/// inlines into the block loops, where a scale or two per block is converted.
#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32_const()
}

/// F32: one little-endian IEEE 754 single.
#[inline(always)]
fn dequantize_f32(b: &[u8; 4], y: &mut [f32; 1]) {
    y[0] = f32::from_le_bytes(*b);
}

/// F16: little-endian IEEE 754 halves, converted (exactly) a run at a time so that the
/// hardware conversion is used where the CPU has one.
fn dequantize_f16_run(bytes: &[u8], out: &mut [f32]) {
    const RUN: usize = 64;
    let mut bits = [0u16; RUN];
    for (b, y) in bytes.chunks(2 * RUN).zip(out.chunks_mut(RUN)) {
        let bits = &mut bits[..y.len()];
        for (h, c) in bits.iter_mut().zip(b.chunks_exact(2)) {
            *h = u16::from_le_bytes([c[0], c[1]]);
        }
        bits.reinterpret_cast::<f16>().convert_to_f32_slice(y);
    }
}

/// BF16: the top 16 bits of an f32, little-endian. A plain shift, as in ggml, so even
/// signalling NaNs keep their bits.
#[inline(always)]
fn dequantize_bf16(b: &[u8; 2], y: &mut [f32; 1]) {
    y[0] = f32::from_bits((u16::from_le_bytes(*b) as u32) << 16);
}

/// Q4_0, 18 bytes: `d: f16`, `qs[16]`. Value `j` (< 16) is the low nibble of `qs[j]`, value
/// `j + 16` its high nibble; `y = (q - 8) * d`.
#[inline(always)]
fn dequantize_q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1, 20 bytes: `d: f16`, `m: f16`, `qs[16]`. Nibbles as in Q4_0; `y = q * d + m`.
#[inline(always)]
fn dequantize_q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Q5_0, 22 bytes: `d: f16`, `qh: u32` (bit `i` is the fifth bit of value `i`), `qs[16]`
/// (low nibbles as in Q4_0); `y = (q - 16) * d`.
#[inline(always)]
fn dequantize_q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        // A mask test rather than ggml's per-value shift (same bits): it vectorizes.
        let h0 = if qh & (1 << j) != 0 { 0x10 } else { 0 };
        let h1 = if qh & (1 << (j + 16)) != 0 { 0x10 } else { 0 };
        y[j] = (((qs[j] & 0x0F) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = (((qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// Q5_1, 24 bytes: `d: f16`, `m: f16`, `qh: u32`, `qs[16]`, bits as in Q5_0;
/// `y = q * d + m`.
#[inline(always)]
fn dequantize_q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = if qh & (1 << j) != 0 { 0x10 } else { 0 };
        let h1 = if qh & (1 << (j + 16)) != 0 { 0x10 } else { 0 };
        y[j] = ((qs[j] & 0x0F) | h0) as f32 * d + m;
        y[j + 16] = ((qs[j] >> 4) | h1) as f32 * d + m;
    }
}

/// Q8_0, 34 bytes: `d: f16`, `qs[32]: i8`; `y = q * d`.
#[inline(always)]
fn dequantize_q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = (q as i8) as f32 * d;
    }
}

/// `y[16 s + l] = scale[s] * q[16 s + l] - min[s]` over the sixteen 16-value sub-blocks of
/// a K-quant block. `l` is the outer loop so that the compiler vectorizes along a sub-block
/// (in the other order it unrolls the 16 values and vectorizes across sub-blocks, with
/// gathers).
#[inline(always)]
fn scale_sub_blocks_16(y: &mut [f32; 256], q: &[i8; 256], scale: &[f32; 16], min: &[f32; 16]) {
    for l in 0..16 {
        for s in 0..16 {
            y[16 * s + l] = scale[s] * q[16 * s + l] as f32 - min[s];
        }
    }
}

/// As [`scale_sub_blocks_16`], without a minimum: `y[16 s + l] = scale[s] * q[16 s + l]`.
#[inline(always)]
fn scale_sub_blocks_16_no_min(y: &mut [f32; 256], q: &[i8; 256], scale: &[f32; 16]) {
    for l in 0..16 {
        for s in 0..16 {
            y[16 * s + l] = scale[s] * q[16 * s + l] as f32;
        }
    }
}

/// Q2_K, 84 bytes: `scales[16]`, `qs[64]`, `d: f16`, `dmin: f16`. Sixteen sub-blocks of 16
/// values; sub-block `s` has scale `d * (scales[s] & 15)` and minimum
/// `dmin * (scales[s] >> 4)`. Each half of 128 values reads its 32 bytes of `qs` in four
/// passes, two bits at a time (shift 0, 2, 4, 6); `y = dl * q - ml`.
#[inline(always)]
fn dequantize_q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut q = [0i8; 256];
    for (q, qs) in q.chunks_exact_mut(128).zip(qs.chunks_exact(32)) {
        for (pass, q) in q.chunks_exact_mut(32).enumerate() {
            for (q, &b) in q.iter_mut().zip(qs) {
                *q = ((b >> (2 * pass)) & 3) as i8;
            }
        }
    }
    let (mut dl, mut ml) = ([0f32; 16], [0f32; 16]);
    for ((dl, ml), &sc) in dl.iter_mut().zip(&mut ml).zip(scales) {
        *dl = d * (sc & 0x0F) as f32;
        *ml = dmin * (sc >> 4) as f32;
    }
    scale_sub_blocks_16(y, &q, &dl, &ml);
}

/// Q3_K, 110 bytes: `hmask[32]`, `qs[64]`, `scales[12]`, `d: f16`. Sixteen sub-blocks of 16
/// values. Low two bits come from `qs` as in Q2_K; the third bit of value `i` is bit
/// `i / 32` of `hmask[i % 32]`, and a clear bit subtracts 4. Scales are 6-bit, offset by
/// 32: the low nibbles are in `scales[0..8]` (sub-blocks 0-7 low nibble, 8-15 high nibble),
/// the top two bits in `scales[8..12]`; `y = (d * (sc - 32)) * q`.
#[inline(always)]
fn dequantize_q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let (hmask, qs, sb) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    let mut q = [0i8; 256];
    for (half, (q, qs)) in q.chunks_exact_mut(128).zip(qs.chunks_exact(32)).enumerate() {
        for (pass, q) in q.chunks_exact_mut(32).enumerate() {
            let bit = 1u8 << (4 * half + pass);
            for ((q, &b), &h) in q.iter_mut().zip(qs).zip(hmask) {
                let sub = if h & bit != 0 { 0 } else { 4 };
                *q = ((b >> (2 * pass)) & 3) as i8 - sub;
            }
        }
    }
    let mut dl = [0f32; 16];
    for (s, dl) in dl.iter_mut().enumerate() {
        let low = if s < 8 { sb[s] & 0x0F } else { sb[s - 8] >> 4 };
        let high = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
        *dl = d * ((low | (high << 4)) as i32 - 32) as f32;
    }
    scale_sub_blocks_16_no_min(y, &q, &dl);
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of Q4_K and Q5_K, packed in 12 bytes
/// (ggml's `get_scale_min_k4`): sub-blocks 0-3 keep them in the low six bits of bytes
/// `j` and `j + 4`; sub-blocks 4-7 in the nibbles of byte `j + 4`, with their top two bits
/// in the spare top bits of bytes `j - 4` and `j`.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K, 144 bytes: `d: f16`, `dmin: f16`, `scales[12]`, `qs[128]`. Eight sub-blocks of 32
/// values; each 64 values read 32 bytes of `qs`, low nibbles then high nibbles;
/// `y = (d * sc) * q - dmin * m`.
#[inline(always)]
fn dequantize_q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (p, (y, q)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * p, scales);
        let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let (y1, y2) = y.split_at_mut(32);
        for l in 0..32 {
            y1[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y2[l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K, 176 bytes: `d: f16`, `dmin: f16`, `scales[12]`, `qh[32]`, `qs[128]`. As Q4_K, plus
/// a fifth bit: bit `s` of `qh[l]` for value `l` of sub-block `s`, worth 16.
#[inline(always)]
fn dequantize_q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (p, (y, ql)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * p, scales);
        let (sc2, m2) = scale_min_k4(2 * p + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let (u1, u2) = (1u8 << (2 * p), 2u8 << (2 * p));
        let (y1, y2) = y.split_at_mut(32);
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y1[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y2[l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// Q6_K, 210 bytes: `ql[128]`, `qh[64]`, `scales[16]: i8`, `d: f16`. Each half of 128
/// values reads 64 bytes of `ql` (low nibbles: bytes 0-31 low, 32-63 low, 0-31 high, 32-63
/// high) and 32 of `qh` (two bits per value, shift 0, 2, 4, 6 in the same order); sixteen
/// scales, one per 16 values; `y = (d * sc) * (q - 32)`.
#[inline(always)]
fn dequantize_q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    let mut q = [0i8; 256];
    let halves = q
        .chunks_exact_mut(128)
        .zip(b[0..128].chunks_exact(64))
        .zip(b[128..192].chunks_exact(32));
    for ((q, ql), qh) in halves {
        for (pass, q) in q.chunks_exact_mut(32).enumerate() {
            let ql = &ql[32 * (pass % 2)..][..32];
            let low_shift = 4 * (pass / 2);
            for ((q, &l), &h) in q.iter_mut().zip(ql).zip(qh) {
                *q = (((l >> low_shift) & 0x0F) | (((h >> (2 * pass)) & 3) << 4)) as i8 - 32;
            }
        }
    }
    let mut dl = [0f32; 16];
    for (dl, &sc) in dl.iter_mut().zip(&b[192..208]) {
        *dl = d * (sc as i8) as f32;
    }
    scale_sub_blocks_16_no_min(y, &q, &dl);
}

/// Q8_K, 292 bytes: `d: f32`, `qs[256]: i8`, `bsums[16]: i16` (sums of 16 `qs` each, used
/// only by integer dot kernels); `y = d * q`.
#[inline(always)]
fn dequantize_q8_k(b: &[u8; 292], y: &mut [f32; 256]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (y, &q) in y.iter_mut().zip(&b[4..260]) {
        *y = d * (q as i8) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    /// A small deterministic generator (xorshift64*), so the tests need no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }

        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    /// Random blocks of `dtype` whose scale fields hold sane values, so no NaN or inf
    /// appears and the products are well away from overflow.
    fn random_row(rng: &mut Rng, dtype: DType, n_blocks: usize) -> Vec<u8> {
        let ts = dtype.type_size();
        let mut row = rng.bytes(n_blocks * ts);
        let f16_fields: &[usize] = match dtype {
            DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
            DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
            DType::Q2_K => &[80, 82],
            DType::Q3_K => &[108],
            DType::Q6_K => &[208],
            DType::F16 => &[0],
            _ => &[],
        };
        for block in row.chunks_exact_mut(ts) {
            for &off in f16_fields {
                let v = f16::from_f32(rng.unit() * 2.0);
                block[off..off + 2].copy_from_slice(&v.to_le_bytes());
            }
            match dtype {
                DType::F32 | DType::Q8_K => {
                    block[0..4].copy_from_slice(&(rng.unit() * 2.0).to_le_bytes())
                }
                DType::BF16 => block.copy_from_slice(&bf16::from_f32(rng.unit()).to_le_bytes()),
                _ => {}
            }
        }
        row
    }

    #[test]
    fn dot_matches_dequantize_then_sequential_sum_for_every_dtype() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for dtype in DType::ALL {
            // An odd count of plain floats exercises the tail shorter than the lanes.
            let n_values = if dtype.is_quantized() { 4 * 256 } else { 1003 };
            let n_blocks = n_values / dtype.block_size();
            let row = random_row(&mut rng, dtype, n_blocks);
            let x: Vec<f32> = (0..n_values).map(|_| rng.unit()).collect();
            let mut w = vec![0f32; n_values];
            dequantize(dtype, &row, &mut w).unwrap();
            let naive: f64 = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum();
            let scale: f64 = w
                .iter()
                .zip(&x)
                .map(|(&w, &x)| (w as f64 * x as f64).abs())
                .sum();
            let got = dot(dtype, &row, &x).unwrap() as f64;
            assert!(
                (got - naive).abs() <= 1e-5 * scale.max(f64::MIN_POSITIVE),
                "{dtype}: dot {got} vs dequantize + sum {naive} (sum of |terms| {scale})"
            );
        }
    }

    #[test]
    fn dot_rejects_a_row_that_does_not_encode_x() {
        let x = vec![1.0f32; 32];
        assert!(dot(DType::Q4_0, &[0u8; 17], &x).is_err());
        assert!(dot(DType::Q4_0, &[0u8; 36], &x).is_err());
        assert!(dot(DType::Q4_0, &[0u8; 18], &x).is_ok());
        assert!(dot(DType::F32, &[0u8; 8], &[1.0]).is_err());
    }

    #[test]
    fn dequantize_block_agrees_with_dequantize() {
        let mut rng = Rng(7);
        for dtype in DType::ALL {
            let row = random_row(&mut rng, dtype, 3);
            let mut whole = vec![0f32; 3 * dtype.block_size()];
            dequantize(dtype, &row, &mut whole).unwrap();
            let mut one = vec![0f32; dtype.block_size()];
            for (b, w) in row
                .chunks_exact(dtype.type_size())
                .zip(whole.chunks_exact(dtype.block_size()))
            {
                dequantize_block(dtype, b, &mut one);
                assert_eq!(
                    one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{dtype}"
                );
            }
        }
    }
}
