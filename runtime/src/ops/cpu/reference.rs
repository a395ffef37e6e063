//! Naive reference implementations for the ops tests: straight from the formulas, written
//! independently of the kernels, accumulating in `f64`.

/// A tiny deterministic PRNG (SplitMix64), so tests need no `rand` crate.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// `n` values uniform in `[-1, 1)`.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-1.0, 1.0)).collect()
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// `y[i][j] = Σ_c x[i][c]·w[j][c]` for `x` `[n, k]` and `w` `[m, k]`.
pub fn matmul(x: &[f32], w: &[f32], n: usize, m: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; n * m];
    for i in 0..n {
        for j in 0..m {
            let mut acc = 0.0f64;
            for c in 0..k {
                acc += x[i * k + c] as f64 * w[j * k + c] as f64;
            }
            y[i * m + j] = acc as f32;
        }
    }
    y
}

/// `x / sqrt(mean(x²) + eps) * w` per row of `w.len()` values.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let r = 1.0 / (ms + eps as f64).sqrt();
        y.extend(
            row.iter()
                .zip(w)
                .map(|(&v, &g)| (v as f64 * r * g as f64) as f32),
        );
    }
    y
}

/// `(x - mean) / sqrt(var + eps) * w + b` per row of `w.len()` values.
pub fn layer_norm(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let r = 1.0 / (var + eps as f64).sqrt();
        for (c, &v) in row.iter().enumerate() {
            let bias = b.map_or(0.0, |b| b[c] as f64);
            y.push(((v as f64 - mean) * r * w[c] as f64 + bias) as f32);
        }
    }
    y
}

/// The rotation angle of pair `i` at `pos`, as HF computes it in `f32`:
/// `pos · 1 / theta^((2i)/rot_dim)`.
pub fn rope_angle(pos: usize, i: usize, rot_dim: usize, theta: f32) -> f64 {
    let inv_freq = 1.0f32 / theta.powf((2 * i) as f32 / rot_dim as f32);
    (pos as f32 * inv_freq) as f64
}

/// RoPE on `[n, n_heads, head_dim]`, rotating pairs `(first(i), second(i))` of each head
/// for `i < rot_dim / 2`.
fn rope(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    rot_dim: usize,
    theta: f32,
    pair: impl Fn(usize) -> (usize, usize),
) -> Vec<f32> {
    let mut y = x.to_vec();
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_heads {
            let base = (t * n_heads + h) * head_dim;
            for i in 0..rot_dim / 2 {
                let angle = rope_angle(pos, i, rot_dim, theta);
                let (c, s) = (angle.cos(), angle.sin());
                let (a, b) = pair(i);
                let (xa, xb) = (x[base + a] as f64, x[base + b] as f64);
                y[base + a] = (xa * c - xb * s) as f32;
                y[base + b] = (xa * s + xb * c) as f32;
            }
        }
    }
    y
}

/// Interleaved RoPE: pairs `(2i, 2i + 1)`.
pub fn rope_interleaved(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    rot_dim: usize,
    theta: f32,
) -> Vec<f32> {
    rope(x, n_heads, head_dim, positions, rot_dim, theta, |i| {
        (2 * i, 2 * i + 1)
    })
}

/// Split-half RoPE: pairs `(i, i + rot_dim/2)`.
pub fn rope_split_half(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    rot_dim: usize,
    theta: f32,
) -> Vec<f32> {
    rope(x, n_heads, head_dim, positions, rot_dim, theta, |i| {
        (i, i + rot_dim / 2)
    })
}

/// `e^x[i] / Σ e^x[j]`, in `f64` (shifted by the max to stay finite).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| (v / total) as f32).collect()
}

/// `x / (1 + e^-x)`.
pub fn silu(x: f32) -> f32 {
    let x = x as f64;
    (x / (1.0 + (-x).exp())) as f32
}

/// `0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: f32) -> f32 {
    let x = x as f64;
    let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    (0.5 * x * (1.0 + inner.tanh())) as f32
}

/// `x·Φ(x)`, with `Φ` from Simpson's rule on the normal density (no erf needed). The tail
/// `Q(|x|) = ∫_|x|^∞ φ` is integrated directly, so tiny results keep their relative accuracy.
pub fn gelu_erf(x: f32) -> f32 {
    let x = x as f64;
    let density = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (a, b, steps) = (x.abs(), x.abs() + 12.0, 4000);
    let h = (b - a) / steps as f64;
    let mut integral = density(a) + density(b);
    for s in 1..steps {
        let weight = if s % 2 == 1 { 4.0 } else { 2.0 };
        integral += weight * density(a + s as f64 * h);
    }
    let tail = integral * h / 3.0;
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (x * cdf) as f32
}

/// Causal grouped-query attention with an optional sliding window, straight from the
/// definition. `q` is `[n_q, n_heads, hd]`, `k` and `v` are `[n_kv_tokens, n_kv, hd]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    q_positions: &[usize],
    k: &[f32],
    v: &[f32],
    kv_positions: &[usize],
    n_heads: usize,
    n_kv: usize,
    hd: usize,
    window: Option<usize>,
) -> Vec<f32> {
    let mut out = vec![0.0f32; q.len()];
    for (t, &i) in q_positions.iter().enumerate() {
        for h in 0..n_heads {
            let kvh = h * n_kv / n_heads;
            let qh = &q[(t * n_heads + h) * hd..][..hd];
            let visible: Vec<usize> = (0..kv_positions.len())
                .filter(|&s| {
                    let j = kv_positions[s];
                    j <= i && window.is_none_or(|w| j + w > i)
                })
                .collect();
            let scores: Vec<f64> = visible
                .iter()
                .map(|&s| {
                    let kh = &k[(s * n_kv + kvh) * hd..][..hd];
                    let d: f64 = qh.iter().zip(kh).map(|(&a, &b)| a as f64 * b as f64).sum();
                    d / (hd as f64).sqrt()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for c in 0..hd {
                let mut acc = 0.0f64;
                for (&s, &p) in visible.iter().zip(&e) {
                    acc += p / total * v[(s * n_kv + kvh) * hd + c] as f64;
                }
                out[(t * n_heads + h) * hd + c] = acc as f32;
            }
        }
    }
    out
}
