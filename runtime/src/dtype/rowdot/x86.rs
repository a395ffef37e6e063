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

/// Adds the fifth bits of Q5_0/Q5_1 (bit `i` of `qh` is worth 16 in value `i`) to
/// [`nibbles`] and subtracts `offset`.
#[target_feature(enable = "avx2")]
#[inline]
fn fifth_bits(q: [__m256i; 4], qh: u32, offset: i32) -> [__m256i; 4] {
    let h = _mm256_set1_epi32(qh as i32);
    let one = _mm256_set1_epi32(1);
    let o = _mm256_set1_epi32(offset);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    std::array::from_fn(|c| {
        let shift = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * c as i32));
        let bit = _mm256_and_si256(_mm256_srlv_epi32(h, shift), one);
        _mm256_sub_epi32(_mm256_or_si256(q[c], _mm256_slli_epi32::<4>(bit)), o)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q4_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let eight = _mm256_set1_epi32(8);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<18, 32>(row, x) {
        let q = nibbles(at(b, 2)).map(|q| _mm256_sub_epi32(q, eight));
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q4_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = 0f32;
    for ((b, x), &sx) in blocks::<20, 32>(row, x).zip(sums) {
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(nibbles(at(b, 4)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = f16_at(b, 2).mul_add(sx, mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes(*at(b, 2));
        let q = fifth_bits(nibbles(at(b, 6)), qh, 16);
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q5_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = 0f32;
    for ((b, x), &sx) in blocks::<24, 32>(row, x).zip(sums) {
        let qh = u32::from_le_bytes(*at(b, 4));
        let q = fifth_bits(nibbles(at(b, 8)), qh, 0);
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = f16_at(b, 2).mul_add(sx, mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let q = [
            sx8(at(b, 2)),
            sx8(at(b, 10)),
            sx8(at(b, 18)),
            sx8(at(b, 26)),
        ];
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
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
            let v: [__m256i; 4] = std::array::from_fn(|c| zx8(at(b, 16 + 32 * p + 8 * c)));
            let lo = v.map(|v| _mm256_and_si256(v, m15));
            let hi = v.map(|v| _mm256_srli_epi32::<4>(v));
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), dot32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), dot32(hi, at(x, 64 * p + 32)), a1);
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
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), dot32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), dot32(hi, at(x, 64 * p + 32)), a1);
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
