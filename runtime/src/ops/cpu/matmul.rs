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
/// Weight rows are processed in tiles in parallel, each tile in panels of 64 rows: a panel
/// is dequantized (f32 weights are read in place) and transposed, eight rows at a time, into
/// the layout of `gemm`'s packed panels, and multiplied with all `n` activation rows at once.
/// The activations are never rounded (no 8-bit activation quantization). A single activation
/// row takes the [`matvec`] path, which streams the stored blocks without a panel buffer.
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

    gemm_setup();
    let tile_rows = tile_rows(m, k);
    let dense = dense_f32(w);
    let (dtype, stride, bytes) = (w.dtype(), w.row_stride_bytes(), w.host_bytes()?);
    // Every value of `y` is written by exactly one tile (`tile_product` writes all `n` rows of
    // its columns), so the buffer is not zeroed first: zeroing it cost 1.6% of Gemma 3's
    // prefill.
    let mut y: Vec<f32> = Vec::with_capacity(n * m);
    let dst = Columns {
        ptr: y.as_mut_ptr(),
        len: n * m,
    };
    (0..m.div_ceil(tile_rows))
        .into_par_iter()
        .try_for_each(|t| -> Result<()> {
            let r0 = t * tile_rows;
            let rows = tile_rows.min(m - r0);
            let run = |buf: &mut Vec<f32>, panel_t: &mut Vec<f32>| -> Result<()> {
                // Panel by panel of PANEL_ROWS weight rows, each transposed into `[k, width]`,
                // the layout `gemm` would otherwise copy it into first. Quantized rows are
                // dequantized GROUP_ROWS at a time into a small buffer that the transpose
                // reads while it is still in L1 (dequantizing the whole tile first wrote it
                // out to L2 and read it back).
                for p0 in (r0..r0 + rows).step_by(PANEL_ROWS) {
                    let width = PANEL_ROWS.min(r0 + rows - p0);
                    let panel_t = grown(panel_t, width * k);
                    match dense {
                        Some(wf) => {
                            let src = &wf[p0 * k..(p0 + width) * k];
                            transpose_into(src, width, k, panel_t, width, 0)
                        }
                        None => {
                            for g0 in (0..width).step_by(GROUP_ROWS) {
                                let g = GROUP_ROWS.min(width - g0);
                                let group = grown(buf, g * k);
                                let b0 = (p0 + g0) * stride;
                                dtype::dequantize_here(dtype, &bytes[b0..b0 + g * stride], group)?;
                                transpose_into(group, g, k, panel_t, width, g0);
                            }
                        }
                    }
                    tile_product(xs, panel_t, k, &dst, m, p0);
                }
                Ok(())
            };
            // Nothing in `run` enters the thread pool (`dequantize_here` and `gemm` with
            // `Parallelism::None` stay on this thread), so no other tile can start on this
            // thread while it holds the scratch buffers.
            TILE_SCRATCH.with_borrow_mut(|(buf, panel_t)| run(buf, panel_t))
        })?;
    // SAFETY: the loop above finished without error, so every tile `0..m.div_ceil(tile_rows)`
    // ran `tile_product`, which wrote all `n` rows of its columns `r0..r0 + rows`: together
    // they cover every one of the `n * m` values within `y`'s capacity.
    unsafe { y.set_len(n * m) };
    Tensor::from_f32([n, m], y)
}

thread_local! {
    /// Per thread, `matmul`'s dequantized weight rows and transposed panel, kept from one
    /// product to the next (they only grow), so that no buffer is allocated or zeroed per
    /// task (that was 3.3% of Gemma 3's prefill).
    static TILE_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The first `len` values of `buf`, grown (zero-filled) only when it is shorter; callers
/// overwrite every value they use.
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Weight rows per panel of a `matmul` tile: the rows of `gemm`'s AVX-512 `f32`
/// micro-kernel (4 registers of 16 lanes), so that a transposed panel `[k, PANEL_ROWS]` is
/// already in the layout of its packed panels and is read in place (see [`gemm_setup`]).
const PANEL_ROWS: usize = 64;

/// Tells `gemm`, once per process, not to copy a left-hand side that is already laid out as
/// its packed panels: single-threaded calls pack `lhs` whenever the product has more than
/// `threshold × 6` columns, by default 8 × 6 = 48, which prefill's `n` tokens exceed, even for
/// `matmul`'s contiguous `[k, 64]` panels (measured: the copy was 3.6% of Gemma 3's
/// prefill). 256 (the most `gemm` accepts) keeps them in place up to 1536 tokens per product.
/// The threshold only chooses between two ways of reading the same values, so results are
/// unchanged; it is process-wide, and affects other single-threaded `gemm` calls the same way.
fn gemm_setup() {
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| gemm::set_lhs_packing_threshold_single_thread(256));
}

/// Weight rows dequantized at a time by `matmul`: one row of [`transpose_into`]'s 8 × 8
/// blocks (with `k` = 640, 20 KiB: L1).
const GROUP_ROWS: usize = 8;

/// The `[n, m]` output of `matmul`, shared by the tasks that each write their own columns.
struct Columns {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `Columns` is only a pointer to the output buffer, which outlives the parallel loop;
// the tasks write disjoint column ranges of it (see `tile_product`), so sharing it across
// threads never makes two of them touch the same value.
unsafe impl Sync for Columns {}

/// Side of the square blocks in which [`transpose`] moves values.
const TRANSPOSE_BLOCK: usize = 8;

/// `dst[c·rows + r] = src[r·cols + c]`: the row-major `[rows, cols]` tile `src` as its
/// transpose `[cols, rows]` ([`transpose_into`] a destination of exactly that size).
#[cfg(test)]
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_into(src, rows, cols, dst, rows, 0);
}

/// `dst[c·stride + at + r] = src[r·cols + c]`: the row-major `[rows, cols]` block `src`
/// written transposed into columns `at..at + rows` of the row-major `[cols, stride]` `dst`,
/// in 8 × 8 blocks (AVX registers where the CPU has them), so that reads and writes both
/// stay within a few cache lines at a time.
fn transpose_into(
    src: &[f32],
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    stride: usize,
    at: usize,
) {
    assert!(
        src.len() == rows * cols && at + rows <= stride && dst.len() == cols * stride,
        "transpose: sizes"
    );
    let (full_r, full_c) = (rows / 8 * 8, cols / 8 * 8);
    #[cfg(target_arch = "x86_64")]
    let simd = std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    for r0 in (0..rows).step_by(TRANSPOSE_BLOCK) {
        for c0 in (0..cols).step_by(TRANSPOSE_BLOCK) {
            if simd && r0 < full_r && c0 < full_c {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX was detected above; the block is a full 8 × 8 one (`r0 + 8 <=
                // rows`, `c0 + 8 <= cols`), `src` holds `rows * cols` values and `dst`
                // `cols * stride` with `at + rows <= stride` (asserted).
                unsafe {
                    transpose8_avx(src, cols, dst, stride, at, r0, c0)
                };
                continue;
            }
            for r in r0..(r0 + TRANSPOSE_BLOCK).min(rows) {
                let c1 = (c0 + TRANSPOSE_BLOCK).min(cols);
                for (c, &v) in (c0..c1).zip(&src[r * cols + c0..r * cols + c1]) {
                    dst[c * stride + at + r] = v;
                }
            }
        }
    }
}

/// One full 8 × 8 block of [`transpose_into`] at row `r0`, column `c0` of `src`, in AVX
/// registers (the usual unpack / shuffle / lane-permute network).
///
/// # Safety
///
/// The CPU has AVX; `r0 + 8 <= rows` and `c0 + 8 <= cols` for `src`'s `[rows, cols]`, which
/// it holds, and `dst` holds `cols * stride` values with `at + rows <= stride`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8_avx(
    src: &[f32],
    cols: usize,
    dst: &mut [f32],
    stride: usize,
    at: usize,
    r0: usize,
    c0: usize,
) {
    use std::arch::x86_64::*;
    let s = src.as_ptr().add(r0 * cols + c0);
    let d = dst.as_mut_ptr().add(c0 * stride + at + r0);
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * cols)));
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (i, v) in out.into_iter().enumerate() {
        _mm256_storeu_ps(d.add(i * stride), v);
    }
}

/// `y[i·m + r0 + r] = x_i · w_r` for the `n` rows of `x` and the rows of `w`, where `w_t` is
/// the weight tile transposed (`[k, rows]`, as [`transpose`] makes it): an `f32` GEMM with
/// `f32` accumulation, written straight into columns `r0..r0 + rows` of the `[n, m]` output
/// (one thread; the caller parallelizes over tiles).
///
/// The product is posed as `yᵀ = W xᵀ` on the output's column-major view with `W` column
/// major. Given the row-major tile, `gemm` gathers it into its panels value by value
/// (measured: 18% of Gemma 3's prefill); given one transposed 64-row panel (`matmul` calls
/// this per [`PANEL_ROWS`] rows) it reads the weights in place, since [`gemm_setup`] tells it
/// not to copy them (the copy was 3.6%, against 4–5% for the transpose).
fn tile_product(x: &[f32], w_t: &[f32], k: usize, y: &Columns, m: usize, r0: usize) {
    let (n, rows) = (x.len() / k, w_t.len() / k);
    assert!(
        x.len() == n * k && w_t.len() == rows * k && r0 + rows <= m && n * m <= y.len,
        "tile_product: sizes"
    );
    // SAFETY: the asserts above keep every access in bounds. In `gemm`'s terms the product
    // is `dst[rows, n] = lhs[rows, k] · rhs[k, n]`: `lhs` is `w_t` read as `W` (row stride 1,
    // column stride `rows`), `rhs` is `x` read as `xᵀ` (row stride 1, column stride `k`), and
    // `dst` is rows `r0..r0 + rows` × tokens `0..n` of `y`'s `[n, m]` seen column major (row
    // stride 1, column stride `m`), a block this task alone writes (`Columns`). `read_dst` is
    // false, so the destination is only written.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            y.ptr.add(r0),
            m as isize,
            1,
            false,
            w_t.as_ptr(),
            rows as isize,
            1,
            x.as_ptr(),
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
    let threads = rayon::current_num_threads().max(1);
    let cache = TILE_VALUES / k.max(1);
    let balance = m.div_ceil(4 * threads);
    let rows = cache.min(balance).max(1);
    // A multiple of the rows of `gemm`'s AVX-512 micro-kernel (4 registers of 16) where there
    // is room, else of one register, so that its panels need no ragged edge. A full panel
    // also where that leaves only two tiles per thread: the 4 × 16 kernel does more per value
    // loaded than the 2 × 16 one that 32-row tiles use (measured: Gemma 3's 256-row key and
    // value projections, 2 threads).
    match rows {
        64.. => rows / 64 * 64,
        16.. if cache >= PANEL_ROWS && m >= 2 * threads * PANEL_ROWS => PANEL_ROWS,
        16.. => rows / 16 * 16,
        _ => rows,
    }
}

#[cfg(test)]
mod tests {
    use super::{transpose, transpose_into};

    #[test]
    fn transpose_matches_the_definition_on_full_and_ragged_blocks() {
        // Full 8 x 8 blocks only, ragged edges on either side, and shapes smaller than a block.
        for (rows, cols) in [
            (8, 8),
            (16, 640),
            (409, 640),
            (13, 21),
            (3, 5),
            (1, 9),
            (24, 7),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn transpose_into_writes_only_its_columns_of_a_wider_destination() {
        // Blocks of 8 and 5 rows placed at columns 3 and 16 of a 24-wide destination.
        for (rows, cols, stride, at) in [(8, 640, 24, 16), (5, 21, 24, 3), (8, 13, 8, 0)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 + 0.25).collect();
            let mut dst = vec![f32::NAN; cols * stride];
            transpose_into(&src, rows, cols, &mut dst, stride, at);
            for c in 0..cols {
                for j in 0..stride {
                    let got = dst[c * stride + j];
                    if (at..at + rows).contains(&j) {
                        assert_eq!(got, src[(j - at) * cols + c], "{rows}x{cols} at ({j}, {c})");
                    } else {
                        assert!(got.is_nan(), "{rows}x{cols}: column {j} of row {c} written");
                    }
                }
            }
        }
    }
}
