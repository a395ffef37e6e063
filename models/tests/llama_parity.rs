//! Llama and Mistral against HF transformers in float32 (fixtures from `tools/make_refs.py`):
//! the real SmolLM2 GGUF, a tiny Mistral whose sliding window is shorter than the sequence,
//! and a tiny Llama saved as sharded safetensors.

mod common;

use common::ids;

use lazyforge::{Bind, Checkpoint, Device, LazyModule, Scope};
use lazyforge_models::llama::{hf_alias, Llama, LlamaConfig};
use lazyforge_models::npy;
use lazyforge_models::sampling::argmax;
use serde_json::Value;
use std::path::Path;

/// Relative L2 error allowed on logits with f32 activations (the exactness target: about
/// 1e-3; the SmolLM2 runs measure about 2e-6, the tiny models about 1e-7).
const LOGITS_TOLERANCE: f64 = 1e-3;

/// Greedy decoding of `n` tokens after `prompt`: prefill, then decode one token at a time.
fn greedy(model: &Llama, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = model.new_cache().unwrap();
    let mut logits = model.forward_prefill(prompt, &mut cache).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let next = argmax(logits.as_f32().unwrap()).unwrap();
        out.push(next);
        logits = model.forward_decode(&[next], &mut cache).unwrap();
    }
    out
}

#[test]
fn smollm2_last_position_logits_match_transformers() {
    let model = Llama::open(common::smollm2_path(), Device::Cpu).unwrap();
    let refs = common::smollm2_refs();
    let table = npy::read_f32(common::fixtures_dir().join("refs/smollm2_logits.npy")).unwrap();
    let cases = refs["logits"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let prompt = ids(&case["ids"]);
        let want = table.row(case["row"].as_u64().unwrap() as usize).unwrap();
        let mut cache = model.new_cache().unwrap();
        let got = model.forward_prefill(&prompt, &mut cache).unwrap();
        let err = common::relative_l2(got.as_f32().unwrap(), want);
        assert!(
            err < LOGITS_TOLERANCE,
            "{}: relative L2 {err:e}",
            case["prompt"]
        );
        assert_eq!(argmax(got.as_f32().unwrap()), argmax(want));
    }
}

#[test]
fn smollm2_greedy_continuations_match_transformers() {
    let model = Llama::open(common::smollm2_path(), Device::Cpu).unwrap();
    let refs = common::smollm2_refs();
    for case in refs["greedy"].as_array().unwrap() {
        let want = ids(&case["generated_ids"]);
        assert!(want.len() >= 16);
        let got = greedy(&model, &ids(&case["prompt_ids"]), want.len());
        assert_eq!(got, want, "{}", case["prompt"]);
    }
}

#[test]
fn opening_smollm2_reads_no_weights_and_decode_loads_each_weight_once() {
    let model = Llama::open(common::smollm2_path(), Device::Cpu).unwrap();
    assert!(!model.is_materialized());
    assert_eq!(model.parameter_count(), 134_515_008);
    let mut cache = model.new_cache().unwrap();
    model.forward_prefill(&[1, 2, 3], &mut cache).unwrap();
    model.forward_decode(&[4], &mut cache).unwrap();
    model.forward_decode(&[5], &mut cache).unwrap();
    let mut loads = Vec::new();
    model.visit_weights(&mut |w| loads.push((w.path().to_string(), w.stats().loads)));
    assert!(loads.iter().all(|(_, n)| *n == 1), "{loads:?}");
}

fn check_tiny(dir: &Path) {
    let refs: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("refs.json")).unwrap()).unwrap();
    let model = Llama::open(dir, Device::Cpu).unwrap();
    let input = ids(&refs["input_ids"]);
    let want = npy::read_f32(dir.join("logits.npy")).unwrap();
    let mut cache = model.new_cache().unwrap();
    let got = model.prefill_all_logits(&input, &mut cache).unwrap();
    let vocab = model.config().vocab;
    for (pos, row) in got.as_f32().unwrap().chunks_exact(vocab).enumerate() {
        let err = common::relative_l2(row, want.row(pos).unwrap());
        assert!(
            err < 1e-4,
            "{} position {pos}: relative L2 {err:e}",
            dir.display()
        );
    }
    let generated = greedy(&model, &input, 8);
    assert_eq!(
        generated,
        ids(&refs["greedy_generated_ids"]),
        "{}",
        dir.display()
    );
}

#[test]
fn tiny_mistral_with_a_sliding_window_matches_transformers_at_every_position() {
    let dir = common::fixtures_dir().join("tiny-mistral");
    let model = Llama::open(&dir, Device::Cpu).unwrap();
    assert_eq!(model.config().sliding_window, Some(4));
    check_tiny(&dir);
    // Decode keeps the cache bounded to the window.
    let mut cache = model.new_cache().unwrap();
    model.forward_prefill(&[1, 2, 3], &mut cache).unwrap();
    for t in 0..20 {
        model.forward_decode(&[t], &mut cache).unwrap();
    }
    assert_eq!(cache.position(), 23);
    let per_slot = model.config().n_kv_heads * model.config().head_dim * 2 * 4;
    assert!(
        cache.kv_memory_bytes() <= model.config().n_layers * 8 * per_slot,
        "{}",
        cache.kv_memory_bytes()
    );
}

#[test]
fn a_fresh_cache_holds_a_few_kib_whatever_the_context_length_and_grows_with_use() {
    let dir = common::fixtures_dir().join("tiny-llama-sharded");
    let mut cfg = LlamaConfig::from_hf_config(&dir.join("config.json")).unwrap();
    cfg.context_length = 128 * 1024;
    let ckpt = Checkpoint::open(&dir)
        .unwrap()
        .with_aliases(hf_alias)
        .unwrap();
    let model = Llama::bind(cfg, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    let c = model.config().clone();

    let mut cache = model.new_cache().unwrap();
    assert_eq!(cache.device(), Device::Cpu);
    assert_eq!(cache.kv_memory_bytes(), 0);
    assert!(
        cache.memory_bytes() <= 4096,
        "a fresh cache holds {} bytes",
        cache.memory_bytes()
    );

    // Three tokens: 16 KV slots per layer and 16 RoPE positions, not 128K of them.
    let want = model.forward_prefill(&[1, 2, 3], &mut cache).unwrap();
    let kv = c.n_layers * 16 * (2 * c.n_kv_heads * c.head_dim * 4 + 8);
    assert_eq!(cache.kv_memory_bytes(), kv);
    assert_eq!(cache.rope_memory_bytes(), c.rope_dim / 2 * 4 * (1 + 2 * 16));
    for t in 0..30 {
        model.forward_decode(&[t], &mut cache).unwrap();
    }
    assert_eq!(cache.position(), 33);
    assert!(cache.memory_bytes() <= 4 * (kv + c.rope_dim / 2 * 4 * (1 + 2 * 64)));

    // The same numbers as a model bound with the file's own context length.
    let small = Llama::open(&dir, Device::Cpu).unwrap();
    let got = small
        .forward_prefill(&[1, 2, 3], &mut small.new_cache().unwrap())
        .unwrap();
    assert_eq!(got.to_f32_vec().unwrap(), want.to_f32_vec().unwrap());
}

#[test]
fn tiny_llama_from_sharded_safetensors_matches_transformers_at_every_position() {
    check_tiny(&common::fixtures_dir().join("tiny-llama-sharded"));
}
