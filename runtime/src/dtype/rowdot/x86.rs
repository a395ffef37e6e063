//! AVX2 + FMA + F16C fused row dots.
//!
//! Quantized values are widened eight at a time with one `vpmovzxbd`/`vpmovsxbd` straight
//! from the block (a byte per 32-bit lane), split into nibbles or bit fields with shifts and
//! masks (which keeps the lanes in the activations' order, so `x` is loaded as stored),
//! converted to `f32` and multiplied into `x` with `vfmadd`. Each (sub-)block's sum is
//! scaled once by a broadcast scale into one of several accumulators.
//!
//! Memory safety: every load reads a fixed-size array reference (`&[u8; 8]`, `&[f32; 8]`,
//! ...) obtained from checked slicing, so no load can leave its block.

use super::RowsFn;
use crate::dtype::DType;
use std::arch::x86_64::*;

/// The AVX2 kernel for `dtype`.
pub(super) fn kernel(dtype: DType) -> RowsFn {
    macro_rules! rows {
        ($row:ident) => {{
            #[target_feature(enable = "avx2,fma,f16c")]
            fn rows(rows: &[u8], stride: usize, x: &[f32], sums: &[f32], out: &mut [f32]) {
                for (y, r) in out.iter_mut().zip(rows.chunks_exact(stride)) {
                    *y = $row(r, x, sums);
                }
            }
            rows as RowsFn
        }};
    }
    match dtype {
        DType::F32 => rows!(f32_row),
        DType::F16 => rows!(f16_row),
        DType::BF16 => rows!(bf16_row),
        DType::Q4_0 => rows!(q4_0),
        DType::Q4_1 => rows!(q4_1),
        DType::Q5_0 => rows!(q5_0),
        DType::Q5_1 => rows!(q5_1),
        DType::Q8_0 => rows!(q8_0),
        DType::Q2_K => rows!(q2_k),
        DType::Q3_K => rows!(q3_k),
        DType::Q4_K => rows!(q4_k),
        DType::Q5_K => rows!(q5_k),
        DType::Q6_K => rows!(q6_k),
        DType::Q8_K => rows!(q8_k),
    }
}

/// `N` elements of `s` from `off`, as an array reference (a checked slice).
#[inline(always)]
fn at<T, const N: usize>(s: &[T], off: usize) -> &[T; N] {
    s[off..off + N].try_into().expect("slice of N elements")
}

/// Whole blocks of `TS` bytes paired with their `BS` activations.
#[inline(always)]
fn blocks<'a, const TS: usize, const BS: usize>(
    row: &'a [u8],
    x: &'a [f32],
) -> impl Iterator<Item = (&'a [u8; TS], &'a [f32; BS])> {
    row.chunks_exact(TS).zip(x.chunks_exact(BS)).map(|(b, x)| {
        (
            b.try_into().expect("chunks_exact yields TS bytes"),
            x.try_into().expect("chunks_exact yields BS values"),
        )
    })
}

/// Eight bytes zero-extended to eight 32-bit lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn zx8(b: &[u8; 8]) -> __m256i {
    // SAFETY: `b` is 8 readable bytes and `_mm_loadl_epi64` reads exactly 8, unaligned.
    _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(b.as_ptr().cast()) })
}

/// Eight bytes sign-extended (as `i8`) to eight 32-bit lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn sx8(b: &[u8; 8]) -> __m256i {
    // SAFETY: as in `zx8`: 8 readable bytes, 8 read.
    _mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(b.as_ptr().cast()) })
}

/// Eight activations.
#[target_feature(enable = "avx2")]
#[inline]
fn ld(x: &[f32; 8]) -> __m256 {
    // SAFETY: `x` is 8 readable `f32`s and `_mm256_loadu_ps` reads exactly 8, unaligned.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

/// The little-endian f16 at `b[i..i + 2]`, converted exactly and broadcast to 8 lanes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16x8(b: &[u8], i: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes([b[i], b[i + 1]])))
}

/// The little-endian f16 at `b[i..i + 2]` as a scalar.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
        u16::from_le_bytes([b[i], b[i + 1]]) as i32,
    )))
}

#[target_feature(enable = "avx2")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `Σ q·x` of two groups of eight integer lanes, lane-wise (two lanes' worth of a tree).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dot16(q0: __m256i, q1: __m256i, x0: &[f32; 8], x1: &[f32; 8]) -> __m256 {
    _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(q1),
        ld(x1),
        _mm256_mul_ps(_mm256_cvtepi32_ps(q0), ld(x0)),
    )
}

/// `Σ q·x` over 32 values in four groups of eight, lane-wise.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dot32(q: [__m256i; 4], x: &[f32; 32]) -> __m256 {
    _mm256_add_ps(
        dot16(q[0], q[1], at(x, 0), at(x, 8)),
        dot16(q[2], q[3], at(x, 16), at(x, 24)),
    )
}

/// The 32 nibbles of `qs` (values 0-7, 8-15 from the low nibbles, 16-23, 24-31 from the
/// high ones), in activation order.
#[target_feature(enable = "avx2")]
#[inline]
fn nibbles(qs: &[u8; 16]) -> [__m256i; 4] {
    let m = _mm256_set1_epi32(0x0F);
    let (a, b) = (zx8(at(qs, 0)), zx8(at(qs, 8)));
    [
        _mm256_and_si256(a, m),
        _mm256_and_si256(b, m),
        _mm256_srli_epi32::<4>(a),
        _mm256_srli_epi32::<4>(b),
    ]
}

/// Whether the kernel of `dtype` reads `x` interleaved (see [`interleave32`]).
pub(super) fn interleaved(dtype: DType) -> bool {
    matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q8_0 | DType::Q4_K)
}

/// `x` in the order the interleaved kernels (Q4_0, Q4_1, Q8_0, Q4_K) decode their blocks: within
/// each 32 values, vector `j` (eight lanes) holds `x[4l + j]` in lane `l`. Their decoders
/// then need no cross-lane widening (two shuffle micro-ops each on current cores): a 32-byte
/// Q8_0 block loaded as eight `i32` lanes has value `4l + j` in byte `j` of lane `l`, which
/// shifts alone sign-extend; and a 16-byte Q4 block broadcast to both halves has value
/// `4l + j` in nibble `j` of lane `l` (low nibbles in lanes 0-3, high nibbles in lanes 4-7),
/// which a variable shift and a mask extract. `x.len()` is a multiple of 32 for those
/// formats; a tail is copied as is.
pub(super) fn interleave32(x: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    for (o, x) in out.chunks_exact_mut(32).zip(x.chunks_exact(32)) {
        for j in 0..4 {
            for l in 0..8 {
                o[8 * j + l] = x[4 * l + j];
            }
        }
    }
    out
}

/// `Σ q·x` over 32 values as one chain: a multiply and three multiply-adds (one lane-wise
/// accumulator per block; the blocks' chains overlap).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn chain32(q: [__m256i; 4], x: &[f32; 32]) -> __m256 {
    let s = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), ld(at(x, 0)));
    let s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), ld(at(x, 8)), s);
    let s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), ld(at(x, 16)), s);
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), ld(at(x, 24)), s)
}

/// The 32 nibbles of `qs` in the interleaved order (vector `j`, lane `l`: value `4l + j`):
/// the 16 bytes broadcast to both halves, shifted by `8j` (low nibbles, lanes 0-3) or
/// `8j + 4` (high nibbles, lanes 4-7), masked.
#[target_feature(enable = "avx2")]
#[inline]
fn nibbles_interleaved(qs: &[u8; 16]) -> [__m256i; 4] {
    // SAFETY: `qs` is 16 readable bytes and `_mm_loadu_si128` reads exactly 16, unaligned.
    let v = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(qs.as_ptr().cast()) });
    let m = _mm256_set1_epi32(0x0F);
    let s = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    let eight = _mm256_set1_epi32(8);
    let s1 = _mm256_add_epi32(s, eight);
    let s2 = _mm256_add_epi32(s1, eight);
    let s3 = _mm256_add_epi32(s2, eight);
    [
        _mm256_and_si256(_mm256_srlv_epi32(v, s), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, s1), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, s2), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, s3), m),
    ]
}

/// The 32 signed bytes of `qs` in the interleaved order: byte `j` of each 32-bit lane,
/// sign-extended by a left and an arithmetic right shift.
#[target_feature(enable = "avx2")]
#[inline]
fn bytes_interleaved(qs: &[u8; 32]) -> [__m256i; 4] {
    // SAFETY: `qs` is 32 readable bytes and `_mm256_loadu_si256` reads exactly 32, unaligned.
    let v = unsafe { _mm256_loadu_si256(qs.as_ptr().cast()) };
    [
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(v)),
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(v)),
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<8>(v)),
        _mm256_srai_epi32::<24>(v),
    ]
}

/// Eight `i32` lanes per byte value `b`: lane `l` is 0 if bit `l` of `b` is set, `-16`
/// otherwise. Q5_0's value is `nibble | 16·bit − 16 = nibble + FIFTH[b][l]`: one load and
/// one add per eight values for the fifth bits.
static FIFTH_MINUS_16: [[i32; 8]; 256] = fifth_table(-16, 0);
/// As [`FIFTH_MINUS_16`] for Q5_1 (no offset): 16 where the bit is set, 0 otherwise.
static FIFTH_PLUS_16: [[i32; 8]; 256] = fifth_table(0, 16);

const fn fifth_table(clear: i32, set: i32) -> [[i32; 8]; 256] {
    let mut t = [[0i32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut l = 0;
        while l < 8 {
            t[b][l] = if b & (1 << l) != 0 { set } else { clear };
            l += 1;
        }
        b += 1;
    }
    t
}

/// [`nibbles`] plus the table lanes for the four bytes of `qh` (value `8c + l` takes bit
/// `l` of byte `c`).
#[target_feature(enable = "avx2")]
#[inline]
fn with_fifth(q: [__m256i; 4], qh: &[u8; 4], table: &[[i32; 8]; 256]) -> [__m256i; 4] {
    let t = |c: usize| {
        let t: &[i32; 8] = &table[qh[c] as usize];
        // SAFETY: `t` is 8 readable `i32`s (32 bytes); `_mm256_loadu_si256` reads exactly 32.
        unsafe { _mm256_loadu_si256(t.as_ptr().cast()) }
    };
    [
        _mm256_add_epi32(q[0], t(0)),
        _mm256_add_epi32(q[1], t(1)),
        _mm256_add_epi32(q[2], t(2)),
        _mm256_add_epi32(q[3], t(3)),
    ]
}

/// The scale and minimum of a Q4_1/Q5_1 block (adjacent f16s at byte 0) converted together:
/// `[d, m, 0, 0]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16_pair(b: &[u8]) -> __m128 {
    _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes([
        b[0], b[1], b[2], b[3],
    ])))
}

/// Lane 1 of `v`.
#[target_feature(enable = "avx2")]
#[inline]
fn lane1(v: __m128) -> f32 {
    _mm_cvtss_f32(_mm_movehdup_ps(v))
}

/// Q4_0: interleaved `x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let eight = _mm256_set1_epi32(8);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<18, 32>(row, x) {
        let q = nibbles_interleaved(at(b, 2)).map(|q| _mm256_sub_epi32(q, eight));
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// Q4_1: interleaved `x`; the minimum terms `m · Σx` accumulate in lane 1 of `mins`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<20, 32>(row, x).zip(sums) {
        let dm = f16_pair(b);
        let q = nibbles_interleaved(at(b, 4));
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + lane1(mins)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let q = with_fifth(nibbles(at(b, 6)), at(b, 2), &FIFTH_MINUS_16);
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<24, 32>(row, x).zip(sums) {
        let dm = f16_pair(b);
        let q = with_fifth(nibbles(at(b, 8)), at(b, 4), &FIFTH_PLUS_16);
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + lane1(mins)
}

/// Q8_0: interleaved `x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let q = bytes_interleaved(at(b, 2));
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q8_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, x) in blocks::<292, 256>(row, x) {
        let d = _mm256_set1_ps(f32::from_le_bytes(*at(b, 0)));
        let mut s = [_mm256_setzero_ps(); 2];
        for g in 0..8 {
            let q = std::array::from_fn(|c| sx8(at(b, 4 + 32 * g + 8 * c)));
            s[g % 2] = _mm256_add_ps(s[g % 2], dot32(q, at(x, 32 * g)));
        }
        acc = _mm256_fmadd_ps(d, _mm256_add_ps(s[0], s[1]), acc);
    }
    hsum(acc)
}

/// A sub-block scale broadcast from memory (a load, no shuffle).
#[target_feature(enable = "avx2")]
#[inline]
fn bcast(s: &f32) -> __m256 {
    _mm256_broadcast_ss(s)
}

/// Stores eight lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn store(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    // SAFETY: `a` is 8 writable `f32`s and `_mm256_storeu_ps` writes exactly 8, unaligned.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// Q2_K: sixteen 16-value sub-blocks, `y = d·(sc & 15)·q − dmin·(sc >> 4)`; the minimum
/// terms use the 16-value sums of `x`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q2_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let m3 = _mm256_set1_epi32(3);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = _mm256_setzero_ps();
    for ((b, x), sx) in blocks::<84, 256>(row, x).zip(sums.chunks_exact(16)) {
        let (d, dmin) = (f16x8(b, 80), f16x8(b, 82));
        let (s0, s1) = (zx8(at(b, 0)), zx8(at(b, 8)));
        let dl = [
            store(_mm256_mul_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_and_si256(s0, m15)),
            )),
            store(_mm256_mul_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_and_si256(s1, m15)),
            )),
        ];
        let m = dot16(
            _mm256_srli_epi32::<4>(s0),
            _mm256_srli_epi32::<4>(s1),
            at(sx, 0),
            at(sx, 8),
        );
        mins = _mm256_fmadd_ps(dmin, m, mins);
        for h in 0..2 {
            for cp in 0..2 {
                let mut v0 = zx8(at(b, 16 + 32 * h + 16 * cp));
                let mut v1 = zx8(at(b, 16 + 32 * h + 16 * cp + 8));
                for (p, acc) in acc.iter_mut().enumerate() {
                    let off = 128 * h + 32 * p + 16 * cp;
                    let s = dot16(
                        _mm256_and_si256(v0, m3),
                        _mm256_and_si256(v1, m3),
                        at(x, off),
                        at(x, off + 8),
                    );
                    let sub = 8 * h + 2 * p + cp;
                    *acc = _mm256_fmadd_ps(bcast(&dl[sub / 8][sub % 8]), s, *acc);
                    v0 = _mm256_srli_epi32::<2>(v0);
                    v1 = _mm256_srli_epi32::<2>(v1);
                }
            }
        }
    }
    let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(a) - hsum(mins)
}

/// Q3_K: sixteen 16-value sub-blocks of signed 3-bit values (`hmask` bit clear: minus 4),
/// 6-bit scales offset by 32.
#[target_feature(enable = "avx2,fma,f16c")]
fn q3_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let m3 = _mm256_set1_epi32(3);
    let m4 = _mm256_set1_epi32(4);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (b, x) in blocks::<110, 256>(row, x) {
        let sb = &b[96..108];
        let d = f16_at(b, 108);
        let dl: [f32; 16] = std::array::from_fn(|s| {
            let low = if s < 8 { sb[s] & 0x0F } else { sb[s - 8] >> 4 };
            let high = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
            d * ((low | (high << 4)) as i32 - 32) as f32
        });
        for cp in 0..2 {
            // Bit `4 h + p` of the mask set means no subtraction of 4.
            let hm = [zx8(at(b, 16 * cp)), zx8(at(b, 16 * cp + 8))];
            for h in 0..2 {
                let mut v = [
                    zx8(at(b, 32 + 32 * h + 16 * cp)),
                    zx8(at(b, 32 + 32 * h + 16 * cp + 8)),
                ];
                let mut m = if h == 0 {
                    hm
                } else {
                    hm.map(|m| _mm256_srli_epi32::<4>(m))
                };
                for (p, acc) in acc.iter_mut().enumerate() {
                    let q: [__m256i; 2] = std::array::from_fn(|c| {
                        let low = _mm256_and_si256(v[c], m3);
                        let high = _mm256_and_si256(_mm256_slli_epi32::<2>(m[c]), m4);
                        _mm256_sub_epi32(_mm256_or_si256(low, high), m4)
                    });
                    let off = 128 * h + 32 * p + 16 * cp;
                    let s = dot16(q[0], q[1], at(x, off), at(x, off + 8));
                    *acc = _mm256_fmadd_ps(bcast(&dl[8 * h + 2 * p + cp]), s, *acc);
                    v = v.map(|v| _mm256_srli_epi32::<2>(v));
                    m = m.map(|m| _mm256_srli_epi32::<1>(m));
                }
            }
        }
    }
    let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(a)
}

/// The eight scales `d · sc` and the minimum term `dmin · Σ m · Σx` (lane-wise) of a Q4_K
/// or Q5_K block, unpacking the 12 scale bytes as ggml's AVX2 kernel does.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn k4_scales(b: &[u8], sx: &[f32; 8]) -> ([f32; 8], __m256) {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let u: [u32; 3] = std::array::from_fn(|i| u32::from_le_bytes(*at(b, 4 + 4 * i)));
    let sc = [u[0] & K1, (u[2] & K2) | (((u[0] >> 6) & K3) << 4)];
    let m = [u[1] & K1, ((u[2] >> 4) & K2) | (((u[1] >> 6) & K3) << 4)];
    let sc = (sc[0] as u64 | (sc[1] as u64) << 32).to_le_bytes();
    let m = (m[0] as u64 | (m[1] as u64) << 32).to_le_bytes();
    let dl = store(_mm256_mul_ps(f16x8(b, 0), _mm256_cvtepi32_ps(zx8(&sc))));
    let mins = _mm256_mul_ps(
        f16x8(b, 2),
        _mm256_mul_ps(_mm256_cvtepi32_ps(zx8(&m)), ld(sx)),
    );
    (dl, mins)
}

/// Q4_K: eight 32-value sub-blocks, `y = d·sc·q − dmin·m`; 32 bytes of `qs` hold two
/// sub-blocks, low nibbles then high.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm256_setzero_ps();
    for ((b, x), sx) in blocks::<144, 256>(row, x).zip(sums.chunks_exact(8)) {
        let (dl, m) = k4_scales(b, at(sx, 0));
        mins = _mm256_add_ps(mins, m);
        for p in 0..4 {
            // 32 bytes as eight lanes: nibble `2j` of lane `l` is value `4l + j` of
            // sub-block `2p`, nibble `2j + 1` the same value of sub-block `2p + 1`
            // (interleaved `x`, as for Q4_0).
            // SAFETY: `at` gives 32 readable bytes; `_mm256_loadu_si256` reads exactly 32.
            let v = unsafe { _mm256_loadu_si256(at::<u8, 32>(b, 16 + 32 * p).as_ptr().cast()) };
            let lo = [
                _mm256_and_si256(v, m15),
                _mm256_and_si256(_mm256_srli_epi32::<8>(v), m15),
                _mm256_and_si256(_mm256_srli_epi32::<16>(v), m15),
                _mm256_and_si256(_mm256_srli_epi32::<24>(v), m15),
            ];
            let hi = [
                _mm256_and_si256(_mm256_srli_epi32::<4>(v), m15),
                _mm256_and_si256(_mm256_srli_epi32::<12>(v), m15),
                _mm256_and_si256(_mm256_srli_epi32::<20>(v), m15),
                _mm256_srli_epi32::<28>(v),
            ];
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), chain32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), chain32(hi, at(x, 64 * p + 32)), a1);
        }
    }
    hsum(_mm256_add_ps(a0, a1)) - hsum(mins)
}

/// Q5_K: Q4_K plus a fifth bit per value (`qh[l]` bit `s` for sub-block `s`), worth 16.
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let one = _mm256_set1_epi32(1);
    let sixteen = _mm256_set1_epi32(16);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm256_setzero_ps();
    for ((b, x), sx) in blocks::<176, 256>(row, x).zip(sums.chunks_exact(8)) {
        let (dl, m) = k4_scales(b, at(sx, 0));
        mins = _mm256_add_ps(mins, m);
        let mut qh: [__m256i; 4] = std::array::from_fn(|c| zx8(at(b, 16 + 8 * c)));
        for p in 0..4 {
            let v: [__m256i; 4] = std::array::from_fn(|c| zx8(at(b, 48 + 32 * p + 8 * c)));
            let lo = std::array::from_fn(|c| {
                let h = _mm256_slli_epi32::<4>(_mm256_and_si256(qh[c], one));
                _mm256_or_si256(_mm256_and_si256(v[c], m15), h)
            });
            let hi = std::array::from_fn(|c| {
                let h = _mm256_and_si256(_mm256_slli_epi32::<3>(qh[c]), sixteen);
                _mm256_or_si256(_mm256_srli_epi32::<4>(v[c]), h)
            });
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), chain32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), chain32(hi, at(x, 64 * p + 32)), a1);
            qh = qh.map(|q| _mm256_srli_epi32::<2>(q));
        }
    }
    hsum(_mm256_add_ps(a0, a1)) - hsum(mins)
}

/// Q6_K: sixteen 16-value sub-blocks of 6-bit values (4 from `ql`, 2 from `qh`) minus 32,
/// signed 8-bit scales.
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let m3 = _mm256_set1_epi32(3);
    let o = _mm256_set1_epi32(32);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (b, x) in blocks::<210, 256>(row, x) {
        let d = f16x8(b, 208);
        let dl = [
            store(_mm256_mul_ps(d, _mm256_cvtepi32_ps(sx8(at(b, 192))))),
            store(_mm256_mul_ps(d, _mm256_cvtepi32_ps(sx8(at(b, 200))))),
        ];
        for h in 0..2 {
            for cp in 0..2 {
                let q: [[__m256i; 2]; 4] = {
                    let ql0: [__m256i; 2] =
                        std::array::from_fn(|c| zx8(at(b, 64 * h + 16 * cp + 8 * c)));
                    let ql1: [__m256i; 2] =
                        std::array::from_fn(|c| zx8(at(b, 64 * h + 32 + 16 * cp + 8 * c)));
                    let qh: [__m256i; 2] =
                        std::array::from_fn(|c| zx8(at(b, 128 + 32 * h + 16 * cp + 8 * c)));
                    let six = |low: __m256i, qh: __m256i| {
                        let high = _mm256_slli_epi32::<4>(_mm256_and_si256(qh, m3));
                        _mm256_sub_epi32(_mm256_or_si256(low, high), o)
                    };
                    std::array::from_fn(|p| {
                        std::array::from_fn(|c| {
                            let low = match p {
                                0 => _mm256_and_si256(ql0[c], m15),
                                1 => _mm256_and_si256(ql1[c], m15),
                                2 => _mm256_srli_epi32::<4>(ql0[c]),
                                _ => _mm256_srli_epi32::<4>(ql1[c]),
                            };
                            let qh = match p {
                                0 => qh[c],
                                1 => _mm256_srli_epi32::<2>(qh[c]),
                                2 => _mm256_srli_epi32::<4>(qh[c]),
                                _ => _mm256_srli_epi32::<6>(qh[c]),
                            };
                            six(low, qh)
                        })
                    })
                };
                for (p, acc) in acc.iter_mut().enumerate() {
                    let off = 128 * h + 32 * p + 16 * cp;
                    let s = dot16(q[p][0], q[p][1], at(x, off), at(x, off + 8));
                    let sub = 8 * h + 2 * p + cp;
                    *acc = _mm256_fmadd_ps(bcast(&dl[sub / 8][sub % 8]), s, *acc);
                }
            }
        }
    }
    let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(a)
}

/// A plain-float row: eight values per step into four accumulators, then the tail.
macro_rules! float_row {
    ($name:ident, $w:literal, |$b8:ident| $load8:expr, |$b1:ident| $load1:expr) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        fn $name(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
            let mut acc = [_mm256_setzero_ps(); 4];
            let body = x.len() / 32 * 32;
            for (b, x) in row.chunks_exact(32 * $w).zip(x[..body].chunks_exact(32)) {
                for (k, acc) in acc.iter_mut().enumerate() {
                    let $b8: &[u8; 8 * $w] = at(b, 8 * $w * k);
                    *acc = _mm256_fmadd_ps($load8, ld(at(x, 8 * k)), *acc);
                }
            }
            let eights = x.len() / 8 * 8;
            let rows8 = row[body * $w..eights * $w].chunks_exact(8 * $w);
            for (b, x) in rows8.zip(x[body..eights].chunks_exact(8)) {
                let $b8: &[u8; 8 * $w] = at(b, 0);
                acc[0] = _mm256_fmadd_ps($load8, ld(at(x, 0)), acc[0]);
            }
            let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut s = hsum(a);
            for (b, &x) in row[eights * $w..].chunks_exact($w).zip(&x[eights..]) {
                let $b1: &[u8; $w] = at(b, 0);
                s = ($load1).mul_add(x, s);
            }
            s
        }
    };
}

float_row!(
    f32_row,
    4,
    |b| {
        // SAFETY: `b` is 32 readable bytes; `_mm256_loadu_ps` reads 32, unaligned.
        unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
    },
    |b| f32::from_le_bytes(*b)
);

float_row!(
    f16_row,
    2,
    |b| {
        // SAFETY: `b` is 16 readable bytes; `_mm_loadu_si128` reads 16, unaligned.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
    },
    |b| f16_at(b, 0)
);

float_row!(
    bf16_row,
    2,
    |b| {
        // SAFETY: `b` is 16 readable bytes; `_mm_loadu_si128` reads 16, unaligned.
        let h = _mm256_cvtepu16_epi32(unsafe { _mm_loadu_si128(b.as_ptr().cast()) });
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
    },
    |b| f32::from_bits((u16::from_le_bytes(*b) as u32) << 16)
);
