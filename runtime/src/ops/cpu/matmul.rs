//! Products of `f32` activations with weights in any dtype: `matvec` (decode) and `matmul`
//! (prefill).

use super::vector::dot;
use crate::device::Tensor;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Most `f32` values in one dequantized weight tile of `matmul` (1 MiB; with the `[n, k]`
/// activations it stays in L2, and `gemm` packs its own cache blocks from it).
const TILE_VALUES: usize = 256 * 1024;
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
    let mut y = vec![0.0f32; n * m];
    let dst = Columns {
        ptr: y.as_mut_ptr(),
        len: y.len(),
    };
    (0..m.div_ceil(tile_rows))
        .into_par_iter()
        .try_for_each_init(Vec::new, |buf: &mut Vec<f32>, t| -> Result<()> {
            let r0 = t * tile_rows;
            let rows = tile_rows.min(m - r0);
            let tile: &[f32] = match dense {
                Some(wf) => &wf[r0 * k..(r0 + rows) * k],
                None => {
                    buf.resize(rows * k, 0.0);
                    // In pieces small enough that `dequantize` stays on this thread.
                    let piece_rows = (DEQUANT_PIECE_VALUES / k).max(1);
                    for (p, out) in buf.chunks_mut(piece_rows * k).enumerate() {
                        let b0 = (r0 + p * piece_rows) * stride;
                        let b1 = b0 + out.len() / k * stride;
                        dtype::dequantize(dtype, &bytes[b0..b1], out)?;
                    }
                    buf
                }
            };
            tile_product(xs, tile, k, &dst, m, r0);
            Ok(())
        })?;
    Tensor::from_f32([n, m], y)
}

/// Most values dequantized by one `dtype::dequantize` call of `matmul` (below the size at
/// which it splits the work over the thread pool itself).
const DEQUANT_PIECE_VALUES: usize = 1 << 16;

/// The `[n, m]` output of `matmul`, shared by the tasks that each write their own columns.
struct Columns {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `Columns` is only a pointer to the output buffer, which outlives the parallel loop;
// the tasks write disjoint column ranges of it (see `tile_product`), so sharing it across
// threads never makes two of them touch the same value.
unsafe impl Sync for Columns {}

/// `y[i·m + r0 + r] = x_i · w_r` for the `n` rows of `x` and the rows of `w` (all `k`
/// wide): an `f32` GEMM with `f32` accumulation, written straight into columns
/// `r0..r0 + rows` of the `[n, m]` output (one thread; the caller parallelizes over tiles).
fn tile_product(x: &[f32], w: &[f32], k: usize, y: &Columns, m: usize, r0: usize) {
    let (n, rows) = (x.len() / k, w.len() / k);
    assert!(
        x.len() == n * k && w.len() == rows * k && r0 + rows <= m && n * m <= y.len,
        "tile_product: sizes"
    );
    // SAFETY: the asserts above keep every access in bounds: `x` is `[n, k]` (row stride
    // `k`), the tile `w` read as `wᵀ` is `[k, rows]` (row stride 1, column stride `k`), and
    // the destination block is rows `0..n` × columns `r0..r0 + rows` of `y`'s `[n, m]`
    // (row stride `m`), which this task alone writes (`Columns`). `read_dst` is false, so
    // the destination is only written.
    unsafe {
        gemm::gemm(
            n,
            rows,
            k,
            y.ptr.add(r0),
            1,
            m as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
