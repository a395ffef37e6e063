//! Portable fused row dots: each block's integer values are unpacked into a small stack
//! array (never to `f32` weights), summed against `x` in eight partial sums per sub-block,
//! and scaled once per sub-block. No `mul_add`: without hardware FMA it is a library
//! call. The layouts are those of `quant.rs`'s `dequantize_*`.

use super::RowsFn;
use crate::dtype::DType;
use half::f16;

/// The portable kernel for `dtype`.
pub(super) fn kernel(dtype: DType) -> RowsFn {
    macro_rules! rows {
        ($row:ident) => {{
            fn rows(rows: &[u8], stride: usize, x: &[f32], sums: &[f32], out: &mut [f32]) {
                for (y, r) in out.iter_mut().zip(rows.chunks_exact(stride)) {
                    *y = $row(r, x, sums);
                }
            }
            rows
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

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32_const()
}

/// `Σ q[i] · x[i]` in eight partial sums (`q.len()` is a multiple of 8).
#[inline(always)]
fn dotq(q: &[i8], x: &[f32]) -> f32 {
    let mut l = [0f32; 8];
    for (q, x) in q.chunks_exact(8).zip(x.chunks_exact(8)) {
        for k in 0..8 {
            l[k] += q[k] as f32 * x[k];
        }
    }
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
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

/// A plain-float row: `Σ w·x` in eight partial sums, then the tail.
#[inline(always)]
fn floats<const W: usize>(row: &[u8], x: &[f32], decode: impl Fn(&[u8; W]) -> f32) -> f32 {
    let mut l = [0f32; 8];
    let body = x.len() / 8 * 8;
    for (b, x) in row.chunks_exact(8 * W).zip(x[..body].chunks_exact(8)) {
        for k in 0..8 {
            let w = decode(b[W * k..W * k + W].try_into().expect("W bytes"));
            l[k] += w * x[k];
        }
    }
    let mut s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for (b, &x) in row[body * W..].chunks_exact(W).zip(&x[body..]) {
        s += decode(b.try_into().expect("W bytes")) * x;
    }
    s
}

fn f32_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    floats::<4>(row, x, |b| f32::from_le_bytes(*b))
}

fn f16_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    floats::<2>(row, x, |b| f16::from_le_bytes(*b).to_f32_const())
}

fn bf16_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    floats::<2>(row, x, |b| {
        f32::from_bits((u16::from_le_bytes(*b) as u32) << 16)
    })
}

/// The 32 values of a Q4 or Q5 block's nibbles (low nibbles first), plus `high` (bit `i`
/// adds 16 to value `i`), minus `offset`.
#[inline(always)]
fn nibbles(qs: &[u8], high: u32, offset: i8) -> [i8; 32] {
    let mut q = [0i8; 32];
    for j in 0..16 {
        let h0 = if high & (1 << j) != 0 { 0x10 } else { 0 };
        let h1 = if high & (1 << (j + 16)) != 0 { 0x10 } else { 0 };
        q[j] = ((qs[j] & 0x0F) | h0) as i8 - offset;
        q[j + 16] = ((qs[j] >> 4) | h1) as i8 - offset;
    }
    q
}

fn q4_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<18, 32>(row, x) {
        let q = nibbles(&b[2..18], 0, 8);
        acc += f16_at(b, 0) * dotq(&q, x);
    }
    acc
}

fn q4_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), &sx) in blocks::<20, 32>(row, x).zip(sums) {
        let q = nibbles(&b[4..20], 0, 0);
        acc += f16_at(b, 0) * dotq(&q, x) + f16_at(b, 2) * sx;
    }
    acc
}

fn q5_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<22, 32>(row, x) {
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let q = nibbles(&b[6..22], qh, 16);
        acc += f16_at(b, 0) * dotq(&q, x);
    }
    acc
}

fn q5_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), &sx) in blocks::<24, 32>(row, x).zip(sums) {
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let q = nibbles(&b[8..24], qh, 0);
        acc += f16_at(b, 0) * dotq(&q, x) + f16_at(b, 2) * sx;
    }
    acc
}

fn q8_0(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<34, 32>(row, x) {
        let q: [i8; 32] = std::array::from_fn(|j| b[2 + j] as i8);
        acc += f16_at(b, 0) * dotq(&q, x);
    }
    acc
}

fn q8_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<292, 256>(row, x) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let q: [i8; 256] = std::array::from_fn(|j| b[4 + j] as i8);
        acc += d * dotq(&q, x);
    }
    acc
}

/// `Σ_s scale[s] · Σ_{l<W} q[W s + l] · x[W s + l]` over a 256-value block of sub-blocks
/// of `W` values.
#[inline(always)]
fn scaled<const W: usize, const N: usize>(q: &[i8; 256], x: &[f32; 256], scale: &[f32; N]) -> f32 {
    let mut acc = 0f32;
    for ((q, x), &sc) in q.chunks_exact(W).zip(x.chunks_exact(W)).zip(scale) {
        acc += sc * dotq(q, x);
    }
    acc
}

fn q2_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), sx) in blocks::<84, 256>(row, x).zip(sums.chunks_exact(16)) {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        let mut q = [0i8; 256];
        for (i, q) in q.iter_mut().enumerate() {
            let (half, pass, l) = (i / 128, (i / 32) % 4, i % 32);
            *q = ((qs[32 * half + l] >> (2 * pass)) & 3) as i8;
        }
        let dl: [f32; 16] = std::array::from_fn(|s| d * (scales[s] & 0x0F) as f32);
        let mut mins = 0f32;
        for (&sc, &sx) in scales.iter().zip(sx) {
            mins += (sc >> 4) as f32 * sx;
        }
        acc += scaled::<16, 16>(&q, x, &dl) - dmin * mins;
    }
    acc
}

fn q3_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<110, 256>(row, x) {
        let (hmask, qs, sb) = (&b[0..32], &b[32..96], &b[96..108]);
        let d = f16_at(b, 108);
        let mut q = [0i8; 256];
        for (i, q) in q.iter_mut().enumerate() {
            let (half, pass, l) = (i / 128, (i / 32) % 4, i % 32);
            let bit = 1u8 << (4 * half + pass);
            let sub = if hmask[l] & bit != 0 { 0 } else { 4 };
            *q = ((qs[32 * half + l] >> (2 * pass)) & 3) as i8 - sub;
        }
        let dl: [f32; 16] = std::array::from_fn(|s| {
            let low = if s < 8 { sb[s] & 0x0F } else { sb[s - 8] >> 4 };
            let high = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
            d * ((low | (high << 4)) as i32 - 32) as f32
        });
        acc += scaled::<16, 16>(&q, x, &dl);
    }
    acc
}

/// Sub-block `j`'s 6-bit scale and minimum in Q4_K and Q5_K (ggml's `get_scale_min_k4`).
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

/// The `d · sc` scales and the minimum term `dmin · Σ m · Σx` of a Q4_K or Q5_K block.
#[inline(always)]
fn k4_scales(b: &[u8], sx: &[f32]) -> ([f32; 8], f32) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let mut mins = 0f32;
    let dl = std::array::from_fn(|j| {
        let (sc, m) = scale_min_k4(j, scales);
        mins += m as f32 * sx[j];
        d * sc as f32
    });
    (dl, dmin * mins)
}

fn q4_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), sx) in blocks::<144, 256>(row, x).zip(sums.chunks_exact(8)) {
        let (dl, mins) = k4_scales(b, sx);
        let qs = &b[16..144];
        let q: [i8; 256] = std::array::from_fn(|i| {
            let (p, hi, l) = (i / 64, (i / 32) % 2, i % 32);
            ((qs[32 * p + l] >> (4 * hi)) & 0x0F) as i8
        });
        acc += scaled::<32, 8>(&q, x, &dl) - mins;
    }
    acc
}

fn q5_k(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), sx) in blocks::<176, 256>(row, x).zip(sums.chunks_exact(8)) {
        let (dl, mins) = k4_scales(b, sx);
        let (qh, qs) = (&b[16..48], &b[48..176]);
        let q: [i8; 256] = std::array::from_fn(|i| {
            let (s, l) = (i / 32, i % 32);
            let low = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F;
            let high = ((qh[l] >> s) & 1) << 4;
            (low | high) as i8
        });
        acc += scaled::<32, 8>(&q, x, &dl) - mins;
    }
    acc
}

fn q6_k(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, x) in blocks::<210, 256>(row, x) {
        let d = f16_at(b, 208);
        let q: [i8; 256] = std::array::from_fn(|i| {
            let (half, pass, l) = (i / 128, (i / 32) % 4, i % 32);
            let ql = b[64 * half + 32 * (pass % 2) + l];
            let qh = b[128 + 32 * half + l];
            (((ql >> (4 * (pass / 2))) & 0x0F) | (((qh >> (2 * pass)) & 3) << 4)) as i8 - 32
        });
        let dl: [f32; 16] = std::array::from_fn(|s| d * (b[192 + s] as i8) as f32);
        acc += scaled::<16, 16>(&q, x, &dl);
    }
    acc
}
