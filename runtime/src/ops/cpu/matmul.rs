//! Products of `f32` activations with weights in any dtype: `matvec` (decode) and `matmul`
//! (prefill).

use super::vector::dot;
use crate::device::Tensor;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// `f32` values in one dequantized weight tile of `matmul` (64 KiB, so it stays in L2).
const TILE_VALUES: usize = 16 * 1024;
/// Fewest multiply-adds worth a rayon task of `matvec` (a task's dispatch costs about a
/// microsecond; 64 Ki fused multiply-adds take several).
const MIN_TASK_MACS: usize = 64 * 1024;
/// `matvec` tasks per thread: few, since decode's matrices are small and every row costs
/// the same (two per thread still lets a thread that finishes early take over).
const TASKS_PER_THREAD: usize = 2;

/// `y = W x`: `w` is `[m, k]` in any dtype, `x` has `k` values; returns `m` values.
///
/// Rows are split into chunks processed in parallel; each chunk's rows are read once in their
/// stored format by [`dtype::dot_rows`] (fused kernels: block scales factored out, the
/// activations' block sums computed once per chunk) and multiplied with the `f32`
/// activations, accumulating in `f32`.
pub fn matvec(w: &Tensor, x: &[f32]) -> Result<Vec<f32>> {
    let (m, k) = weight_dims("matvec", w)?;
    if x.len() != k {
        return Err(Error::shape(
            format!("matvec: x against weight {:?}", w.shape()),
            &[k],
            &[x.len()],
        ));
    }
    let mut y = vec![0.0f32; m];
    if m == 0 || k == 0 {
        return Ok(y);
    }
    let rows_per_task = rows_per_task(m, k);
    if let Some(wf) = dense_f32(w) {
        y.par_chunks_mut(rows_per_task)
            .zip(wf.par_chunks(rows_per_task * k))
            .for_each(|(ys, rows)| {
                for (y, row) in ys.iter_mut().zip(rows.chunks_exact(k)) {
                    *y = dot(row, x);
                }
            });
    } else {
        let (dtype, stride) = (w.dtype(), w.row_stride_bytes());
        y.par_chunks_mut(rows_per_task)
            .zip(w.host_bytes()?.par_chunks(rows_per_task * stride))
            .try_for_each(|(ys, rows)| dtype::dot_rows(dtype, rows, x, ys))?;
    }
    Ok(y)
}

/// `y = x Wᵀ`: `x` is `[n, k]` `f32` activations, `w` is `[m, k]` in any dtype; returns
/// `[n, m]`.
///
/// Weight rows are processed in tiles in parallel: a tile is dequantized once into an `f32`
/// buffer (f32 weights are used in place) and reused for all `n` activation rows. The
/// activations are never rounded (no 8-bit activation quantization). A single activation row
/// takes the [`matvec`] path, which streams the stored blocks without a tile buffer.
pub fn matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, k) = weight_dims("matmul", w)?;
    let n = match x.shape() {
        &[n, kx] if kx == k => n,
        other => {
            return Err(Error::shape(
                format!("matmul: x [n, k] against weight {:?}", w.shape()),
                &[other.first().copied().unwrap_or(0), k],
                other,
            ))
        }
    };
    if x.dtype() != DType::F32 {
        return Err(Error::DType {
            context: "matmul: activations x".into(),
            dtype: x.dtype().to_string(),
        });
    }
    let xs = x.as_f32()?;
    if n == 1 {
        return Tensor::from_f32([1, m], matvec(w, xs)?);
    }
    if n == 0 || m == 0 || k == 0 {
        return Ok(Tensor::zeros([n, m]));
    }

    let tile_rows = tile_rows(m, k);
    let dense = dense_f32(w);
    let (dtype, stride, bytes) = (w.dtype(), w.row_stride_bytes(), w.host_bytes()?);
    // Output transposed, [m, n], so that each tile owns one contiguous chunk of it.
    let mut yt = vec![0.0f32; m * n];
    yt.par_chunks_mut(tile_rows * n)
        .enumerate()
        .try_for_each_init(Vec::new, |buf: &mut Vec<f32>, (t, yt_tile)| -> Result<()> {
            let (r0, rows) = (t * tile_rows, yt_tile.len() / n);
            let tile: &[f32] = match dense {
                Some(wf) => &wf[r0 * k..(r0 + rows) * k],
                None => {
                    buf.resize(rows * k, 0.0);
                    dtype::dequantize(dtype, &bytes[r0 * stride..(r0 + rows) * stride], buf)?;
                    buf
                }
            };
            tile_product(xs, tile, k, yt_tile);
            Ok(())
        })?;

    let mut y = vec![0.0f32; n * m];
    for (r, column) in yt.chunks_exact(n).enumerate() {
        for (i, &v) in column.iter().enumerate() {
            y[i * m + r] = v;
        }
    }
    Tensor::from_f32([n, m], y)
}

/// Activation rows per register block of [`tile_product`].
const XR: usize = 4;
/// Weight rows per register block of [`tile_product`].
const WR: usize = 2;
/// Lanes of each accumulator in a register block.
const LANES: usize = 4;

/// `out[r·n + i] = x_i · w_r` for the `n` rows of `x` and the rows of `w` (all `k` wide), in
/// register blocks of [`XR`] × [`WR`] rows so that every value loaded feeds several products
/// (a plain dot product loads two values per multiply-add and is bound by loads).
fn tile_product(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
    let (n, rows) = (x.len() / k, w.len() / k);
    let (n_blocked, rows_blocked) = (n - n % XR, rows - rows % WR);
    for i in (0..n_blocked).step_by(XR) {
        let xb = &x[i * k..(i + XR) * k];
        for r in (0..rows_blocked).step_by(WR) {
            let d = dot_block(xb, &w[r * k..(r + WR) * k], k);
            for (a, da) in d.iter().enumerate() {
                for (b, &v) in da.iter().enumerate() {
                    out[(r + b) * n + i + a] = v;
                }
            }
        }
        for r in rows_blocked..rows {
            for a in 0..XR {
                out[r * n + i + a] = dot(&xb[a * k..(a + 1) * k], &w[r * k..(r + 1) * k]);
            }
        }
    }
    for i in n_blocked..n {
        for r in 0..rows {
            out[r * n + i] = dot(&x[i * k..(i + 1) * k], &w[r * k..(r + 1) * k]);
        }
    }
}

/// The [`XR`] × [`WR`] dot products of `x` (`XR` rows) with `w` (`WR` rows), `k` wide.
#[inline(always)]
fn dot_block(x: &[f32], w: &[f32], k: usize) -> [[f32; WR]; XR] {
    let mut acc = [[[0.0f32; LANES]; WR]; XR];
    let body = k - k % LANES;
    for c in (0..body).step_by(LANES) {
        let wv: [[f32; LANES]; WR] = std::array::from_fn(|b| {
            let at = b * k + c;
            w[at..at + LANES].try_into().expect("LANES values")
        });
        for (a, acc_a) in acc.iter_mut().enumerate() {
            let at = a * k + c;
            let xv: [f32; LANES] = x[at..at + LANES].try_into().expect("LANES values");
            for (acc_ab, wb) in acc_a.iter_mut().zip(&wv) {
                for l in 0..LANES {
                    acc_ab[l] += xv[l] * wb[l];
                }
            }
        }
    }
    std::array::from_fn(|a| {
        std::array::from_fn(|b| {
            let tail = dot(&x[a * k + body..(a + 1) * k], &w[b * k + body..(b + 1) * k]);
            acc[a][b].iter().sum::<f32>() + tail
        })
    })
}

/// The `[m, k]` dimensions of a weight matrix.
fn weight_dims(op: &str, w: &Tensor) -> Result<(usize, usize)> {
    match w.shape() {
        &[m, k] => Ok((m, k)),
        other => Err(Error::Invalid(format!(
            "{op}: the weight must be a matrix [m, k], found shape {other:?}"
        ))),
    }
}

/// The weight's values when they are `f32` and aligned, so they can be used in place.
fn dense_f32(w: &Tensor) -> Option<&[f32]> {
    if w.dtype() == DType::F32 {
        w.as_f32().ok()
    } else {
        None
    }
}

/// Rows per `matvec` task: about eight tasks per thread, none too small to be worth it.
fn rows_per_task(m: usize, k: usize) -> usize {
    let balance = m.div_ceil(TASKS_PER_THREAD * rayon::current_num_threads().max(1));
    let overhead = MIN_TASK_MACS.div_ceil(k.max(1));
    balance.max(overhead).clamp(1, m.max(1))
}

/// Weight rows per `matmul` tile: a tile fits [`TILE_VALUES`], and every thread gets a few.
fn tile_rows(m: usize, k: usize) -> usize {
    let cache = TILE_VALUES / k.max(1);
    let balance = m.div_ceil(4 * rayon::current_num_threads().max(1));
    cache.min(balance).max(1)
}
