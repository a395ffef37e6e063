//! AVX-512 (F, BW) fused row dots for the most common formats (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K,
//! Q6_K): sixteen `f32` lanes, so a 32-value block is two vectors. Other formats use the AVX2
//! kernels.
//!
//! Sixteen quantized values are widened at once with one `vpmovzxbd`/`vpmovsxbd` from
//! 16 bytes of the block; for the 4-bit formats the low nibbles of those bytes are values
//! 0-15 and the high nibbles values 16-31, so `x` is again loaded as stored.
//!
//! Memory safety: as in the AVX2 kernels, every load reads a fixed-size array reference
//! obtained from checked slicing.

use super::x86::k4_scales;
use super::RowsFn;
use crate::dtype::DType;
use std::arch::x86_64::*;

/// The AVX-512 kernel for `dtype`, where there is one.
pub(super) fn kernel(dtype: DType) -> Option<RowsFn> {
    macro_rules! rows {
        ($row:ident) => {{
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
            fn rows(rows: &[u8], stride: usize, x: &[f32], sums: &[f32], out: &mut [f32]) {
                for (y, r) in out.iter_mut().zip(rows.chunks_exact(stride)) {
                    *y = $row(r, x, sums);
                }
            }
            Some(rows as RowsFn)
        }};
    }
    match dtype {
        DType::Q4_0 => rows!(q4_0),
        DType::Q4_1 => rows!(q4_1),
        DType::Q5_0 => rows!(q5_0),
        DType::Q8_0 => rows!(q8_0),
        DType::Q4_K => rows!(q4_k),
        DType::Q6_K => rows!(q6_k),
        _ => None,
    }
}

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

/// Sixteen bytes zero-extended to sixteen 32-bit lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn zx16(b: &[u8; 16]) -> __m512i {
    // SAFETY: `b` is 16 readable bytes and `_mm_loadu_si128` reads exactly 16, unaligned.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// Sixteen bytes sign-extended (as `i8`) to sixteen 32-bit lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn sx16(b: &[u8; 16]) -> __m512i {
    // SAFETY: as in `zx16`: 16 readable bytes, 16 read.
    _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// Sixteen activations.
#[target_feature(enable = "avx512f")]
#[inline]
fn ld(x: &[f32; 16]) -> __m512 {
    // SAFETY: `x` is 16 readable `f32`s and `_mm512_loadu_ps` reads exactly 16, unaligned.
    unsafe { _mm512_loadu_ps(x.as_ptr()) }
}

/// The little-endian f16 at `b[i..i + 2]` as a scalar (exact conversion).
#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// `Σ q·x` over 32 values (lanes 0-15 and 16-31), lane-wise.
#[target_feature(enable = "avx512f")]
#[inline]
fn dot32(q0: __m512i, q1: __m512i, x: &[f32; 32]) -> __m512 {
    _mm512_fmadd_ps(
        _mm512_cvtepi32_ps(q1),
        ld(at(x, 16)),
        _mm512_mul_ps(_mm512_cvtepi32_ps(q0), ld(at(x, 0))),
    )
}

/// The 32 nibbles of `qs` as (values 0-15, values 16-31).
#[target_feature(enable = "avx512f")]
#[inline]
fn nibbles(qs: &[u8; 16]) -> (__m512i, __m512i) {
    let v = zx16(qs);
    (
        _mm512_and_si512(v, _mm512_set1_epi32(0x0F)),
        _mm512_srli_epi32::<4>(v),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q4_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let eight = _mm512_set1_epi32(8);
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for (b, x) in blocks::<18, 32>(row, x) {
        let (lo, hi) = nibbles(at(b, 2));
        let s = dot32(_mm512_sub_epi32(lo, eight), _mm512_sub_epi32(hi, eight), x);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(b, 0)), s, a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q4_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut mins = 0f32;
    for ((b, x), &sx) in blocks::<20, 32>(row, x).zip(sums) {
        let (lo, hi) = nibbles(at(b, 4));
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(b, 0)), dot32(lo, hi, x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = f16_at(b, 2).mul_add(sx, mins);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + mins
}

/// Q5_0: the nibbles plus a fifth bit (bit `i` of `qh` adds 16 to value `i`: a masked OR,
/// lanes 0-15 from the low half of `qh`, 16-31 from the high half), minus 16.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q5_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let sixteen = _mm512_set1_epi32(16);
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes(*at(b, 2));
        let (lo, hi) = nibbles(at(b, 6));
        let lo = _mm512_mask_or_epi32(lo, qh as u16, lo, sixteen);
        let hi = _mm512_mask_or_epi32(hi, (qh >> 16) as u16, hi, sixteen);
        let s = dot32(
            _mm512_sub_epi32(lo, sixteen),
            _mm512_sub_epi32(hi, sixteen),
            x,
        );
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(b, 0)), s, a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q8_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let s = dot32(sx16(at(b, 2)), sx16(at(b, 18)), x);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(b, 0)), s, a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
}

/// Q4_K: eight 32-value sub-blocks, `y = d·sc·q − dmin·m`; 32 bytes of `qs` hold two
/// sub-blocks, low nibbles then high.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q4_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let m15 = _mm512_set1_epi32(0x0F);
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut mins = _mm256_setzero_ps();
    for ((b, x), sx) in blocks::<144, 256>(row, x).zip(sums.chunks_exact(8)) {
        let (dl, m) = k4_scales(b, at(sx, 0));
        mins = _mm256_add_ps(mins, m);
        for p in 0..4 {
            let v0 = zx16(at(b, 16 + 32 * p));
            let v1 = zx16(at(b, 32 + 32 * p));
            let lo = dot32(
                _mm512_and_si512(v0, m15),
                _mm512_and_si512(v1, m15),
                at(x, 64 * p),
            );
            let hi = dot32(
                _mm512_srli_epi32::<4>(v0),
                _mm512_srli_epi32::<4>(v1),
                at(x, 64 * p + 32),
            );
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(dl[2 * p]), lo, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(dl[2 * p + 1]), hi, a1);
        }
    }
    let m = _mm_add_ps(
        _mm256_castps256_ps128(mins),
        _mm256_extractf128_ps::<1>(mins),
    );
    let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) - m
}

/// Q6_K: sixteen 16-value sub-blocks of 6-bit values (4 from `ql`, 2 from `qh`) minus 32,
/// signed 8-bit scales; one sub-block is one vector.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
fn q6_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let m15 = _mm512_set1_epi32(0x0F);
    let m3 = _mm512_set1_epi32(3);
    let o = _mm512_set1_epi32(32);
    let mut acc = [_mm512_setzero_ps(); 4];
    for (b, x) in blocks::<210, 256>(row, x) {
        let d = f16_at(b, 208);
        for h in 0..2 {
            for cp in 0..2 {
                let ql0 = zx16(at(b, 64 * h + 16 * cp));
                let ql1 = zx16(at(b, 64 * h + 32 + 16 * cp));
                let qh = zx16(at(b, 128 + 32 * h + 16 * cp));
                for (p, acc) in acc.iter_mut().enumerate() {
                    let (low, high) = match p {
                        0 => (_mm512_and_si512(ql0, m15), qh),
                        1 => (_mm512_and_si512(ql1, m15), _mm512_srli_epi32::<2>(qh)),
                        2 => (_mm512_srli_epi32::<4>(ql0), _mm512_srli_epi32::<4>(qh)),
                        _ => (_mm512_srli_epi32::<4>(ql1), _mm512_srli_epi32::<6>(qh)),
                    };
                    let high = _mm512_slli_epi32::<4>(_mm512_and_si512(high, m3));
                    let q = _mm512_sub_epi32(_mm512_or_si512(low, high), o);
                    let off = 128 * h + 32 * p + 16 * cp;
                    let s = _mm512_mul_ps(_mm512_cvtepi32_ps(q), ld(at(x, off)));
                    let sub = 8 * h + 2 * p + cp;
                    let dl = d * f32::from(b[192 + sub] as i8);
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(dl), s, *acc);
                }
            }
        }
    }
    let a = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(a)
}
