//! CPU kernels for decoder-only transformers (Llama, Mistral, GPT-2 style), on host slices
//! and host tensors: what the [`Cpu`](crate::device::Cpu) backend runs. Models call the
//! device-dispatching [`ops`](crate::ops) functions instead.
//!
//! Activations are always `f32`; weights may be in any [`DType`](crate::DType) and are read in
//! their stored format (quantized blocks are dequantized a block or a tile at a time, never
//! the whole tensor). Every kernel computes in `f32` without rounding activations to 8 bits,
//! so results follow the float32 reference (HF transformers on the dequantized weights).
//!
//! Layout conventions, outermost first, row-major:
//! - a linear layer's weight is `[out_features, in_features]`;
//! - token activations are `[n_tokens, features]`;
//! - queries, keys and values are `[n_tokens, n_heads, head_dim]`.
//!
//! Bad shapes or dtypes are reported as [`Error`](crate::Error)s naming the operation and the
//! shapes involved, and so are tensors that are not in host memory; no kernel panics on
//! caller input.
//!
//! ```
//! use lazyforge::ops::cpu::{matvec, softmax_in_place};
//! use lazyforge::Tensor;
//!
//! let w = Tensor::from_f32([2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
//! let mut y = matvec(&w, &[1.0, 2.0, 3.0]).unwrap();
//! assert_eq!(y, [1.0, 5.0]);
//! softmax_in_place(&mut y);
//! assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! ```

mod activation;
mod attention;
mod embedding;
mod kv_view;
mod layout;
mod matmul;
mod norm;
mod rope;
mod team;
mod vector;

#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
pub(crate) mod tests;

pub use activation::{
    add_in_place, add_rows_in_place, geglu_in_place, gelu_erf, gelu_erf_in_place, gelu_tanh,
    gelu_tanh_in_place, scale_in_place, silu, silu_in_place, softmax_in_place, swiglu,
    swiglu_in_place,
};
pub use attention::attention;
pub use embedding::embedding;
pub use kv_view::KvView;
pub use layout::narrow;
pub use matmul::{matmul, matvec, matvec_many};
pub use norm::{layer_norm, layer_norm_in_place, rms_norm, rms_norm_in_place};
pub use rope::{rope_interleaved, rope_split_half};
pub use team::Team;
