//! Fused row-dot kernels: `out[r] = Σ_i dequantize(row r)[i] · x[i]` straight from the
//! stored blocks, with `f32` activations (never rounded to 8 bits).
//!
//! Each kernel factors the block and sub-block scales out of the inner sums
//! (`d · Σ q·x`, plus `m · Σ x` for formats with a minimum) and accumulates with
//! multiply-adds in several independent partial sums, so results differ from a
//! sequential sum only by rounding (a few ulps of `Σ |w·x|`). The sums of `x` over each
//! 16- or 32-value sub-block, which the minimum terms need, are computed once per call of
//! [`dot_rows`] and shared by every row.
//!
//! Three builds of each kernel: AVX-512 (F and BW, with AVX2, FMA and F16C), AVX2 with
//! FMA and F16C, and a portable one; [`dot_rows`] picks one per call from what the CPU
//! reports at run time.

use super::DType;
use crate::error::{Error, Result};

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

/// A batch kernel: `out[r]` is the dot product of row `r` of `rows` (each `stride` bytes)
/// with `x`; `sums` holds the activation sub-block sums the dtype needs (see
/// [`sum_width`]).
///
/// # Safety
///
/// The CPU must have the features the kernel was compiled for (see [`Kernel::available`]).
/// Lengths need no care for memory safety: kernels read only through checked slices, so a
/// mismatch gives a wrong answer, never an out-of-bounds read.
pub(crate) type RowsFn =
    unsafe fn(rows: &[u8], stride: usize, x: &[f32], sums: &[f32], out: &mut [f32]);

/// One compiled kernel for one dtype.
#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    /// `"avx512"`, `"avx2"` or `"portable"`.
    pub(crate) isa: &'static str,
    pub(crate) rows: RowsFn,
    /// Whether the kernel reads `x` interleaved within each 32 values (see
    /// `x86::interleave32`) rather than as stored.
    pub(crate) interleaved: bool,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub(crate) fn available(&self) -> bool {
        match self.isa {
            "portable" => true,
            #[cfg(target_arch = "x86_64")]
            "avx2" => has_avx2(),
            #[cfg(target_arch = "x86_64")]
            "avx512" => has_avx512(),
            _ => false,
        }
    }

    /// Runs the kernel on rows that were already checked to encode `x.len()` values each.
    fn run(&self, dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) {
        let sums = sub_block_sums(dtype, x);
        let xi = self.interleaved.then(|| interleave32(x));
        self.run_with(rows, xi.as_deref().unwrap_or(x), &sums, out)
    }

    /// [`run`](Kernel::run) with the activation sums already computed
    /// (`sub_block_sums(dtype, x)`) and `x` in the kernel's order.
    fn run_with(&self, rows: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
        if out.is_empty() || x.is_empty() {
            out.fill(0.0);
            return;
        }
        let stride = rows.len() / out.len();
        debug_assert!(self.available());
        // SAFETY: every `Kernel` handed out by `best` or `all` (the only constructors
        // callers reach) was checked with `available()`, i.e. the CPU has the features
        // the kernel is compiled for; lengths do not affect memory safety (see `RowsFn`).
        unsafe { (self.rows)(rows, stride, x, sums, out) }
    }
}

/// Activations prepared once for several row-dot calls (decode's products that share an
/// input: q, k and v; gate and up; or the parts of one matrix split across threads): `x`
/// and the sub-block sums of `x` the given dtypes need.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    x: &'a [f32],
    sums16: Vec<f32>,
    sums32: Vec<f32>,
    /// `x` interleaved, if one of the dtypes' kernels reads it so.
    interleaved: Option<Vec<f32>>,
}

impl<'a> Prepared<'a> {
    /// Prepares `x` for rows of any of `dtypes`.
    pub fn new(x: &'a [f32], dtypes: impl IntoIterator<Item = DType>) -> Prepared<'a> {
        let (mut sums16, mut sums32, mut interleaved) = (Vec::new(), Vec::new(), None);
        for dtype in dtypes {
            match sum_width(dtype) {
                Some(16) if sums16.is_empty() => sums16 = sub_block_sums(dtype, x),
                Some(32) if sums32.is_empty() => sums32 = sub_block_sums(dtype, x),
                _ => {}
            }
            if interleaved.is_none() && best(dtype).interleaved {
                interleaved = Some(interleave32(x));
            }
        }
        Prepared {
            x,
            sums16,
            sums32,
            interleaved,
        }
    }

    /// The activations.
    pub fn x(&self) -> &'a [f32] {
        self.x
    }

    /// The sums `dtype`'s kernel reads; an error if they were not prepared for it.
    fn sums(&self, dtype: DType) -> Result<&[f32]> {
        let (sums, w) = match sum_width(dtype) {
            None => return Ok(&[]),
            Some(16) => (&self.sums16, 16),
            Some(_) => (&self.sums32, 32),
        };
        if sums.len() != self.x.len() / w {
            return Err(Error::Invalid(format!(
                "dot_rows_prepared {dtype}: the activations were not prepared for {dtype}"
            )));
        }
        Ok(sums)
    }
}

/// [`dot_rows`] with activations prepared by [`Prepared::new`] (for `dtype` among others):
/// the sums are not recomputed, so parts of one product, or products that share an input,
/// prepare `x` once.
pub fn dot_rows_prepared(
    dtype: DType,
    rows: &[u8],
    x: &Prepared<'_>,
    out: &mut [f32],
) -> Result<()> {
    let Some(stride) = row_stride(dtype, rows, out.len())? else {
        return Ok(());
    };
    check_len("dot_rows", dtype, stride, x.x.len())?;
    let kernel = best(dtype);
    let xs = match (&x.interleaved, kernel.interleaved) {
        (Some(xi), true) => xi.as_slice(),
        (None, true) => {
            return Err(Error::Invalid(format!(
                "dot_rows_prepared {dtype}: the activations were not prepared for {dtype}"
            )))
        }
        (_, false) => x.x,
    };
    kernel.run_with(rows, xs, x.sums(dtype)?, out);
    Ok(())
}

/// The byte stride of `n` rows in `rows`: `None` for no rows and no bytes; an error if the
/// bytes do not split into `n` rows.
fn row_stride(dtype: DType, rows: &[u8], n: usize) -> Result<Option<usize>> {
    match n {
        0 if rows.is_empty() => Ok(None),
        0 => Err(Error::Invalid(format!(
            "dot_rows {dtype}: {} bytes for 0 rows",
            rows.len()
        ))),
        n if rows.len().is_multiple_of(n) => Ok(Some(rows.len() / n)),
        n => Err(Error::Invalid(format!(
            "dot_rows {dtype}: {} bytes do not split into {n} rows",
            rows.len()
        ))),
    }
}

/// The widest instruction set the row-dot kernels (and dequantization) may use, from the
/// environment variable
/// `LAZYFORGE_CPU_KERNELS` (`avx512`, `avx2` or `portable`; unset or `auto`: whatever the
/// CPU has), read once. A cap, never a promise: `avx512` on a CPU without it still runs
/// the AVX2 or portable kernels. Meant for comparing kernels on one machine and for
/// ruling a kernel out when chasing a numerical difference. An unknown value is reported
/// once on standard error and ignored.
fn isa_cap() -> u8 {
    static CAP: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("LAZYFORGE_CPU_KERNELS") {
        Err(_) => 2,
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "auto" | "avx512" => 2,
            "avx2" => 1,
            "portable" => 0,
            other => {
                eprintln!(
                    "lazyforge: LAZYFORGE_CPU_KERNELS={other:?} is not one of auto, avx512, \
                     avx2, portable; using auto"
                );
                2
            }
        },
    })
}

#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2() -> bool {
    isa_cap() >= 1
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    isa_cap() >= 2
        && has_avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Every kernel compiled for `dtype` that this CPU can run, fastest first.
#[cfg(test)]
pub(crate) fn all(dtype: DType) -> Vec<Kernel> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(rows) = x86_512::kernel(dtype) {
            v.push(Kernel {
                isa: "avx512",
                rows,
                interleaved: false,
            });
        }
        v.push(Kernel {
            isa: "avx2",
            rows: x86::kernel(dtype),
            interleaved: x86::interleaved(dtype),
        });
    }
    v.push(Kernel {
        isa: "portable",
        rows: portable::kernel(dtype),
        interleaved: false,
    });
    v.retain(Kernel::available);
    v
}

/// Dtypes whose AVX2 kernel is dispatched even where AVX-512 is available: on the AVX-512
/// host measured (AMD EPYC, Zen 4 class, 2 cores; `rowdot_min` alternating
/// `LAZYFORGE_CPU_KERNELS=avx2` and auto, BENCHMARKS.md) the AVX2 builds of these ran faster
/// (Q4_1 8.7 against 6.3 GB/s, Q6_K 8.7 against 7.2 GB/s single-thread), and SmolLM2 Q4_1
/// decoded at 111–112 against 105–110 tok/s. Their AVX-512 builds stay tested (`all`).
const AVX2_PREFERRED: [DType; 2] = [DType::Q4_1, DType::Q6_K];

/// The fastest kernel for `dtype` on this CPU.
pub(crate) fn best(dtype: DType) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() && !AVX2_PREFERRED.contains(&dtype) {
            if let Some(rows) = x86_512::kernel(dtype) {
                return Kernel {
                    isa: "avx512",
                    rows,
                    interleaved: false,
                };
            }
        }
        if has_avx2() {
            return Kernel {
                isa: "avx2",
                rows: x86::kernel(dtype),
                interleaved: x86::interleaved(dtype),
            };
        }
    }
    Kernel {
        isa: "portable",
        rows: portable::kernel(dtype),
        interleaved: false,
    }
}

/// The instruction set of the row-dot kernel [`dot_rows`] uses for `dtype` on this CPU:
/// `"avx512"`, `"avx2"` or `"portable"` (after the `LAZYFORGE_CPU_KERNELS` cap).
pub fn kernel_isa(dtype: DType) -> &'static str {
    best(dtype).isa
}

/// `x` interleaved for the kernels that read it so (`x86::interleave32`); a plain copy where
/// there are no such kernels.
fn interleave32(x: &[f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    return x86::interleave32(x);
    #[cfg(not(target_arch = "x86_64"))]
    return x.to_vec();
}

/// Width of the activation sub-block sums a dtype's minimum terms need, if any.
pub(crate) const fn sum_width(dtype: DType) -> Option<usize> {
    match dtype {
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => Some(32),
        DType::Q2_K => Some(16),
        _ => None,
    }
}

/// `Σ x` over each `sum_width(dtype)`-value sub-block (empty when the dtype needs none).
fn sub_block_sums(dtype: DType, x: &[f32]) -> Vec<f32> {
    match sum_width(dtype) {
        Some(w) => x
            .chunks_exact(w)
            .map(|c| {
                // Eight partial sums: short dependency chains, and the order barely matters
                // for accuracy over 16 or 32 values.
                let mut l = [0f32; 8];
                for c in c.chunks_exact(8) {
                    for k in 0..8 {
                        l[k] += c[k];
                    }
                }
                l.iter().sum()
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Checks that `n_bytes` of `dtype` encode exactly `n_values` values.
pub(crate) fn check_len(op: &str, dtype: DType, n_bytes: usize, n_values: usize) -> Result<()> {
    let (bs, ts) = (dtype.block_size(), dtype.type_size());
    if !n_bytes.is_multiple_of(ts) || (n_bytes / ts).checked_mul(bs) != Some(n_values) {
        return Err(Error::Invalid(format!(
            "{op} {dtype}: {n_bytes} bytes do not encode {n_values} values \
             ({ts} bytes per {bs} values)"
        )));
    }
    Ok(())
}

/// Computes `out[r] = dot(dtype, row r, x)` for `out.len()` consecutive rows of `dtype`,
/// each encoding `x.len()` values: the batch entry point of decode's matrix-vector product.
///
/// Lengths are checked, the kernel for this CPU (AVX-512, AVX2 + FMA, or portable) is
/// chosen, and the activation sums some formats need are computed, all once per call, not
/// once per row. Activations stay `f32`; scales are factored out of each block's sum and
/// products are fused into multiply-adds, so each result is within a few ulps of
/// `Σ |w·x|` of the exact dot product of the dequantized row with `x`.
///
/// Returns an error if `rows` is not `out.len()` rows of exactly `x.len()` values each.
///
/// ```
/// use lazyforge::{dtype, DType};
/// // Two Q8_0 rows of 32 values: scale 0.5 (f16 0x3800), then the signed bytes.
/// let mut rows = Vec::new();
/// for q in [1i8, -2] {
///     rows.extend_from_slice(&0x3800u16.to_le_bytes());
///     rows.extend(std::iter::repeat(q as u8).take(32));
/// }
/// let x = vec![1.0f32; 32];
/// let mut y = [0f32; 2];
/// dtype::dot_rows(DType::Q8_0, &rows, &x, &mut y).unwrap();
/// assert_eq!(y, [16.0, -32.0]);
/// ```
pub fn dot_rows(dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) -> Result<()> {
    let Some(stride) = row_stride(dtype, rows, out.len())? else {
        return Ok(());
    };
    check_len("dot_rows", dtype, stride, x.len())?;
    best(dtype).run(dtype, rows, x, out);
    Ok(())
}

/// One row: [`dot_rows`] with a single output.
pub(crate) fn dot_one(dtype: DType, row: &[u8], x: &[f32]) -> Result<f32> {
    check_len("dot", dtype, row.len(), x.len())?;
    let mut out = [0f32];
    best(dtype).run(dtype, row, x, &mut out);
    Ok(out[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::dequantize;
    use half::{bf16, f16};

    /// xorshift64*, so the tests need no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    /// Offsets of the f16 scale fields in a block of `dtype`.
    fn f16_fields(dtype: DType) -> &'static [usize] {
        match dtype {
            DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
            DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
            DType::Q2_K => &[80, 82],
            DType::Q3_K => &[108],
            DType::Q6_K => &[208],
            _ => &[],
        }
    }

    /// `n_blocks` blocks of `dtype`: every byte `fill(i)`, then the float fields (scales,
    /// plain values) set by `float(i)`, kept finite.
    fn row(
        dtype: DType,
        n_blocks: usize,
        mut fill: impl FnMut() -> u8,
        mut float: impl FnMut() -> f32,
    ) -> Vec<u8> {
        let ts = dtype.type_size();
        let mut row: Vec<u8> = (0..n_blocks * ts).map(|_| fill()).collect();
        for block in row.chunks_exact_mut(ts) {
            for &off in f16_fields(dtype) {
                block[off..off + 2].copy_from_slice(&f16::from_f32(float()).to_le_bytes());
            }
            match dtype {
                DType::F32 | DType::Q8_K => block[0..4].copy_from_slice(&float().to_le_bytes()),
                DType::F16 => block.copy_from_slice(&f16::from_f32(float()).to_le_bytes()),
                DType::BF16 => block.copy_from_slice(&bf16::from_f32(float()).to_le_bytes()),
                _ => {}
            }
        }
        row
    }

    /// Dequantizes one row.
    fn weights(dtype: DType, row: &[u8], n: usize) -> Vec<f32> {
        let mut w = vec![0f32; n];
        dequantize(dtype, row, &mut w).unwrap();
        w
    }

    /// The error scale of one row: `Σ |w·x|`, or for formats with a minimum (whose kernels
    /// compute `d·Σ q·x − m·Σ x`, as the minimum is factored out) the larger
    /// `Σ (|d·q| + |m|)·|x|`: where `d·q` and `m` cancel in a weight, the weight itself
    /// (dequantized in `f32`) is only known to rounding of those terms.
    fn error_scale(dtype: DType, row: &[u8], x: &[f32]) -> f64 {
        let abs = |w: &[f32]| -> f64 {
            w.iter()
                .zip(x)
                .map(|(&w, &x)| (w as f64 * x as f64).abs())
                .sum()
        };
        let plain = abs(&weights(dtype, row, x.len()));
        if sum_width(dtype).is_none() {
            return plain;
        }
        // The first f16 field scales the values, the second the minimum: zero one, then
        // the other, in every block.
        let without = |field: usize| {
            let mut r = row.to_vec();
            for b in r.chunks_exact_mut(dtype.type_size()) {
                b[field..field + 2].fill(0);
            }
            weights(dtype, &r, x.len())
        };
        let (fields, n) = (f16_fields(dtype), x.len());
        let (values, mins) = (without(fields[1]), without(fields[0]));
        let split: f64 = (0..n)
            .map(|i| (values[i].abs() as f64 + mins[i].abs() as f64) * (x[i] as f64).abs())
            .sum();
        plain.max(split)
    }

    /// Checks every kernel this CPU runs for `dtype` on `rows` against
    /// dequantize-then-sequential-f64-sum, within `1e-5` of [`error_scale`]; returns the
    /// largest error relative to `Σ |w·x|` and to the error scale.
    fn check(dtype: DType, rows: &[u8], x: &[f32], what: &str) -> (f64, f64) {
        let n = x.len();
        let stride = dtype.bytes_for(n).unwrap();
        let n_rows = rows.len() / stride;
        let mut worst = (0f64, 0f64);
        for kernel in all(dtype) {
            let mut out = vec![f32::NAN; n_rows];
            kernel.run(dtype, rows, x, &mut out);
            for (r, (&got, row)) in out.iter().zip(rows.chunks_exact(stride)).enumerate() {
                let w = weights(dtype, row, n);
                let exact: f64 = w.iter().zip(x).map(|(&w, &x)| w as f64 * x as f64).sum();
                let plain: f64 = w
                    .iter()
                    .zip(x)
                    .map(|(&w, &x)| (w as f64 * x as f64).abs())
                    .sum();
                let scale = error_scale(dtype, row, x);
                let err = (got as f64 - exact).abs();
                assert!(
                    err <= 1e-5 * scale,
                    "{dtype} {} {what} row {r}: {got} vs {exact} (error scale {scale})",
                    kernel.isa
                );
                let rel = |s: f64| if err == 0.0 { 0.0 } else { err / s };
                worst = (worst.0.max(rel(plain)), worst.1.max(rel(scale)));
            }
        }
        worst
    }

    #[test]
    fn every_kernel_matches_dequantize_then_sum_on_random_blocks() {
        let (mut bytes, mut floats, mut acts) = (Rng(0x243F_6A88), Rng(0x85A3_08D3), Rng(0x1319));
        for dtype in DType::ALL {
            let lens: &[usize] = if dtype.is_quantized() {
                &[256, 1536]
            } else {
                &[1, 7, 8, 33, 576, 1003]
            };
            let mut worst = (0f64, 0f64);
            for &n in lens {
                let n_blocks = 5 * n / dtype.block_size();
                let rows = row(
                    dtype,
                    n_blocks,
                    || bytes.next() as u8,
                    || 2.0 * floats.unit(),
                );
                let x: Vec<f32> = (0..n).map(|_| acts.unit()).collect();
                let (a, b) = check(dtype, &rows, &x, "random");
                worst = (worst.0.max(a), worst.1.max(b));
            }
            eprintln!(
                "{dtype} random: worst error {:.2e} of sum |w x|, {:.2e} of the error scale",
                worst.0, worst.1
            );
        }
    }

    #[test]
    fn every_kernel_matches_dequantize_then_sum_on_extreme_blocks() {
        let mut acts = Rng(0xA409_3822);
        // Every byte the same: all-zero and all-one bit fields, sign bits, alternating bits.
        let fills = [0x00u8, 0xFF, 0x0F, 0xF0, 0x80, 0x7F, 0x55, 0xAA];
        for dtype in DType::ALL {
            // Scales at the f16 extremes (largest, smallest normal, a subnormal), both signs;
            // plain floats large but far from overflow over 1536 terms.
            let floats: &[f32] = match dtype {
                DType::F32 | DType::BF16 => &[1e30, -1e30, 1e-30, 1.0],
                DType::Q8_K => &[1e20, -1e20, 1e-20, 1.0],
                _ => &[65504.0, -65504.0, 6.1e-5, -6e-8, 1.0],
            };
            let mut worst = (0f64, 0f64);
            for &fill in &fills {
                for &f in floats {
                    let n = 1536;
                    let rows = row(dtype, 2 * n / dtype.block_size(), || fill, || f);
                    let x: Vec<f32> = (0..n).map(|_| acts.unit()).collect();
                    let ones = vec![1.0f32; n];
                    for (x, kind) in [(&x, "random x"), (&ones, "x = 1")] {
                        let what = format!("fill {fill:#04x} scale {f} {kind}");
                        let (a, b) = check(dtype, &rows, x, &what);
                        // Σ |w·x| is 0 where every weight cancels exactly; skip it there.
                        worst = (
                            if a.is_finite() {
                                worst.0.max(a)
                            } else {
                                worst.0
                            },
                            worst.1.max(b),
                        );
                    }
                }
            }
            eprintln!(
                "{dtype} extreme: worst error {:.2e} of sum |w x|, {:.2e} of the error scale",
                worst.0, worst.1
            );
        }
    }

    #[test]
    fn dot_rows_is_dot_per_row_and_checks_lengths() {
        let mut rng = Rng(99);
        for dtype in DType::ALL {
            let n = 512;
            let rows = row(
                dtype,
                3 * n / dtype.block_size(),
                || rng.next() as u8,
                || 0.5,
            );
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut out = [0f32; 3];
            dot_rows(dtype, &rows, &x, &mut out).unwrap();
            let stride = rows.len() / 3;
            for (y, r) in out.iter().zip(rows.chunks_exact(stride)) {
                assert_eq!(
                    y.to_bits(),
                    crate::dtype::dot(dtype, r, &x).unwrap().to_bits()
                );
            }
            assert!(
                dot_rows(dtype, &rows, &x, &mut [0f32; 2]).is_err(),
                "{dtype}"
            );
            assert!(
                dot_rows(dtype, &rows, &x[..n / 2], &mut out).is_err(),
                "{dtype}"
            );
            assert!(
                dot_rows(dtype, &rows[1..], &x, &mut out).is_err(),
                "{dtype}"
            );
            assert!(dot_rows(dtype, &rows, &x, &mut []).is_err(), "{dtype}");
            dot_rows(dtype, &[], &x, &mut []).unwrap();
        }
        // Zero-length rows: every output is 0.
        let mut out = [1f32; 4];
        dot_rows(DType::F32, &[], &[], &mut out).unwrap();
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn prepared_rows_match_the_portable_kernel_for_every_dtype_and_odd_shapes() {
        let mut rng = Rng(0x51_7CC1_B727);
        for dtype in DType::ALL {
            // Block counts that leave tails of every vector and unroll width.
            let lens: &[usize] = if dtype.is_quantized() {
                &[1, 3, 5, 7]
            } else {
                &[1, 3, 9, 17, 31]
            };
            for &blocks in lens {
                let n = blocks * dtype.block_size();
                for n_rows in [1, 2, 5] {
                    let rows = row(dtype, n_rows * blocks, || rng.next() as u8, || 0.7);
                    let x: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
                    let prepared = Prepared::new(&x, [DType::Q8_0, dtype, DType::Q2_K]);
                    let mut got = vec![f32::NAN; n_rows];
                    dot_rows_prepared(dtype, &rows, &prepared, &mut got).unwrap();
                    let portable = Kernel {
                        isa: "portable",
                        rows: portable::kernel(dtype),
                        interleaved: false,
                    };
                    let mut want = vec![f32::NAN; n_rows];
                    portable.run(dtype, &rows, &x, &mut want);
                    let stride = rows.len() / n_rows;
                    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                        let scale = error_scale(dtype, &rows[r * stride..(r + 1) * stride], &x);
                        assert!(
                            ((g - w) as f64).abs() <= 1e-5 * scale.max(f64::MIN_POSITIVE),
                            "{dtype} {n} values row {r}: {g} vs portable {w}"
                        );
                    }
                }
            }
        }
        // Activations prepared without the dtype's sums are refused, not misread.
        let x = vec![1.0f32; 32];
        let plain = Prepared::new(&x, [DType::F32]);
        let mut out = [0f32; 1];
        assert!(dot_rows_prepared(DType::Q4_1, &[0u8; 20], &plain, &mut out).is_err());
    }

    #[test]
    fn this_cpu_runs_the_vector_kernels_it_reports() {
        // Not an assertion about the host: a record, in the test output, of what ran.
        for dtype in [DType::Q4_0, DType::Q4_K] {
            let isas: Vec<&str> = all(dtype).iter().map(|k| k.isa).collect();
            eprintln!("{dtype}: kernels {isas:?}, dispatched {}", best(dtype).isa);
            assert_eq!(best(dtype).isa, isas[0]);
        }
        for dtype in AVX2_PREFERRED {
            let isas: Vec<&str> = all(dtype).iter().map(|k| k.isa).collect();
            let best = best(dtype).isa;
            eprintln!("{dtype}: kernels {isas:?}, dispatched {best}");
            assert!(best != "avx512", "{dtype} prefers its AVX2 kernel");
        }
    }
}
