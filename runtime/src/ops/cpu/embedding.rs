//! Token embedding lookup.

use crate::device::Tensor;
use crate::dtype;
use crate::error::{Error, Result};

/// Looks up `ids` in `table` (`[vocab, hidden]`, any dtype) and returns `[ids.len(), hidden]`
/// in `f32`, dequantizing only the selected rows.
///
/// An id `>= vocab` is an error naming the id and the vocabulary size.
pub fn embedding(table: &Tensor, ids: &[u32]) -> Result<Tensor> {
    let (vocab, hidden) = match table.shape() {
        &[v, h] => (v, h),
        other => {
            return Err(Error::shape(
                "embedding table [vocab, hidden]",
                &[0, 0],
                other,
            ))
        }
    };
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::Invalid(format!(
            "embedding: token id {id} is out of range for a vocabulary of {vocab} tokens"
        )));
    }
    let mut out = vec![0.0f32; ids.len() * hidden];
    if hidden > 0 {
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
            dtype::dequantize(table.dtype(), table.row_bytes(id as usize)?, row)?;
        }
    }
    Tensor::from_f32([ids.len(), hidden], out)
}
