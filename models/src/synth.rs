//! Random-weight Llama GGUF files, written with lazyforge's own GGUF writer: models of real
//! shapes for parity checks and benchmarks where no model file can be fetched or carried (the
//! GPU check writes them on the device machine). The weights are random block bytes with
//! small finite scales, so every dtype is exercised without a quantizer; the files hold no
//! tokenizer (run them with token ids).

use lazyforge::source::gguf::GgufWriter;
use lazyforge::DType;
use std::path::Path;

/// The shapes and storage of a synthetic Llama.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthLlama {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// The dtype of the matrices (norms are F32).
    pub dtype: DType,
    /// Sliding window, if any.
    pub sliding_window: Option<usize>,
    /// Seed of the weights.
    pub seed: u64,
}

impl SynthLlama {
    /// SmolLM2-135M's shapes.
    pub fn smollm2_135m(dtype: DType) -> SynthLlama {
        SynthLlama {
            vocab: 49152,
            hidden: 576,
            intermediate: 1536,
            n_layers: 30,
            n_heads: 9,
            n_kv_heads: 3,
            dtype,
            sliding_window: None,
            seed: 1,
        }
    }

    /// A Llama-3.2-1B-class model (hidden 2048, 16 layers).
    pub fn llama_1b(dtype: DType) -> SynthLlama {
        SynthLlama {
            vocab: 32000,
            hidden: 2048,
            intermediate: 8192,
            n_layers: 16,
            n_heads: 32,
            n_kv_heads: 8,
            dtype,
            sliding_window: None,
            seed: 2,
        }
    }

    /// A Llama-2-7B-class model (hidden 4096, 32 layers).
    pub fn llama_7b(dtype: DType) -> SynthLlama {
        SynthLlama {
            vocab: 32000,
            hidden: 4096,
            intermediate: 11008,
            n_layers: 32,
            n_heads: 32,
            n_kv_heads: 32,
            dtype,
            sliding_window: None,
            seed: 3,
        }
    }

    /// A tiny model for tests (every row a whole number of 256-value blocks).
    pub fn tiny(dtype: DType) -> SynthLlama {
        SynthLlama {
            vocab: 512,
            hidden: 256,
            intermediate: 512,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            dtype,
            sliding_window: None,
            seed: 4,
        }
    }

    /// Writes the model to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> lazyforge::Result<()> {
        let mut rng = Rng(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut w = GgufWriter::new();
        let head_dim = self.hidden / self.n_heads;
        w.add_metadata("general.architecture", "llama")?;
        w.add_metadata("general.name", "lazyforge synthetic llama")?;
        w.add_metadata("llama.vocab_size", self.vocab as u32)?;
        w.add_metadata("llama.embedding_length", self.hidden as u32)?;
        w.add_metadata("llama.feed_forward_length", self.intermediate as u32)?;
        w.add_metadata("llama.block_count", self.n_layers as u32)?;
        w.add_metadata("llama.attention.head_count", self.n_heads as u32)?;
        w.add_metadata("llama.attention.head_count_kv", self.n_kv_heads as u32)?;
        w.add_metadata("llama.rope.freq_base", 10000.0f32)?;
        w.add_metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)?;
        w.add_metadata("llama.context_length", 4096u32)?;
        if let Some(win) = self.sliding_window {
            w.add_metadata("llama.attention.sliding_window", win as u32)?;
        }
        let (h, kv, f) = (self.hidden, self.n_kv_heads * head_dim, self.intermediate);
        let mut matrix = |w: &mut GgufWriter, name: &str, rows: usize, cols: usize| {
            let data = random_matrix(&mut rng, self.dtype, rows, cols, cols)?;
            w.add_tensor(name, self.dtype, &[rows, cols], &data)
        };
        matrix(&mut w, "token_embd.weight", self.vocab, h)?;
        for i in 0..self.n_layers {
            let b = format!("blk.{i}");
            matrix(&mut w, &format!("{b}.attn_q.weight"), h, h)?;
            matrix(&mut w, &format!("{b}.attn_k.weight"), kv, h)?;
            matrix(&mut w, &format!("{b}.attn_v.weight"), kv, h)?;
            matrix(&mut w, &format!("{b}.attn_output.weight"), h, h)?;
            matrix(&mut w, &format!("{b}.ffn_gate.weight"), f, h)?;
            matrix(&mut w, &format!("{b}.ffn_up.weight"), f, h)?;
            matrix(&mut w, &format!("{b}.ffn_down.weight"), h, f)?;
            for norm in ["attn_norm", "ffn_norm"] {
                w.add_tensor(
                    format!("{b}.{norm}.weight"),
                    DType::F32,
                    &[h],
                    &norm_weight(h),
                )?;
            }
        }
        w.add_tensor("output_norm.weight", DType::F32, &[h], &norm_weight(h))?;
        matrix(&mut w, "output.weight", self.vocab, h)?;
        w.write_to_path(path)
    }
}

fn norm_weight(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (1.0f32 + 0.01 * (i % 7) as f32).to_le_bytes())
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random bytes of `rows x cols` values of `dtype`, scaled like a trained layer's (values of
/// magnitude about `1 / sqrt(fan_in)`).
fn random_matrix(
    rng: &mut Rng,
    dtype: DType,
    rows: usize,
    cols: usize,
    fan_in: usize,
) -> lazyforge::Result<Vec<u8>> {
    let n = rows * cols;
    let amp = 1.0 / (fan_in as f32).sqrt();
    let half = |v: f32| half_bits(v).to_le_bytes();
    Ok(match dtype {
        DType::F32 => (0..n)
            .flat_map(|_| (amp * rng.unit()).to_le_bytes())
            .collect(),
        DType::F16 => (0..n).flat_map(|_| half(amp * rng.unit())).collect(),
        DType::BF16 => (0..n)
            .flat_map(|_| (((amp * rng.unit()).to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        _ => {
            let bytes = dtype.bytes_for(n).ok_or_else(|| {
                lazyforge::Error::Invalid(format!("{dtype}: {cols} columns are not whole blocks"))
            })?;
            let mut b: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
            // Scales (f16) where each format keeps them; values 4-6 bits, so a scale of
            // amp / 8 gives values of about amp.
            let (offsets, scale): (&[usize], f32) = match dtype {
                DType::Q4_0 | DType::Q5_0 => (&[0], amp / 8.0),
                DType::Q8_0 => (&[0], amp / 64.0),
                DType::Q4_1 | DType::Q5_1 => (&[0, 2], amp / 8.0),
                DType::Q4_K | DType::Q5_K => (&[0, 2], amp / 256.0),
                DType::Q6_K => (&[208], amp / 1024.0),
                _ => (&[], 0.0),
            };
            for block in b.chunks_exact_mut(dtype.type_size()) {
                for (j, &at) in offsets.iter().enumerate() {
                    let v = if j == 0 { scale } else { scale * rng.unit() };
                    block[at..at + 2].copy_from_slice(&half(v));
                }
            }
            b
        }
    })
}

/// The IEEE half bits of `v` (rounded to nearest; the values here are small and normal).
fn half_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mant = bits & 0x7f_ffff;
    if exp <= 0 {
        return sign; // flushes tiny values to zero: fine for random weights
    }
    if exp >= 31 {
        return sign | 0x7c00;
    }
    let rounded = ((exp as u32) << 10 | (mant >> 13)) + ((mant >> 12) & 1);
    sign | rounded as u16
}
