//! Pieces the model files share: the product of an execution mode, norms through a
//! [`Weight`], positions, the embeddings-through-blocks loop and the LM head.

use crate::cache::Cache;
use crate::error::{Error, Result};
use lazyforge::ops::{self, KvCache, RopeTable};
use lazyforge::{ExecutionMode, Tensor, Weight};

/// A product with a weight `[m, k]`: `ops::matmul` (rows `[n, k]`) in prefill, `ops::matvec`
/// (one row) in decode. Called as `mm(&w, &x)`.
pub(crate) type Linear = fn(&Tensor, &Tensor) -> lazyforge::Result<Tensor>;

/// The product `mode` computes with: matrix-vector in decode, matrix-matrix otherwise.
pub(crate) fn linear(mode: ExecutionMode) -> Linear {
    match mode {
        ExecutionMode::DECODE => ops::matvec,
        _ => |w, x| ops::matmul(x, w),
    }
}

/// The products of several weights with one input `x` (a layer's q, k and v, or gate and
/// up): one `ops::matvec_many` in decode (one dispatch, the input prepared once),
/// `ops::matmul` per weight otherwise. Called as `project(mode, [&wq, &wk, &wv], &x)`.
pub(crate) fn project<const N: usize>(
    mode: ExecutionMode,
    ws: [&Tensor; N],
    x: &Tensor,
) -> Result<[Tensor; N]> {
    let ys = match mode {
        ExecutionMode::DECODE => ops::matvec_many(&ws, x)?,
        _ => ws
            .iter()
            .map(|w| ops::matmul(x, w))
            .collect::<lazyforge::Result<Vec<_>>>()?,
    };
    ys.try_into()
        .map_err(|_| Error::Config("project: one product per weight".into()))
}

/// `rms_norm(x)` with the norm weight `w`.
pub(crate) fn rms_norm(x: &Tensor, w: &Weight, eps: f32) -> Result<Tensor> {
    Ok(ops::rms_norm(x, &*w.get()?, eps)?)
}

/// The positions of the rows of `x` (`[n, width]`), appended after what `kv` holds.
pub(crate) fn positions(kv: &KvCache, x: &Tensor, width: usize) -> Vec<usize> {
    let start = kv.next_position();
    (start..start + x.elem_count() / width).collect()
}

/// The rows of `ids` in `table` (times `scale`, if any), run through `block(i, x, kv, ropes)`
/// for every layer `i` of `cache`: the hidden states `[n, hidden]`.
pub(crate) fn hidden(
    table: &Weight,
    ids: &[u32],
    scale: Option<f32>,
    cache: &mut Cache,
    mut block: impl FnMut(usize, &mut Tensor, &mut KvCache, &[RopeTable]) -> Result<()>,
) -> Result<Tensor> {
    if ids.is_empty() {
        return Err(Error::Config(
            "a forward pass needs at least one token".into(),
        ));
    }
    let mut x = ops::embedding(&*table.get()?, ids)?;
    if let Some(s) = scale {
        ops::scale_in_place(&mut x, s)?;
    }
    let (layers, ropes) = cache.prepare(ids.len());
    for (i, kv) in layers.iter_mut().enumerate() {
        block(i, &mut x, kv, ropes)?;
    }
    Ok(x)
}

/// The final RMSNorm (`norm`) and the LM head (`output`) over hidden states `[n, hidden]`:
/// logits `[n, vocab]`.
pub(crate) fn lm_head(x: &Tensor, norm: &Weight, output: &Weight, eps: f32) -> Result<Tensor> {
    Ok(ops::matmul(&rms_norm(x, norm, eps)?, &*output.get()?)?)
}
