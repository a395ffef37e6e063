//! Products of `f32` activations with weights in any dtype: `matvec` (decode) and `matmul`
//! (prefill).

use super::team::Team;
use crate::device::Tensor;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Most `f32` values in one dequantized weight tile of `matmul` (1 MiB; with the `[n, k]`
/// activations it stays in L2, and `gemm` packs its own cache blocks from it).
const TILE_VALUES: usize = 256 * 1024;
/// Fewest weight bytes worth a part of a `matvec` team job (claiming a part costs a
/// compare-and-swap on a shared line; 8 KiB of weights take about a microsecond).
const MIN_PART_BYTES: usize = 8 * 1024;
/// `matvec` parts per team thread: a few, so that a thread that is late (descheduled on a
/// loaded machine, or still waking) leaves its share to the others.
const PARTS_PER_THREAD: usize = 4;
/// Part boundaries fall on multiples of this many rows (a 64-byte line of `f32` outputs), so
/// two threads never write one cache line.
const ROW_ALIGN: usize = 16;

/// `y = W x`: `w` is `[m, k]` in any dtype, `x` has `k` values; returns `m` values.
///
/// The rows are split into contiguous parts run by the decode [`Team`]; each part's rows are
/// read once in their stored format by [`dtype::dot_rows_prepared`] (fused kernels: block
/// scales factored out, the activations' block sums computed once per product) and multiplied
/// with the `f32` activations, accumulating in `f32`.
pub fn matvec(w: &Tensor, x: &[f32]) -> Result<Vec<f32>> {
    let mut ys = matvec_many(&[w], x)?;
    Ok(ys.pop().unwrap_or_default())
}

/// `[W₀ x, W₁ x, ...]` for weights that share the input `x` (`k` values; each `w` is `[mᵢ, k]`
/// in any dtype): decode's q, k and v, or gate and up, in one team job.
///
/// The activations are prepared once (block sums for every dtype among the weights), and
/// every weight's rows are split into parts of similar byte size, all claimed from one job,
/// so the team is woken and joined once for the whole set. Each output is what [`matvec`]
/// gives for its weight, bit for bit.
pub fn matvec_many(ws: &[&Tensor], x: &[f32]) -> Result<Vec<Vec<f32>>> {
    let mut dims = Vec::with_capacity(ws.len());
    for w in ws {
        let (m, k) = weight_dims("matvec", w)?;
        if x.len() != k {
            return Err(Error::shape(
                format!("matvec: x against weight {:?}", w.shape()),
                &[k],
                &[x.len()],
            ));
        }
        dims.push((m, w.host_bytes()?, w.row_stride_bytes()));
    }
    let mut ys: Vec<Vec<f32>> = dims.iter().map(|&(m, _, _)| vec![0.0f32; m]).collect();
    if x.is_empty() {
        return Ok(ys);
    }
    let team = Team::global();
    let prepared = dtype::Prepared::new(x, ws.iter().map(|w| w.dtype()));
    let total: usize = dims.iter().map(|(_, b, _)| b.len()).sum();
    let part_bytes = (total / (PARTS_PER_THREAD * team.threads())).max(MIN_PART_BYTES);
    // (weight, first row) of every part, and the part's outputs.
    let mut parts = Vec::new();
    let mut outs = Vec::new();
    for (i, (y, &(_, _, stride))) in ys.iter_mut().zip(&dims).enumerate() {
        let rows = (part_bytes / stride.max(1)).next_multiple_of(ROW_ALIGN);
        for (j, out) in y.chunks_mut(rows).enumerate() {
            parts.push((i, j * rows));
            outs.push(out);
        }
    }
    team.try_for_each_slice(outs, |p, out| {
        let (i, r0) = parts[p];
        let (_, bytes, stride) = dims[i];
        let rows = &bytes[r0 * stride..(r0 + out.len()) * stride];
        dtype::dot_rows_prepared(ws[i].dtype(), rows, &prepared, out)
    })?;
    Ok(ys)
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

/// Weight rows per `matmul` tile: a tile fits [`TILE_VALUES`], and every thread gets a few.
fn tile_rows(m: usize, k: usize) -> usize {
    let cache = TILE_VALUES / k.max(1);
    let balance = m.div_ceil(4 * rayon::current_num_threads().max(1));
    cache.min(balance).max(1)
}
