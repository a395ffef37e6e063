//! The GPU kernels' CUDA C sources, kept in the repository and compiled at run time (NVRTC
//! for CUDA, hiprtc for HIP). They are plain strings, present in every build, so that tests
//! compile and check them without a GPU (`runtime/tests/nvrtc_compile.rs` with NVRTC,
//! `runtime/tests/kernels_on_the_host.rs` with the host's C++ compiler).

/// Definitions shared by every kernel: byte loads, f16/bf16 conversion, ggml type ids.
pub const COMMON: &str = include_str!("common.cuh");
/// Dequantization of 32-value chunks of every supported block format, and their dot products
/// with `f32` activations.
pub const QUANT: &str = include_str!("quant.cuh");
/// The online softmax of the attention kernel (running maximum, sum and accumulator).
pub const SOFTMAX: &str = include_str!("softmax.cuh");
/// The `extern "C"` kernels.
pub const KERNELS: &str = include_str!("kernels.cu");
/// CUDA spellings (warp shuffle) the kernels use.
pub const CUDA_PRELUDE: &str = include_str!("cuda_prelude.cuh");
/// HIP spellings for the same sources (see the header for the wavefront width).
pub const HIP_COMPAT: &str = include_str!("hip_compat.cuh");

/// The ggml types the GPU kernels read, with the suffix of their kernels' names
/// (`lf_matvec_<suffix>`, `lf_dequant_rows_<suffix>`).
pub const TYPED: [(crate::DType, &str); 11] = {
    use crate::DType::*;
    [
        (F32, "f32"),
        (F16, "f16"),
        (BF16, "bf16"),
        (Q4_0, "q4_0"),
        (Q4_1, "q4_1"),
        (Q5_0, "q5_0"),
        (Q5_1, "q5_1"),
        (Q8_0, "q8_0"),
        (Q4_K, "q4_k"),
        (Q5_K, "q5_k"),
        (Q6_K, "q6_k"),
    ]
};

/// The kernels that are not per type.
pub const UNTYPED: [&str; 13] = [
    "lf_gemm_xwt",
    "lf_rms_norm",
    "lf_layer_norm",
    "lf_rope",
    "lf_activation",
    "lf_swiglu",
    "lf_geglu",
    "lf_scale",
    "lf_add",
    "lf_add_rows",
    "lf_narrow",
    "lf_kv_write",
    "lf_attention",
];

/// Every `extern "C"` kernel name in [`KERNELS`].
pub fn kernel_names() -> Vec<String> {
    let mut names: Vec<String> = UNTYPED.iter().map(|s| s.to_string()).collect();
    for (_, suffix) in TYPED {
        names.push(format!("lf_matvec_{suffix}"));
        names.push(format!("lf_dequant_rows_{suffix}"));
    }
    names
}

/// The kernel suffix of `dtype`, or `None` when the GPU kernels do not read it.
pub fn suffix(dtype: crate::DType) -> Option<&'static str> {
    TYPED.iter().find(|(d, _)| *d == dtype).map(|(_, s)| *s)
}

/// The whole translation unit NVRTC compiles.
pub fn cuda_source() -> String {
    [CUDA_PRELUDE, COMMON, QUANT, SOFTMAX, KERNELS].join("\n")
}

/// The whole translation unit hiprtc compiles.
pub fn hip_source() -> String {
    [HIP_COMPAT, COMMON, QUANT, SOFTMAX, KERNELS].join("\n")
}
