//! Every op against the naive references of [`super::reference`], on random inputs.

use super::reference::{self, Rng};
use super::*;
use crate::device::{Storage, Tensor};
use crate::dtype::DType;
use crate::error::Error;
use crate::ops::{KvCache, RopeTable};
use crate::source::AlignedBytes;
use half::{bf16, f16};

/// Asserts `|got - want| <= tol · max(|want|, rms(want))` element-wise (the RMS term keeps
/// entries near zero from demanding more than `f32` can give after cancellation).
#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len().max(1) as f32).sqrt();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let bound = tol * w.abs().max(rms).max(f32::MIN_POSITIVE);
        assert!(
            (g - w).abs() <= bound,
            "{what}: element {i}: got {g}, want {w} (bound {bound})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Weights in every dtype.

/// Offsets of the `f16` scale fields in one block of `dtype` (ggml layouts), so random test
/// blocks get sane scales instead of random NaN/inf bit patterns.
fn f16_scale_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q2_K => &[80, 82],
        DType::Q3_K => &[108],
        DType::Q6_K => &[208],
        _ => &[],
    }
}

/// Random bytes for `n` values of a block format, with small positive scales.
fn random_blocks(dtype: DType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let (bs, ts) = (dtype.block_size(), dtype.type_size());
    let mut bytes = rng.bytes(n / bs * ts);
    for block in bytes.chunks_exact_mut(ts) {
        for &at in f16_scale_offsets(dtype) {
            let d = f16::from_f32(rng.uniform(0.001, 0.02));
            block[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
        if dtype == DType::Q8_K {
            block[..4].copy_from_slice(&rng.uniform(0.001, 0.02).to_le_bytes());
        }
    }
    bytes
}

/// `values` quantized to Q8_0 blocks, as ggml's reference quantizer does.
fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks_exact(32) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// A random `shape` tensor stored as `dtype`.
pub(crate) fn random_tensor(dtype: DType, shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let bytes: Vec<u8> = match dtype {
        DType::F32 => return Tensor::from_f32(shape, rng.vec(n)).unwrap(),
        DType::F16 => rng
            .vec(n)
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        DType::BF16 => rng
            .vec(n)
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        DType::Q8_0 => quantize_q8_0(&rng.vec(n)),
        _ => random_blocks(dtype, n, rng),
    };
    Tensor::from_storage(
        shape.to_vec(),
        dtype,
        Storage::Bytes(AlignedBytes::from_slice(&bytes)),
    )
    .unwrap()
}

/// The dtypes whose dequantization is implemented (a format still being written yields NaN),
/// with `k` a whole number of blocks.
pub(crate) fn working_dtypes(k: usize) -> Vec<DType> {
    let mut rng = Rng::new(99);
    DType::ALL
        .into_iter()
        .filter(|d| d.bytes_for(k).is_some())
        .filter(|&d| {
            let w = random_tensor(d, &[2, k], &mut rng);
            let ok = w
                .to_f32_vec()
                .is_ok_and(|v| v.iter().all(|x| x.is_finite()));
            if !ok {
                eprintln!("skipping {d}: its dequantization is not implemented yet");
            }
            ok
        })
        .collect()
}

#[test]
fn the_always_supported_dtypes_are_tested() {
    let dtypes = working_dtypes(256);
    for d in [DType::F32, DType::F16, DType::BF16, DType::Q8_0] {
        assert!(dtypes.contains(&d), "{d} must dequantize");
    }
}

// ---------------------------------------------------------------------------------------
// Embedding.

#[test]
fn embedding_dequantizes_selected_rows_in_every_dtype() {
    let mut rng = Rng::new(1);
    let (vocab, hidden) = (11, 256);
    for dtype in working_dtypes(hidden) {
        let table = random_tensor(dtype, &[vocab, hidden], &mut rng);
        let all = table.to_f32_vec().unwrap();
        let ids = [3u32, 0, 10, 3];
        let got = embedding(&table, &ids).unwrap();
        assert_eq!(got.shape(), [4, hidden]);
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| all[i as usize * hidden..][..hidden].to_vec())
            .collect();
        assert_eq!(got.as_f32().unwrap(), &want[..], "{dtype}");
    }
}

#[test]
fn embedding_id_past_the_vocabulary_is_an_error_naming_both() {
    let table = Tensor::zeros([5, 4]);
    let err = embedding(&table, &[1, 5]).unwrap_err().to_string();
    assert!(err.contains("embedding") && err.contains('5'), "{err}");
    assert!(embedding(&Tensor::zeros([5]), &[0]).is_err());
    assert_eq!(embedding(&table, &[]).unwrap().shape(), [0, 4]);
}

// ---------------------------------------------------------------------------------------
// matvec and matmul.

#[test]
fn matvec_matches_dequantized_reference_in_every_dtype() {
    let mut rng = Rng::new(2);
    for (m, k) in [(37, 512), (5, 96), (130, 1024)] {
        for dtype in working_dtypes(k) {
            let w = random_tensor(dtype, &[m, k], &mut rng);
            let x = rng.vec(k);
            let want = reference::matmul(&x, &w.to_f32_vec().unwrap(), 1, m, k);
            let got = matvec(&w, &x).unwrap();
            assert_close(&got, &want, 1e-5, &format!("matvec {dtype} [{m}, {k}]"));
        }
    }
}

#[test]
fn matvec_many_is_matvec_per_weight_bit_for_bit() {
    let mut rng = Rng::new(21);
    // Row counts that are not multiples of the part alignment (16) or of the vector width,
    // large enough to be split into several parts, and several dtypes in one set.
    for k in [96, 256, 1024] {
        let dtypes = working_dtypes(k);
        let weights: Vec<Tensor> = dtypes
            .iter()
            .enumerate()
            .map(|(i, &dt)| random_tensor(dt, &[[1, 3, 17, 130, 2049][i % 5], k], &mut rng))
            .collect();
        let x = rng.vec(k);
        let refs: Vec<&Tensor> = weights.iter().collect();
        let many = matvec_many(&refs, &x).unwrap();
        assert_eq!(many.len(), weights.len());
        for ((w, got), dt) in weights.iter().zip(&many).zip(&dtypes) {
            let one = matvec(w, &x).unwrap();
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{dt} [{}, {k}]",
                w.shape()[0]
            );
            let want = reference::matmul(&x, &w.to_f32_vec().unwrap(), 1, w.shape()[0], k);
            assert_close(got, &want, 1e-5, &format!("matvec_many {dt} k {k}"));
        }
    }
    assert!(matvec_many(&[], &[1.0]).unwrap().is_empty());
    let (a, b) = (Tensor::zeros([4, 8]), Tensor::zeros([4, 7]));
    assert!(matvec_many(&[&a, &b], &[0.0; 8]).is_err());
}

#[test]
fn matmul_matches_dequantized_reference_in_every_dtype() {
    let mut rng = Rng::new(3);
    // The last two: tiles of several 64-row panels with a ragged last panel (1100 rows of 64
    // make 128-row tiles, the last one 76 rows = 64 + 12) and a ragged last tile (600 rows
    // of 256 make 64-row tiles, the last one 24 rows).
    let shapes = [
        (5, 37, 512),
        (1, 9, 256),
        (2, 70, 96),
        (17, 64, 256),
        (7, 1100, 64),
        (3, 600, 256),
    ];
    for (n, m, k) in shapes {
        for dtype in working_dtypes(k) {
            let w = random_tensor(dtype, &[m, k], &mut rng);
            let x = Tensor::from_f32([n, k], rng.vec(n * k)).unwrap();
            let want = reference::matmul(x.as_f32().unwrap(), &w.to_f32_vec().unwrap(), n, m, k);
            let got = matmul(&x, &w).unwrap();
            assert_eq!(got.shape(), [n, m]);
            let what = format!("matmul {dtype} x[{n}, {k}] w[{m}, {k}]");
            assert_close(got.as_f32().unwrap(), &want, 1e-5, &what);
        }
    }
}

#[test]
fn matmul_rows_agree_with_matvec() {
    let mut rng = Rng::new(4);
    let (n, m, k) = (3, 40, 256);
    let w = random_tensor(DType::Q8_0, &[m, k], &mut rng);
    let x = Tensor::from_f32([n, k], rng.vec(n * k)).unwrap();
    let y = matmul(&x, &w).unwrap();
    for (xi, yi) in x
        .as_f32()
        .unwrap()
        .chunks(k)
        .zip(y.as_f32().unwrap().chunks(m))
    {
        assert_close(yi, &matvec(&w, xi).unwrap(), 1e-6, "matmul row vs matvec");
    }
}

#[test]
fn matmul_and_matvec_reject_mismatched_shapes() {
    let w = Tensor::zeros([4, 8]);
    let err = matvec(&w, &[0.0; 7]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("matvec"), "{err}");
    assert!(matvec(&Tensor::zeros([4, 8, 1]), &[0.0]).is_err());

    let err = matmul(&Tensor::zeros([3, 7]), &w).unwrap_err();
    assert!(
        err.to_string().contains("matmul") && err.to_string().contains("[3, 7]"),
        "{err}"
    );
    assert!(matmul(&Tensor::zeros([8]), &w).is_err());
    assert!(matmul(&Tensor::zeros([2, 8]), &Tensor::zeros([8])).is_err());
    let mut rng = Rng::new(5);
    let x16 = random_tensor(DType::F16, &[2, 8], &mut rng);
    assert!(matches!(matmul(&x16, &w), Err(Error::DType { .. })));
}

#[test]
fn matmul_with_empty_dimensions_gives_empty_or_zero_outputs() {
    let y = matmul(&Tensor::zeros([0, 8]), &Tensor::zeros([4, 8])).unwrap();
    assert_eq!(y.shape(), [0, 4]);
    let y = matmul(&Tensor::zeros([2, 0]), &Tensor::zeros([3, 0])).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[0.0; 6]);
    assert!(matvec(&Tensor::zeros([0, 8]), &[0.0; 8])
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// Norms.

#[test]
fn rms_norm_matches_reference_with_weights_in_float_dtypes() {
    let mut rng = Rng::new(6);
    let (n, d) = (4, 96);
    let x = Tensor::from_f32([n, d], rng.vec(n * d)).unwrap();
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::Q8_0] {
        let w = random_tensor(dtype, &[d], &mut rng);
        let want = reference::rms_norm(x.as_f32().unwrap(), &w.to_f32_vec().unwrap(), 1e-5);
        let got = rms_norm(&x, &w, 1e-5).unwrap();
        assert_eq!(got.shape(), [n, d]);
        assert_close(
            got.as_f32().unwrap(),
            &want,
            1e-5,
            &format!("rms_norm {dtype}"),
        );

        let mut in_place = x.clone();
        rms_norm_in_place(&mut in_place, &w, 1e-5).unwrap();
        assert_eq!(in_place.as_f32().unwrap(), got.as_f32().unwrap());
    }
}

#[test]
fn layer_norm_matches_reference_with_and_without_bias() {
    let mut rng = Rng::new(7);
    let (n, d) = (3, 64);
    let data: Vec<f32> = rng.vec(n * d).iter().map(|v| 3.0 + 2.0 * v).collect();
    let x = Tensor::from_f32([n, d], data).unwrap();
    let w = Tensor::from_f32([d], rng.vec(d)).unwrap();
    let b = Tensor::from_f32([d], rng.vec(d)).unwrap();
    for bias in [None, Some(&b)] {
        let want = reference::layer_norm(
            x.as_f32().unwrap(),
            w.as_f32().unwrap(),
            bias.map(|b| b.as_f32().unwrap()),
            1e-5,
        );
        let got = layer_norm(&x, &w, bias, 1e-5).unwrap();
        assert_close(got.as_f32().unwrap(), &want, 1e-5, "layer_norm");
        let mut in_place = x.clone();
        layer_norm_in_place(&mut in_place, &w, bias, 1e-5).unwrap();
        assert_eq!(in_place.as_f32().unwrap(), got.as_f32().unwrap());
    }
}

#[test]
fn norms_reject_mismatched_weights_and_non_f32_activations() {
    let x = Tensor::zeros([2, 8]);
    let err = rms_norm(&x, &Tensor::zeros([7]), 1e-5).unwrap_err();
    assert!(
        err.to_string().contains("rms_norm") && err.to_string().contains("[7]"),
        "{err}"
    );
    assert!(rms_norm(&x, &Tensor::zeros([1, 8]), 1e-5).is_err());
    assert!(layer_norm(&x, &Tensor::zeros([8]), Some(&Tensor::zeros([4])), 1e-5).is_err());
    let mut rng = Rng::new(8);
    let x16 = random_tensor(DType::F16, &[2, 8], &mut rng);
    assert!(matches!(
        rms_norm(&x16, &Tensor::zeros([8]), 1e-5),
        Err(Error::DType { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// RoPE.

#[test]
fn rope_table_uses_hf_inverse_frequencies() {
    let table = RopeTable::new(64, 10000.0, 4).unwrap();
    assert_eq!(table.inv_freq().len(), 32);
    assert_eq!(table.inv_freq()[0], 1.0);
    for (i, &f) in table.inv_freq().iter().enumerate() {
        assert_eq!(f, 1.0 / 10000f32.powf((2 * i) as f32 / 64.0));
    }
    assert!(RopeTable::new(7, 10000.0, 4).is_err());
    assert!(RopeTable::new(8, 0.0, 4).is_err());
}

#[test]
fn rope_matches_the_naive_formulas_in_both_conventions() {
    let mut rng = Rng::new(9);
    let (n_heads, head_dim, theta) = (3, 16, 10000.0);
    let positions = [0, 1, 7, 300, 4095];
    let x = rng.vec(positions.len() * n_heads * head_dim);
    let table = RopeTable::new(head_dim, theta, 4096).unwrap();

    let mut got = x.clone();
    rope_interleaved(&mut got, n_heads, head_dim, &positions, &table).unwrap();
    let want = reference::rope_interleaved(&x, n_heads, head_dim, &positions, head_dim, theta);
    assert_close(&got, &want, 1e-5, "rope_interleaved");

    let mut got = x.clone();
    rope_split_half(&mut got, n_heads, head_dim, &positions, &table).unwrap();
    let want = reference::rope_split_half(&x, n_heads, head_dim, &positions, head_dim, theta);
    assert_close(&got, &want, 1e-5, "rope_split_half");
}

#[test]
fn partial_rotary_dim_rotates_the_leading_dims_and_leaves_the_rest() {
    let mut rng = Rng::new(10);
    let (n_heads, head_dim, rot_dim, theta) = (2, 16, 8, 500000.0);
    let positions = [3, 11];
    let x = rng.vec(positions.len() * n_heads * head_dim);
    let table = RopeTable::new(rot_dim, theta, 16).unwrap();
    for interleaved in [true, false] {
        let mut got = x.clone();
        let want = if interleaved {
            rope_interleaved(&mut got, n_heads, head_dim, &positions, &table).unwrap();
            reference::rope_interleaved(&x, n_heads, head_dim, &positions, rot_dim, theta)
        } else {
            rope_split_half(&mut got, n_heads, head_dim, &positions, &table).unwrap();
            reference::rope_split_half(&x, n_heads, head_dim, &positions, rot_dim, theta)
        };
        assert_close(&got, &want, 1e-5, "partial rope");
        for (g, x) in got.chunks(head_dim).zip(x.chunks(head_dim)) {
            assert_eq!(
                g[rot_dim..],
                x[rot_dim..],
                "dims past rot_dim must not move"
            );
        }
    }
}

/// llama.cpp's converter permutes each head's rows of W_q and W_k: GGUF dimension `2i + j`
/// holds HF dimension `j·d/2 + i` (`j` in {0, 1}).
fn hf_to_gguf_order(x: &[f32], head_dim: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (o, h) in out.chunks_mut(head_dim).zip(x.chunks(head_dim)) {
        for i in 0..head_dim / 2 {
            for j in 0..2 {
                o[2 * i + j] = h[j * head_dim / 2 + i];
            }
        }
    }
    out
}

#[test]
fn interleaved_rope_on_gguf_permuted_q_equals_split_half_on_hf_q() {
    let mut rng = Rng::new(11);
    let (n_heads, head_dim) = (4, 64);
    let positions = [0, 5, 9999];
    let q_hf = rng.vec(positions.len() * n_heads * head_dim);
    let table = RopeTable::new(head_dim, 100000.0, 1024).unwrap();

    let mut q_gguf = hf_to_gguf_order(&q_hf, head_dim);
    rope_interleaved(&mut q_gguf, n_heads, head_dim, &positions, &table).unwrap();
    let mut q_hf = q_hf;
    rope_split_half(&mut q_hf, n_heads, head_dim, &positions, &table).unwrap();
    assert_eq!(q_gguf, hf_to_gguf_order(&q_hf, head_dim));
}

#[test]
fn positions_past_the_table_are_computed_like_cached_ones() {
    let mut rng = Rng::new(12);
    let positions = [2, 40, 1000];
    let x = rng.vec(positions.len() * 32);
    let (small, large) = (
        RopeTable::new(32, 10000.0, 8).unwrap(),
        RopeTable::new(32, 10000.0, 1001).unwrap(),
    );
    let (mut a, mut b) = (x.clone(), x);
    rope_split_half(&mut a, 1, 32, &positions, &small).unwrap();
    rope_split_half(&mut b, 1, 32, &positions, &large).unwrap();
    assert_eq!(a, b);
}

#[test]
fn rope_rejects_bad_shapes() {
    let table = RopeTable::new(16, 10000.0, 8).unwrap();
    let mut x = vec![0.0; 2 * 16];
    let err = rope_interleaved(&mut x, 1, 16, &[0], &table).unwrap_err();
    assert!(err.to_string().contains("rope_interleaved"), "{err}");
    assert!(rope_split_half(&mut x, 1, 8, &[0, 1, 2, 3], &table).is_err());
}

// ---------------------------------------------------------------------------------------
// Softmax and activations.

#[test]
fn softmax_matches_reference_and_is_stable_for_large_inputs() {
    let mut rng = Rng::new(13);
    for scale in [1.0, 30.0, 1000.0] {
        let x: Vec<f32> = rng.vec(77).iter().map(|v| v * scale).collect();
        let mut got = x.clone();
        softmax_in_place(&mut got);
        assert_close(&got, &reference::softmax(&x), 1e-5, "softmax");
        assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn softmax_gives_masked_entries_zero_and_an_all_masked_row_zeros_not_nan() {
    let mut x = [1.0, f32::NEG_INFINITY, 1.0];
    softmax_in_place(&mut x);
    assert_eq!(x, [0.5, 0.0, 0.5]);
    let mut x = [f32::NEG_INFINITY; 4];
    softmax_in_place(&mut x);
    assert_eq!(x, [0.0; 4]);
    let mut x = [1.0, f32::NAN];
    softmax_in_place(&mut x);
    assert!(x.iter().all(|v| v.is_nan()));
    softmax_in_place(&mut []);
}

#[test]
fn gelu_tanh_is_accurate_in_its_tails_and_long_slices_map_like_short_ones() {
    for i in -3000..=3000 {
        let x = i as f32 * 0.01;
        let (got, want) = (gelu_tanh(x), reference::gelu_tanh(x));
        // Relative to the value (the negative tail is tiny but must keep its digits), down to
        // the reference's own floor: its `1 + tanh` in f64 is only good to 1e-16 absolute.
        assert!(
            (got - want).abs() <= 2e-6 * want.abs() + 1e-15 * x.abs(),
            "gelu_tanh({x}) = {got}, want {want}"
        );
    }
    assert_eq!(gelu_tanh(1e20), 1e20);
    assert_eq!(gelu_tanh(-1e20), 0.0);
    assert!(gelu_tanh(f32::NAN).is_nan());
    // Past the parallel threshold: every value as the scalar function computes it.
    let mut rng = Rng::new(15);
    let x: Vec<f32> = rng.vec(100_003).iter().map(|v| v * 6.0).collect();
    let up = rng.vec(x.len());
    let mut got = x.clone();
    geglu_in_place(&mut got, &up).unwrap();
    let mut s = x.clone();
    swiglu_in_place(&mut s, &up).unwrap();
    for i in 0..x.len() {
        assert_eq!(got[i].to_bits(), (gelu_tanh(x[i]) * up[i]).to_bits());
        assert_eq!(s[i].to_bits(), (silu(x[i]) * up[i]).to_bits());
    }
}

#[test]
fn activations_match_their_formulas() {
    let mut rng = Rng::new(14);
    let x: Vec<f32> = rng.vec(500).iter().map(|v| v * 8.0).collect();
    let map = |f: fn(f32) -> f32| x.iter().map(|&v| f(v)).collect::<Vec<f32>>();

    let mut got = x.clone();
    silu_in_place(&mut got);
    assert_close(&got, &map(reference::silu), 1e-6, "silu");
    let mut got = x.clone();
    gelu_tanh_in_place(&mut got);
    assert_close(&got, &map(reference::gelu_tanh), 1e-5, "gelu_tanh");
    let mut got = x.clone();
    gelu_erf_in_place(&mut got);
    let want = map(reference::gelu_erf);
    for (&g, &w) in got.iter().zip(&want) {
        // Relative to the value itself: the far negative tail is tiny but must stay accurate.
        assert!(
            (g - w).abs() <= 1e-6 * w.abs() + 1e-30,
            "gelu_erf: {g} vs {w}"
        );
    }

    let up = rng.vec(500);
    let want: Vec<f32> = x
        .iter()
        .zip(&up)
        .map(|(&g, &u)| reference::silu(g) * u)
        .collect();
    assert_close(&swiglu(&x, &up).unwrap(), &want, 1e-6, "swiglu");
    let mut gate = x.clone();
    swiglu_in_place(&mut gate, &up).unwrap();
    assert_eq!(gate, swiglu(&x, &up).unwrap());

    let mut sum = x.clone();
    add_in_place(&mut sum, &up).unwrap();
    let want: Vec<f32> = x.iter().zip(&up).map(|(a, b)| a + b).collect();
    assert_eq!(sum, want);
}

#[test]
fn elementwise_ops_reject_length_mismatch() {
    let err = swiglu(&[0.0; 3], &[0.0; 4]).unwrap_err();
    assert!(err.to_string().contains("swiglu"), "{err}");
    assert!(swiglu_in_place(&mut [0.0; 3], &[0.0; 2]).is_err());
    assert!(add_in_place(&mut [0.0; 3], &[0.0; 2]).is_err());
}

// ---------------------------------------------------------------------------------------
// KV cache.

#[test]
fn kv_cache_grows_and_reads_back_every_entry() {
    let mut rng = Rng::new(15);
    let (n_kv, hd) = (2, 8);
    let mut cache = KvCache::new(n_kv, hd, None).unwrap();
    let mut all = Vec::new();
    for chunk in [5usize, 1, 20, 1, 1, 40] {
        let start = cache.next_position();
        let positions: Vec<usize> = (start..start + chunk).collect();
        let (k, v) = (rng.vec(chunk * n_kv * hd), rng.vec(chunk * n_kv * hd));
        cache.append_host(&k, &v, &positions).unwrap();
        for (t, &p) in positions.iter().enumerate() {
            all.push((
                p,
                k[t * n_kv * hd..][..n_kv * hd].to_vec(),
                v[t * n_kv * hd..][..n_kv * hd].to_vec(),
            ));
        }
    }
    assert_eq!(cache.len(), all.len());
    assert!(cache.positions().eq(0..all.len()));
    for (p, k, v) in all {
        assert_eq!(cache.entry(p).unwrap(), Some((k, v)), "position {p}");
    }
}

#[test]
fn windowed_cache_stays_bounded_during_decode() {
    let mut rng = Rng::new(16);
    let (n_kv, hd, w) = (2, 4, 5);
    let mut cache = KvCache::new(n_kv, hd, Some(w)).unwrap();
    for p in 0..50 {
        let (k, v) = (rng.vec(n_kv * hd), rng.vec(n_kv * hd));
        cache.append_host(&k, &v, &[p]).unwrap();
        assert!(cache.len() <= w && cache.allocated_slots() <= w);
        assert!(cache.positions().eq(p.saturating_sub(w - 1)..=p));
        assert_eq!(cache.entry(p).unwrap(), Some((k, v)));
    }
}

#[test]
fn windowed_cache_keeps_what_a_prefill_chunk_needs_then_shrinks() {
    let mut rng = Rng::new(17);
    let (n_kv, hd, w) = (1, 4, 4);
    let mut cache = KvCache::new(n_kv, hd, Some(w)).unwrap();
    let positions: Vec<usize> = (0..30).collect();
    cache
        .append_host(&rng.vec(30 * hd), &rng.vec(30 * hd), &positions)
        .unwrap();
    assert_eq!(
        cache.len(),
        30,
        "a chunk's early queries need its early keys"
    );
    cache
        .append_host(&rng.vec(hd), &rng.vec(hd), &[30])
        .unwrap();
    assert!(cache.positions().eq(27..=30));
    assert!(cache.allocated_slots() <= 2 * w);
}

#[test]
fn kv_cache_rejects_bad_positions_and_shapes() {
    let mut cache = KvCache::new(2, 4, None).unwrap();
    let err = cache.append_host(&[0.0; 7], &[0.0; 8], &[0]).unwrap_err();
    assert!(err.to_string().contains("KvCache::append"), "{err}");
    cache.append_host(&[0.0; 8], &[0.0; 8], &[3]).unwrap();
    assert!(cache.append_host(&[0.0; 8], &[0.0; 8], &[3]).is_err());
    assert!(cache.append_host(&[0.0; 16], &[0.0; 16], &[5, 4]).is_err());
    assert_eq!(cache.len(), 1);
    assert!(KvCache::new(0, 4, None).is_err());
    assert!(KvCache::new(1, 4, Some(0)).is_err());
    cache.clear();
    assert!(cache.is_empty());
    cache.append_host(&[0.0; 8], &[0.0; 8], &[0]).unwrap();
}

// ---------------------------------------------------------------------------------------
// Attention.

/// Random q `[n, n_heads, hd]`, k and v `[n, n_kv, hd]` for positions `0..n`.
fn qkv(rng: &mut Rng, n: usize, n_heads: usize, n_kv: usize, hd: usize) -> [Vec<f32>; 3] {
    [
        rng.vec(n * n_heads * hd),
        rng.vec(n * n_kv * hd),
        rng.vec(n * n_kv * hd),
    ]
}

#[test]
fn grouped_query_prefill_matches_reference() {
    let mut rng = Rng::new(18);
    let (n, n_heads, n_kv, hd) = (9, 6, 2, 16);
    let [q, k, v] = qkv(&mut rng, n, n_heads, n_kv, hd);
    let positions: Vec<usize> = (0..n).collect();
    let mut cache = KvCache::new(n_kv, hd, None).unwrap();
    cache.append_host(&k, &v, &positions).unwrap();
    let got = attention(&q, &positions, n_heads, &cache.view().unwrap(), None).unwrap();
    let want = reference::attention(&q, &positions, &k, &v, &positions, n_heads, n_kv, hd, None);
    assert_close(&got, &want, 1e-5, "gqa prefill");

    let view = KvView::from_tokens(&k, &v, &positions, n_kv, hd).unwrap();
    let direct = attention(&q, &positions, n_heads, &view, None).unwrap();
    assert_close(&direct, &got, 1e-6, "token slices vs cache");
}

#[test]
fn sliding_window_attention_matches_reference() {
    let mut rng = Rng::new(19);
    let (n, n_heads, n_kv, hd, w) = (12, 6, 2, 8, 3);
    let [q, k, v] = qkv(&mut rng, n, n_heads, n_kv, hd);
    let positions: Vec<usize> = (0..n).collect();
    let view = KvView::from_tokens(&k, &v, &positions, n_kv, hd).unwrap();
    let got = attention(&q, &positions, n_heads, &view, Some(w)).unwrap();
    let want = reference::attention(
        &q,
        &positions,
        &k,
        &v,
        &positions,
        n_heads,
        n_kv,
        hd,
        Some(w),
    );
    assert_close(&got, &want, 1e-5, "sliding window");
    let full = attention(&q, &positions, n_heads, &view, None).unwrap();
    assert!(
        got != full,
        "a window shorter than the sequence changes the result"
    );
}

#[test]
fn prefill_equals_decode_token_by_token_through_a_windowed_cache() {
    let mut rng = Rng::new(20);
    let (n, n_heads, n_kv, hd, w) = (14, 6, 2, 8, 4);
    let [q, k, v] = qkv(&mut rng, n, n_heads, n_kv, hd);
    let positions: Vec<usize> = (0..n).collect();
    let (q_len, kv_len) = (n_heads * hd, n_kv * hd);

    let mut prefill_cache = KvCache::new(n_kv, hd, Some(w)).unwrap();
    prefill_cache.append_host(&k, &v, &positions).unwrap();
    let prefill = attention(
        &q,
        &positions,
        n_heads,
        &prefill_cache.view().unwrap(),
        Some(w),
    )
    .unwrap();

    let mut cache = KvCache::new(n_kv, hd, Some(w)).unwrap();
    for t in 0..n {
        let kt = &k[t * kv_len..][..kv_len];
        let vt = &v[t * kv_len..][..kv_len];
        cache.append_host(kt, vt, &[t]).unwrap();
        assert!(cache.len() <= w, "decode cache holds {} > {w}", cache.len());
        let qt = &q[t * q_len..][..q_len];
        let decode = attention(qt, &[t], n_heads, &cache.view().unwrap(), Some(w)).unwrap();
        assert_close(
            &decode,
            &prefill[t * q_len..][..q_len],
            1e-5,
            "decode vs prefill",
        );
    }
}

#[test]
fn chunked_prefill_through_a_windowed_cache_equals_one_prefill() {
    let mut rng = Rng::new(21);
    let (n, n_heads, n_kv, hd, w) = (20, 4, 4, 8, 6);
    let [q, k, v] = qkv(&mut rng, n, n_heads, n_kv, hd);
    let positions: Vec<usize> = (0..n).collect();
    let want = reference::attention(
        &q,
        &positions,
        &k,
        &v,
        &positions,
        n_heads,
        n_kv,
        hd,
        Some(w),
    );
    let (q_len, kv_len) = (n_heads * hd, n_kv * hd);

    let mut cache = KvCache::new(n_kv, hd, Some(w)).unwrap();
    let mut got = Vec::new();
    for chunk in [7usize, 1, 9, 3].iter().scan(0, |at, &c| {
        *at += c;
        Some(*at - c..*at)
    }) {
        let p = &positions[chunk.clone()];
        cache
            .append_host(
                &k[chunk.start * kv_len..chunk.end * kv_len],
                &v[chunk.start * kv_len..chunk.end * kv_len],
                p,
            )
            .unwrap();
        let qc = &q[chunk.start * q_len..chunk.end * q_len];
        got.extend(attention(qc, p, n_heads, &cache.view().unwrap(), Some(w)).unwrap());
    }
    assert_close(&got, &want, 1e-5, "chunked prefill");
}

#[test]
fn attention_rejects_bad_heads_windows_and_shapes() {
    let (n_kv, hd) = (4, 8);
    let mut cache = KvCache::new(n_kv, hd, Some(4)).unwrap();
    cache.append_host(&[0.1; 32], &[0.1; 32], &[0]).unwrap();
    let view = cache.view().unwrap();
    let q = vec![0.1; 6 * hd];
    let err = attention(&q, &[0], 6, &view, Some(4)).unwrap_err();
    assert!(err.to_string().contains("n_kv_heads (4)"), "{err}");
    let q = vec![0.1; 8 * hd];
    assert!(attention(&q, &[0], 8, &view, None).is_err());
    assert!(attention(&q, &[0], 8, &view, Some(5)).is_err());
    assert!(attention(&q, &[0], 8, &view, Some(0)).is_err());
    assert!(attention(&q[1..], &[0], 8, &view, Some(4)).is_err());
    assert!(attention(&q, &[0], 8, &view, Some(3)).is_ok());
    let err = attention(&q, &[7], 8, &view, Some(4)).unwrap_err();
    assert!(err.to_string().contains("position 7"), "{err}");
    assert!(KvView::from_tokens(&[0.0; 3], &[0.0; 3], &[0], 1, 4).is_err());
}

#[test]
fn blocked_prefill_attention_is_bit_identical_to_decode_per_token() {
    let mut rng = Rng::new(31);
    let (n, n_heads, n_kv, hd) = (29, 6, 2, 24);
    let [q, k, v] = qkv(&mut rng, n, n_heads, n_kv, hd);
    let positions: Vec<usize> = (0..n).collect();
    let q_len = n_heads * hd;
    for window in [None, Some(5)] {
        let mut cache = KvCache::new(n_kv, hd, None).unwrap();
        cache.append_host(&k, &v, &positions).unwrap();
        let view = cache.view().unwrap();
        let prefill = attention(&q, &positions, n_heads, &view, window).unwrap();
        for t in 0..n {
            // Decode of token t over the same cache: its keys beyond t are not visible.
            let qt = &q[t * q_len..][..q_len];
            let decode = attention(qt, &[t], n_heads, &view, window).unwrap();
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&decode),
                bits(&prefill[t * q_len..][..q_len]),
                "token {t}, window {window:?}"
            );
        }
    }
}

#[test]
fn exp_is_within_two_ulp_of_the_exact_value_over_the_normal_range() {
    use super::activation::exp;
    let ulp = |v: f32| f32::from_bits(v.to_bits() + 1) - v;
    let mut worst = 0.0f64;
    // Every 1/4096 over the normal range, and a few values in its last steps.
    let sweep = (-354_880..=363_408).map(|i| i as f32 / 4096.0);
    for x in sweep.chain([-86.642, 88.72, 88.7228, -1e-30, 1e-30, 0.0, -0.0]) {
        let (got, want) = (exp(x), f64::from(x).exp());
        let err = (f64::from(got) - want).abs() / f64::from(ulp(want as f32));
        worst = worst.max(err);
        assert!(err <= 2.0, "exp({x}) = {got}, want {want} ({err:.2} ulp)");
    }
    assert!(worst > 0.0, "the sweep compared something");
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(exp(88.73), f32::INFINITY);
    assert_eq!(exp(f32::INFINITY), f32::INFINITY);
    assert_eq!(exp(-87.0), 0.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert!(exp(f32::NAN).is_nan());
}
