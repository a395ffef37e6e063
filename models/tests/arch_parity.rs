//! Qwen2, Qwen3 and Phi-3 against HF transformers in float32 (fixtures from
//! `tools/make_tiny_archs.py`): logits at every position, prefill-then-decode against the
//! all-positions prefill, greedy continuations, the config variants each fixture records
//! (Qwen2's sliding window switch, Phi-3's partial RoPE), and config errors that name the key.

mod common;

use common::ids;

use lazyforge::Device;
use lazyforge_models::npy::{self, NpyArray};
use lazyforge_models::sampling::argmax;
use lazyforge_models::{Cache, Phi3, Qwen2, Qwen3, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Relative L2 error allowed per position against transformers (llama_parity's for the tiny
/// models; they measure about 1e-7).
const LOGITS_TOLERANCE: f64 = 1e-4;

/// Prefill-then-decode against the all-positions prefill: the same model on the same device,
/// so only the order of float sums differs.
const DECODE_TOLERANCE: f64 = 1e-5;

/// What the checks need of a model, the same for the three.
trait Arch: Sized {
    const FIXTURE: &'static str;
    fn open_dir(dir: &Path) -> Result<Self>;
    fn cache(&self) -> Cache;
    fn all_logits(&self, ids: &[u32], cache: &mut Cache) -> Vec<f32>;
    fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Vec<f32>;
    fn decode(&self, id: u32, cache: &mut Cache) -> Vec<f32>;
}

macro_rules! arch {
    ($model:ty, $fixture:literal) => {
        impl Arch for $model {
            const FIXTURE: &'static str = $fixture;
            fn open_dir(dir: &Path) -> Result<Self> {
                <$model>::open(dir, Device::Cpu)
            }
            fn cache(&self) -> Cache {
                self.new_cache().unwrap()
            }
            fn all_logits(&self, ids: &[u32], cache: &mut Cache) -> Vec<f32> {
                let logits = self.prefill_all_logits(ids, cache).unwrap();
                assert_eq!(logits.shape(), [ids.len(), 256]);
                logits.to_f32_vec().unwrap()
            }
            fn prefill(&self, ids: &[u32], cache: &mut Cache) -> Vec<f32> {
                let logits = self.forward_prefill(ids, cache).unwrap();
                assert_eq!(logits.shape(), [1, 256]);
                logits.to_f32_vec().unwrap()
            }
            fn decode(&self, id: u32, cache: &mut Cache) -> Vec<f32> {
                let logits = self.forward_decode(&[id], cache).unwrap();
                assert_eq!(logits.shape(), [1, 256]);
                logits.to_f32_vec().unwrap()
            }
        }
    };
}

arch!(Qwen2, "tiny-qwen2");
arch!(Qwen3, "tiny-qwen3");
arch!(Phi3, "tiny-phi3");

fn fixture<M: Arch>() -> PathBuf {
    common::fixtures_dir().join(M::FIXTURE)
}

fn refs(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("refs.json")).unwrap()).unwrap()
}

/// The logits at every position of `input` against `want` (`[n, vocab]`); the worst error.
fn check_every_position<M: Arch>(model: &M, input: &[u32], want: &NpyArray, label: &str) -> f64 {
    let got = model.all_logits(input, &mut model.cache());
    let mut worst = 0.0f64;
    for (pos, row) in got.chunks_exact(256).enumerate() {
        let err = common::relative_l2(row, want.row(pos).unwrap());
        assert!(
            err < LOGITS_TOLERANCE,
            "{label} position {pos}: relative L2 {err:e}"
        );
        worst = worst.max(err);
    }
    worst
}

/// Greedy decoding of `n` tokens after `prompt`: prefill, then one decode step per token.
fn greedy<M: Arch>(model: &M, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = model.cache();
    let mut logits = model.prefill(prompt, &mut cache);
    let mut out = Vec::new();
    for _ in 0..n {
        let next = argmax(&logits).unwrap();
        out.push(next);
        logits = model.decode(next, &mut cache);
    }
    out
}

/// Every check against the fixture's reference.
fn matches_transformers<M: Arch>() {
    let dir = fixture::<M>();
    let refs = refs(&dir);
    let model = M::open_dir(&dir).unwrap();
    let input = ids(&refs["input_ids"]);
    assert_eq!(input.len(), 12);
    let want = npy::read_f32(dir.join("logits.npy")).unwrap();
    let worst = check_every_position(&model, &input, &want, M::FIXTURE);
    eprintln!(
        "{}: worst relative L2 over 12 positions {worst:.2e}",
        M::FIXTURE
    );

    // Prefill 5 tokens, then decode the other 7 one at a time.
    let all = model.all_logits(&input, &mut model.cache());
    let mut cache = model.cache();
    let mut rows = vec![model.prefill(&input[..5], &mut cache)];
    rows.extend(input[5..].iter().map(|&t| model.decode(t, &mut cache)));
    assert_eq!(cache.position(), 12);
    for (pos, row) in (4..).zip(&rows) {
        let err = common::relative_l2(row, &all[pos * 256..(pos + 1) * 256]);
        assert!(
            err < DECODE_TOLERANCE,
            "{} decode at {pos}: relative L2 {err:e}",
            M::FIXTURE
        );
    }

    let want_ids = ids(&refs["greedy_generated_ids"]);
    assert_eq!(want_ids.len(), 8);
    assert_eq!(greedy(&model, &input, 8), want_ids, "{} greedy", M::FIXTURE);
}

/// A copy of the fixture (weights and config.json) with `edit` applied to the config.
fn variant<M: Arch>(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let (dir, tmp) = (fixture::<M>(), tempfile::tempdir().unwrap());
    std::fs::copy(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    tmp
}

/// Opening a copy with `edit` applied fails with a message naming `config.json` and `key`.
fn refused<M: Arch>(key: &str, edit: impl FnOnce(&mut Value)) {
    let tmp = variant::<M>(edit);
    let err = match M::open_dir(tmp.path()) {
        Ok(_) => panic!("{}: opened a config with a bad '{key}'", M::FIXTURE),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(key) && err.contains("config.json"),
        "{}: {err}",
        M::FIXTURE
    );
}

/// Removes `key` from the config.
fn without(key: &'static str) -> impl FnOnce(&mut Value) {
    move |c| {
        c.as_object_mut().unwrap().remove(key);
    }
}

#[test]
fn qwen2_with_tied_embeddings_and_biases_matches_transformers() {
    let model = Qwen2::open(fixture::<Qwen2>(), Device::Cpu).unwrap();
    let c = model.config();
    assert!(c.tie_embeddings);
    // config.json has sliding_window 4 but use_sliding_window false: no window anywhere.
    assert_eq!(c.layer_windows, [None, None]);
    matches_transformers::<Qwen2>();
}

#[test]
fn qwen2_slides_only_layers_past_max_window_layers_when_use_sliding_window_is_set() {
    let dir = fixture::<Qwen2>();
    let want = npy::read_f32(dir.join("logits_sliding.npy")).unwrap();
    let input = ids(&refs(&dir)["input_ids"]);
    let by_max_window_layers = variant::<Qwen2>(|c| c["use_sliding_window"] = json!(true));
    let by_layer_types = variant::<Qwen2>(|c| {
        c["use_sliding_window"] = json!(true);
        c["max_window_layers"] = json!(0);
        c["layer_types"] = json!(["full_attention", "sliding_attention"]);
    });
    for tmp in [by_max_window_layers, by_layer_types] {
        let model = Qwen2::open(tmp.path(), Device::Cpu).unwrap();
        assert_eq!(model.config().layer_windows, [None, Some(4)]);
        check_every_position(&model, &input, &want, "tiny-qwen2 use_sliding_window");
        // The sliding layer's cache keeps the window, the full one every position.
        let mut cache = model.cache();
        model.prefill(&input, &mut cache);
        for t in 0..20 {
            model.decode(t, &mut cache);
        }
        let [full, sliding] = cache.layers() else {
            panic!("two layers")
        };
        assert!(sliding.memory_bytes() < full.memory_bytes() / 2);
    }
}

#[test]
fn qwen3_with_head_dim_apart_from_hidden_over_heads_matches_transformers() {
    let model = Qwen3::open(fixture::<Qwen3>(), Device::Cpu).unwrap();
    let c = model.config();
    assert_eq!((c.base.head_dim, c.base.hidden / c.base.n_heads), (32, 16));
    assert!(!c.tie_embeddings);
    matches_transformers::<Qwen3>();
}

#[test]
fn phi3_with_fused_projections_and_a_sliding_window_matches_transformers() {
    let model = Phi3::open(fixture::<Phi3>(), Device::Cpu).unwrap();
    assert_eq!(model.config().base.sliding_window, Some(5));
    assert_eq!(model.config().base.rope_dim, 16);
    matches_transformers::<Phi3>();
}

#[test]
fn phi3_partial_rotary_factor_rotates_the_leading_dimensions_of_each_head() {
    let dir = fixture::<Phi3>();
    let want = npy::read_f32(dir.join("logits_partial_rotary.npy")).unwrap();
    let input = ids(&refs(&dir)["input_ids"]);
    let in_rope_parameters = variant::<Phi3>(|c| {
        c["rope_parameters"]["partial_rotary_factor"] = json!(0.5);
    });
    let top_level = variant::<Phi3>(|c| {
        let rope = c["rope_parameters"].as_object_mut().unwrap();
        rope.remove("partial_rotary_factor");
        c["partial_rotary_factor"] = json!(0.5);
    });
    for tmp in [in_rope_parameters, top_level] {
        let model = Phi3::open(tmp.path(), Device::Cpu).unwrap();
        assert_eq!(model.config().base.rope_dim, 8);
        check_every_position(&model, &input, &want, "tiny-phi3 partial_rotary_factor 0.5");
    }
}

#[test]
fn a_config_missing_a_key_is_an_error_naming_the_file_and_the_key() {
    for key in ["num_attention_heads", "hidden_size", "vocab_size"] {
        refused::<Qwen2>(key, without(key));
        refused::<Qwen3>(key, without(key));
        refused::<Phi3>(key, without(key));
    }
    refused::<Qwen2>("intermediate_size", without("intermediate_size"));
    refused::<Phi3>("num_hidden_layers", without("num_hidden_layers"));
}

#[test]
fn what_these_models_would_compute_wrongly_is_refused_by_name() {
    let longrope =
        json!({"type": "longrope", "short_factor": vec![1.0; 8], "long_factor": vec![2.0; 8]});
    refused::<Phi3>("rope_scaling", |c| c["rope_scaling"] = longrope);
    refused::<Phi3>("rope_type", |c| {
        c["rope_parameters"]["rope_type"] = json!("longrope")
    });
    refused::<Phi3>("partial_rotary_factor", |c| {
        c["rope_parameters"]["partial_rotary_factor"] = json!(0.1)
    });
    refused::<Qwen3>("attention_bias", |c| c["attention_bias"] = json!(true));
    refused::<Qwen2>("hidden_act", |c| c["hidden_act"] = json!("gelu"));
    refused::<Qwen2>("tie_word_embeddings", |c| {
        c["tie_word_embeddings"] = json!("yes")
    });
    // Untied, but the checkpoint has no lm_head.weight (the tiny Qwen2 is tied).
    refused::<Qwen2>("lm_head.weight", |c| {
        c["tie_word_embeddings"] = json!(false)
    });
    refused::<Qwen2>("layer_types", |c| {
        c["use_sliding_window"] = json!(true);
        c["layer_types"] = json!(["full_attention"]);
    });
}
