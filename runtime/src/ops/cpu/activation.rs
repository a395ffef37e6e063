//! Element-wise activations, the residual add, and softmax. All in `f32`, on slices.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Above this many values, the element-wise maps split the work across rayon's threads
/// (prefill's `[n, intermediate]` gates; decode's single rows stay on the calling thread).
/// Each value is computed the same way either way.
const PARALLEL_MIN_VALUES: usize = 1 << 15;
/// Values per parallel task of the element-wise maps.
const PARALLEL_CHUNK_VALUES: usize = 1 << 13;

/// `x[i] = f(x[i])` for every value, in parallel for long slices.
fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks_mut(PARALLEL_CHUNK_VALUES)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    } else {
        x.iter_mut().for_each(|v| *v = f(*v));
    }
}

/// `a[i] = f(a[i], b[i])` for every value (same lengths), in parallel for long slices.
fn zip_in_place(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    if a.len() >= PARALLEL_MIN_VALUES {
        a.par_chunks_mut(PARALLEL_CHUNK_VALUES)
            .zip(b.par_chunks(PARALLEL_CHUNK_VALUES))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b)));
    } else {
        a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b));
    }
}

/// SiLU (swish): `x · sigmoid(x) = x / (1 + e^(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `e^x` in `f32`, within 2 ulp of the exact value wherever the result is a normal number
/// (`x` in [-86.6, 88.7]; below, 0; above, infinity; NaN stays NaN). Written with plain
/// arithmetic and selects, no call and no table, so that the element-wise loops that use it
/// vectorize (the C library's `expf`, called once per value, was 3.3% of Gemma 3's prefill).
///
/// Cody–Waite reduction `x = n·ln 2 + r` (`|r| ≤ ln 2 / 2`, `ln 2` split in two so `n·C1` is
/// exact), the degree-7 minimax polynomial of Cephes' `expf` for `e^r`, and `2^n` built in the
/// exponent bits (as `2 · 2^(n-1)`, so that `n = 128` is reachable).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // 0.693359375: few bits, so n·C1 is exact
    const C2: f32 = -2.121_944_4e-4; // ln 2 − C1
    const SHIFTER: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    const LO: f32 = -86.643; // n ≥ -125: 2^(n-1) is still normal
    const HI: f32 = 88.722_84; // ln(f32::MAX)
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let ni = t.to_bits() as i32 - SHIFTER.to_bits() as i32;
    let r = (xc - n * C1) - n * C2;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * (r * r) + r + 1.0;
    let half_scale = f32::from_bits(((ni + 126) as u32) << 23);
    let y = (e * 2.0) * half_scale;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// Applies [`silu`] to every value.
pub fn silu_in_place(x: &mut [f32]) {
    map_in_place(x, silu)
}

/// The SwiGLU feed-forward gate: `silu(gate[i]) · up[i]`; both slices have the same length
/// (usually `[n_tokens, intermediate]`).
pub fn swiglu(gate: &[f32], up: &[f32]) -> Result<Vec<f32>> {
    same_len("swiglu: gate and up", gate.len(), up.len())?;
    Ok(gate.iter().zip(up).map(|(&g, &u)| silu(g) * u).collect())
}

/// [`swiglu`] in place: `gate[i] = silu(gate[i]) · up[i]`.
pub fn swiglu_in_place(gate: &mut [f32], up: &[f32]) -> Result<()> {
    same_len("swiglu_in_place: gate and up", gate.len(), up.len())?;
    zip_in_place(gate, up, |g, u| silu(g) * u);
    Ok(())
}

/// GeGLU in place (Gemma's gate): `gate[i] = gelu_tanh(gate[i]) · up[i]`.
pub fn geglu_in_place(gate: &mut [f32], up: &[f32]) -> Result<()> {
    same_len("geglu_in_place: gate and up", gate.len(), up.len())?;
    zip_in_place(gate, up, |g, u| gelu_tanh(g) * u);
    Ok(())
}

/// Multiplies every value by `s`.
pub fn scale_in_place(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// GELU, tanh approximation (PyTorch `approximate="tanh"`, GPT-2's `gelu_new`):
/// `0.5·x·(1 + tanh(u))` with `u = sqrt(2/π)·(x + 0.044715·x³)`.
///
/// Evaluated as the identical `x / (1 + e^(−2u))` (`0.5·(1 + tanh(u))` is the logistic
/// function of `2u`): one `exp` instead of `tanh`, several times cheaper, and more accurate
/// where `1 + tanh(u)` cancels (large negative `x`); the limits are exact (`x` for large
/// positive `x`, `−0` for large negative `x`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// Applies [`gelu_tanh`] to every value.
pub fn gelu_tanh_in_place(x: &mut [f32]) {
    map_in_place(x, gelu_tanh)
}

/// GELU, exact: `x · Φ(x) = 0.5·x·erfc(-x/√2)`, evaluated in `f64` (relative error below
/// 2e-7 over the whole range, including the far negative tail).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)) as f32
}

/// Applies [`gelu_erf`] to every value.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    map_in_place(x, gelu_erf)
}

/// The residual add: `dst[i] += src[i]`; both slices have the same length.
pub fn add_in_place(dst: &mut [f32], src: &[f32]) -> Result<()> {
    same_len("add_in_place: dst and src", dst.len(), src.len())?;
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
    Ok(())
}

/// The bias add: `bias` (`d` values) added to every `d`-wide row of `rows`, one row at a time
/// by [`add_in_place`]; `rows.len()` must be a multiple of `d`.
pub fn add_rows_in_place(rows: &mut [f32], bias: &[f32]) -> Result<()> {
    if bias.is_empty() || !rows.len().is_multiple_of(bias.len()) {
        return Err(Error::Invalid(format!(
            "add_rows_in_place: {} values are not whole rows of the bias's {}",
            rows.len(),
            bias.len()
        )));
    }
    for row in rows.chunks_exact_mut(bias.len()) {
        add_in_place(row, bias)?;
    }
    Ok(())
}

/// Numerically stable softmax of one row, in place: `e^(x[i] - max) / Σ e^(x[j] - max)`.
///
/// `-inf` entries (masked positions) get probability 0. A row with no finite maximum (all
/// `-inf`, i.e. nothing to attend) becomes all zeros rather than NaN; a NaN anywhere makes
/// the whole row NaN, so that it is not hidden. An empty row is left as is.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if x.iter().any(|v| v.is_nan()) {
        x.fill(f32::NAN);
        return;
    }
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut total = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    let inv = 1.0 / total;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// An error unless two lengths agree.
fn same_len(context: &str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::shape(context, &[a], &[b]));
    }
    Ok(())
}

/// The complementary error function, with relative error below 1.2e-7 everywhere
/// (Chebyshev fit from Numerical Recipes, `erfcc`).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}
