//! Stand-alone copies of the AVX2 row-dot block loops (runtime/src/dtype/rowdot/x86.rs), for
//! static analysis only (see mca.py): "_old" variants are the kernels before the
//! interleaved-x rewrite, the others the candidates measured for it. Not part of the build;
//! the unsafe loads read exactly the fixed-size arrays they are given, as in x86.rs.
#![allow(dead_code)]
use std::arch::x86_64::*;
#[inline(always)]
fn at<T, const N: usize>(s: &[T], off: usize) -> &[T; N] { s[off..off + N].try_into().expect("n") }
#[inline(always)]
fn blocks<'a, const TS: usize, const BS: usize>(row: &'a [u8], x: &'a [f32]) -> impl Iterator<Item = (&'a [u8; TS], &'a [f32; BS])> {
    row.chunks_exact(TS).zip(x.chunks_exact(BS)).map(|(b, x)| (b.try_into().expect("a"), x.try_into().expect("b")))
}
#[target_feature(enable = "avx2")] #[inline] fn zx8(b: &[u8; 8]) -> __m256i { _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(b.as_ptr().cast()) }) }
#[target_feature(enable = "avx2")] #[inline] fn sx8(b: &[u8; 8]) -> __m256i { _mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(b.as_ptr().cast()) }) }
#[target_feature(enable = "avx2")] #[inline] fn ld(x: &[f32; 8]) -> __m256 { unsafe { _mm256_loadu_ps(x.as_ptr()) } }
#[target_feature(enable = "avx2,f16c")] #[inline] fn f16x8(b: &[u8], i: usize) -> __m256 { _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes([b[i], b[i + 1]]))) }
#[target_feature(enable = "avx2,f16c")] #[inline] fn f16_at(b: &[u8], i: usize) -> f32 { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes([b[i], b[i + 1]]) as i32))) }
#[target_feature(enable = "avx2")] #[inline] fn hsum(v: __m256) -> f32 { let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)); let s = _mm_add_ps(s, _mm_movehl_ps(s, s)); _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s))) }
#[target_feature(enable = "avx2,fma")] #[inline] fn dot16(q0: __m256i, q1: __m256i, x0: &[f32; 8], x1: &[f32; 8]) -> __m256 { _mm256_fmadd_ps(_mm256_cvtepi32_ps(q1), ld(x1), _mm256_mul_ps(_mm256_cvtepi32_ps(q0), ld(x0))) }
#[target_feature(enable = "avx2,fma")] #[inline] fn dot32(q: [__m256i; 4], x: &[f32; 32]) -> __m256 { _mm256_add_ps(dot16(q[0], q[1], at(x, 0), at(x, 8)), dot16(q[2], q[3], at(x, 16), at(x, 24))) }
#[target_feature(enable = "avx2,fma")] #[inline] fn chain32(q: [__m256i; 4], x: &[f32; 32]) -> __m256 {
    let s = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), ld(at(x, 0)));
    let s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), ld(at(x, 8)), s);
    let s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), ld(at(x, 16)), s);
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), ld(at(x, 24)), s) }
#[target_feature(enable = "avx2")] #[inline] fn nibbles(qs: &[u8; 16]) -> [__m256i; 4] { let m = _mm256_set1_epi32(0x0F); let (a, b) = (zx8(at(qs, 0)), zx8(at(qs, 8))); [_mm256_and_si256(a, m), _mm256_and_si256(b, m), _mm256_srli_epi32::<4>(a), _mm256_srli_epi32::<4>(b)] }

#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q8_0_old(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let q = [sx8(at(b, 2)), sx8(at(b, 10)), sx8(at(b, 18)), sx8(at(b, 26))];
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q8_0_chain(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let q = [sx8(at(b, 2)), sx8(at(b, 10)), sx8(at(b, 18)), sx8(at(b, 26))];
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q8_0_pre(row: &[u8], x: &[f32], d: &[f32; 64]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (i, (b, x)) in blocks::<34, 32>(row, x).enumerate() {
        let q = [sx8(at(b, 2)), sx8(at(b, 10)), sx8(at(b, 18)), sx8(at(b, 26))];
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[i & 63]), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q8_0_scalar_d(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        let q = [sx8(at(b, 2)), sx8(at(b, 10)), sx8(at(b, 18)), sx8(at(b, 26))];
        let d = _mm256_set1_ps(f16_at(b, 0));
        a0 = _mm256_fmadd_ps(d, chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_1_old(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = 0f32;
    for ((b, x), &sx) in blocks::<20, 32>(row, x).zip(sums) {
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(nibbles(at(b, 4)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = f16_at(b, 2).mul_add(sx, mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + mins
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_1_dm(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    // d and m converted together; min term accumulated in a vector lane.
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<20, 32>(row, x).zip(sums) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(*at(b, 0))));
        let d = _mm256_broadcastss_ps(dm);
        a0 = _mm256_fmadd_ps(d, chain32(nibbles(at(b, 4)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
}

#[target_feature(enable = "avx2")] #[inline] fn ld32(b: &[u8; 32]) -> __m256i { unsafe { _mm256_loadu_si256(b.as_ptr().cast()) } }
#[target_feature(enable = "avx2")] #[inline] fn bc16(b: &[u8; 16]) -> __m256i { unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast())) } }
/// xp vector j lane l = x[4l + j]
#[target_feature(enable = "avx2")] #[inline]
fn q4p(qs: &[u8; 16]) -> [__m256i; 4] {
    let v = bc16(qs);
    let m = _mm256_set1_epi32(0x0F);
    let s0 = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    [
        _mm256_and_si256(_mm256_srlv_epi32(v, s0), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_add_epi32(s0, _mm256_set1_epi32(8))), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_add_epi32(s0, _mm256_set1_epi32(16))), m),
        _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_add_epi32(s0, _mm256_set1_epi32(24))), m),
    ]
}
#[target_feature(enable = "avx2")] #[inline]
fn q8p_shift(qs: &[u8; 32]) -> [__m256i; 4] {
    let v = ld32(qs);
    [
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(v)),
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(v)),
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<8>(v)),
        _mm256_srai_epi32::<24>(v),
    ]
}
#[target_feature(enable = "avx2")] #[inline]
fn q8p_and(qs: &[u8; 32]) -> [__m256i; 4] {
    let v = _mm256_xor_si256(ld32(qs), _mm256_set1_epi8(-128));
    let m = _mm256_set1_epi32(0xFF);
    let o = _mm256_set1_epi32(128);
    [
        _mm256_sub_epi32(_mm256_and_si256(v, m), o),
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32::<8>(v), m), o),
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32::<16>(v), m), o),
        _mm256_srai_epi32::<24>(ld32(qs)),
    ]
}
#[target_feature(enable = "avx2")] #[inline]
fn q8p_mix(qs: &[u8; 32]) -> [__m256i; 4] {
    let v = ld32(qs);
    let m = _mm256_set1_epi32(0xFF);
    let vx = _mm256_xor_si256(v, _mm256_set1_epi8(-128));
    let o = _mm256_set1_epi32(128);
    [
        _mm256_sub_epi32(_mm256_and_si256(vx, m), o),
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(v)),
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32::<16>(vx), m), o),
        _mm256_srai_epi32::<24>(v),
    ]
}
macro_rules! k8 { ($name:ident, $dec:ident) => {
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn $name(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<34, 32>(row, x) {
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32($dec(at(b, 2)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}}}
k8!(q8_0_shift, q8p_shift);
k8!(q8_0_and, q8p_and);
k8!(q8_0_mix, q8p_mix);
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_1_p(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<20, 32>(row, x).zip(sums) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(*at(b, 0))));
        let d = _mm256_broadcastss_ps(dm);
        a0 = _mm256_fmadd_ps(d, chain32(q4p(at(b, 4)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_1_p2(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    // two blocks per scale conversion
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<20, 32>(row, x).zip(sums) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(*at(b, 0))));
        let d = _mm256_broadcastss_ps(dm);
        let q = q4p(at(b, 4));
        let s = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), ld(at(x, 0)));
        let t = _mm256_mul_ps(_mm256_cvtepi32_ps(q[1]), ld(at(x, 8)));
        let s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), ld(at(x, 16)), s);
        let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), ld(at(x, 24)), t);
        a0 = _mm256_fmadd_ps(d, s, a0);
        a1 = _mm256_fmadd_ps(d, t, a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q5_0_old(row: &[u8], x: &[f32]) -> f32 {
    let h16 = _mm256_set1_epi32(16);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes(*at(b, 2));
        let h = _mm256_set1_epi32(qh as i32);
        let one = _mm256_set1_epi32(1);
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let q = nibbles(at(b, 6));
        let q: [__m256i; 4] = std::array::from_fn(|c| {
            let shift = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * c as i32));
            let bit = _mm256_and_si256(_mm256_srlv_epi32(h, shift), one);
            _mm256_sub_epi32(_mm256_or_si256(q[c], _mm256_slli_epi32::<4>(bit)), h16)
        });
        a0 = _mm256_fmadd_ps(f16x8(b, 0), dot32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q5_0_p(row: &[u8], x: &[f32]) -> f32 {
    // permuted layout: vector j lane l = value 4l + j; fifth bit = bit 4l+j of qh.
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let base = _mm256_setr_epi32(4, 8, 12, 16, 20, 24, 28, 32); // shift left so bit (4l+j) lands at bit 4... via sllv then srl
    let _ = base;
    let m16 = _mm256_set1_epi32(16);
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes(*at(b, 2));
        let h = _mm256_set1_epi32(qh as i32);
        let q = q4p(at(b, 6));
        // bit (4l+j) to position 4: shift right by (4l + j - 4) for 4l+j >= 4, else left...
        // use: t = srlv(h, 4l+j) & 1, then << 4
        let sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
        let q: [__m256i; 4] = std::array::from_fn(|j| {
            let t = _mm256_srlv_epi32(h, _mm256_add_epi32(sh, _mm256_set1_epi32(j as i32)));
            let t = _mm256_and_si256(_mm256_slli_epi32::<4>(t), m16);
            _mm256_sub_epi32(_mm256_or_si256(q[j], t), m16)
        });
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
static T16: [[i32; 8]; 256] = { let mut t=[[0i32;8];256]; let mut b=0; while b<256 { let mut l=0; while l<8 { t[b][l]= if b & (1<<l) != 0 {0} else {-16}; l+=1;} b+=1;} t };
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c,bmi2")]
pub fn q5_0_pext(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes(*at(b, 2));
        let q = q4p(at(b, 6));
        let q: [__m256i; 4] = std::array::from_fn(|j| {
            let idx = _pext_u32(qh, 0x1111_1111u32 << j) as usize;
            let t = unsafe { _mm256_loadu_si256(T16[idx & 255].as_ptr().cast()) };
            _mm256_add_epi32(q[j], t)
        });
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
static F16T: [[i32; 8]; 256] = { let mut t=[[0i32;8];256]; let mut b=0; while b<256 { let mut l=0; while l<8 { t[b][l]= if b & (1<<l) != 0 {0} else {-16}; l+=1;} b+=1;} t };
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q5_0_tab(row: &[u8], x: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh: &[u8; 4] = at(b, 2);
        let q = nibbles(at(b, 6));
        let t = |c: usize| unsafe { _mm256_loadu_si256(F16T[qh[c] as usize].as_ptr().cast()) };
        let q = [_mm256_add_epi32(q[0], t(0)), _mm256_add_epi32(q[1], t(1)), _mm256_add_epi32(q[2], t(2)), _mm256_add_epi32(q[3], t(3))];
        a0 = _mm256_fmadd_ps(f16x8(b, 0), chain32(q, x), a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_1_tabnib(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut mins = _mm_setzero_ps();
    for ((b, x), sx) in blocks::<20, 32>(row, x).zip(sums) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(*at(b, 0))));
        let d = _mm256_broadcastss_ps(dm);
        a0 = _mm256_fmadd_ps(d, chain32(nibbles(at(b, 4)), x), a0);
        std::mem::swap(&mut a0, &mut a1);
        mins = _mm_fmadd_ps(dm, _mm_broadcast_ss(sx), mins);
    }
    hsum(_mm256_add_ps(a0, a1)) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
}
#[target_feature(enable = "avx2")] #[inline] fn bcast(s: &f32) -> __m256 { _mm256_broadcast_ss(s) }
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_k_old(row: &[u8], x: &[f32], dl: &[f32; 8]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<144, 256>(row, x) {
        for p in 0..4 {
            let v: [__m256i; 4] = std::array::from_fn(|c| zx8(at(b, 16 + 32 * p + 8 * c)));
            let lo = v.map(|v| _mm256_and_si256(v, m15));
            let hi = v.map(|v| _mm256_srli_epi32::<4>(v));
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), chain32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), chain32(hi, at(x, 64 * p + 32)), a1);
        }
    }
    hsum(_mm256_add_ps(a0, a1))
}
#[no_mangle]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn q4_k_int(row: &[u8], x: &[f32], dl: &[f32; 8]) -> f32 {
    let m15 = _mm256_set1_epi32(0x0F);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, x) in blocks::<144, 256>(row, x) {
        for p in 0..4 {
            let v = ld32(at(b, 16 + 32 * p));
            let lo = [_mm256_and_si256(v, m15), _mm256_and_si256(_mm256_srli_epi32::<8>(v), m15), _mm256_and_si256(_mm256_srli_epi32::<16>(v), m15), _mm256_and_si256(_mm256_srli_epi32::<24>(v), m15)];
            let hi = [_mm256_and_si256(_mm256_srli_epi32::<4>(v), m15), _mm256_and_si256(_mm256_srli_epi32::<12>(v), m15), _mm256_and_si256(_mm256_srli_epi32::<20>(v), m15), _mm256_srli_epi32::<28>(v)];
            a0 = _mm256_fmadd_ps(bcast(&dl[2 * p]), chain32(lo, at(x, 64 * p)), a0);
            a1 = _mm256_fmadd_ps(bcast(&dl[2 * p + 1]), chain32(hi, at(x, 64 * p + 32)), a1);
        }
    }
    hsum(_mm256_add_ps(a0, a1))
}
