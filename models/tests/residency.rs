//! SmolLM2 under a memory budget: bit-identical logits while evicting, many threads on one
//! shared model, estimates against the real file and KV cache, and a budget too small.

mod common;

use lazyforge::{Device, LazyModule};
use lazyforge_models::llama::{Llama, LlamaCache};
use lazyforge_models::sampling::argmax;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314]; // "The capital of France is"

fn open() -> Llama {
    Llama::open(common::smollm2_path(), Device::Cpu).expect("SmolLM2 opens")
}

/// Greedy decoding: the logits of the prompt and of each of `steps` generated tokens.
fn greedy_logits(model: &Llama, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
    let mut cache: LlamaCache = model.new_cache().unwrap();
    let mut logits = model
        .forward_prefill(prompt, &mut cache)
        .unwrap()
        .to_f32_vec()
        .unwrap();
    let mut all = vec![logits.clone()];
    for _ in 0..steps {
        let next = argmax(&logits).expect("logits are numbers");
        logits = model
            .forward_decode(&[next], &mut cache)
            .unwrap()
            .to_f32_vec()
            .unwrap();
        all.push(logits.clone());
    }
    all
}

fn ids_of(logits: &[Vec<f32>]) -> Vec<u32> {
    logits
        .iter()
        .map(|l| argmax(l).expect("logits are numbers"))
        .collect()
}

#[test]
fn a_budget_of_40_percent_gives_bit_identical_logits_while_evicting() {
    let want = greedy_logits(&open(), &PROMPT, 8);
    let model = open();
    let budget = model.total_bytes() * 2 / 5;
    model.residency().set_budget(Some(budget));
    let got = greedy_logits(&model, &PROMPT, 8);
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let same = g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "logits differ at step {step}");
    }
    let stats = model.residency().stats();
    assert!(stats.loads.evictions > 0, "{stats:?}");
    assert!(stats.loads.reloads > 0, "{stats:?}");
    assert!(stats.peak_resident_bytes <= budget, "{stats:?}");
    assert_eq!(stats.over_budget, 0, "{stats:?}");
}

#[test]
fn sixteen_threads_decode_on_one_model_with_half_its_bytes() {
    let prompts: Vec<Vec<u32>> = (0..4u32)
        .map(|k| PROMPT.iter().map(|&t| t + k).collect())
        .collect();
    let reference = open();
    let want: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| ids_of(&greedy_logits(&reference, p, 4)))
        .collect();
    drop(reference);

    let model = Arc::new(open());
    let budget = model.total_bytes() / 2;
    model.residency().set_budget(Some(budget));
    let run_for = Duration::from_secs(10);
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..16 {
        let (model, tx, prompts) = (Arc::clone(&model), tx.clone(), prompts.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut runs = Vec::new();
            // At least one sequence each, and keep going until the time is up.
            while runs.is_empty() || start.elapsed() < run_for {
                let k = (t + runs.len()) % prompts.len();
                runs.push((k, ids_of(&greedy_logits(&model, &prompts[k], 4))));
            }
            let _ = tx.send(runs);
        });
    }
    drop(tx);
    let mut sequences = 0;
    for _ in 0..16 {
        let runs = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("every thread finishes: no deadlock");
        for (k, ids) in runs {
            assert_eq!(ids, want[k], "prompt {k} under contention");
            sequences += 1;
        }
    }
    assert!(sequences >= 16);
    let stats = model.residency().stats();
    assert!(stats.loads.evictions > 0, "{stats:?}");
    // Exactly one load per residency: a weight loads again only after it was evicted.
    for w in model.unique_weights() {
        let s = w.stats();
        let resident = u64::from(w.is_materialized());
        assert_eq!(s.loads, s.evictions + resident, "{}: {s:?}", w.path());
    }
}

#[test]
fn estimates_match_the_file_and_the_kv_cache() {
    let model = open();
    let checkpoint = lazyforge::Checkpoint::open(common::smollm2_path()).unwrap();
    let file_bytes: u64 = checkpoint.bytes_by_dtype().values().map(|(_, b)| b).sum();
    let context = 64;
    let estimate = model.estimate_for(context, 1);
    assert_eq!(estimate.weight_bytes_on(Device::Cpu), file_bytes);
    assert_eq!(estimate.parameters, model.parameter_count());
    assert!(estimate.flops_per_token_decode > 2 * 100_000_000);
    assert!(estimate.flops_per_token_prefill <= estimate.flops_per_token_decode);
    assert_eq!(
        model.residency().stats().loads.bytes_read,
        0,
        "nothing read"
    );

    let ids: Vec<u32> = (0..context as u32).map(|i| 100 + i).collect();
    let mut cache = model.new_cache().unwrap();
    model.forward_prefill(&ids, &mut cache).unwrap();
    assert_eq!(estimate.kv_cache_bytes, cache.kv_memory_bytes() as u64);
    assert_eq!(model.residency().resident_bytes(), file_bytes);
    let by_dtype: u64 = estimate.weight_bytes.values().sum();
    assert_eq!(by_dtype, file_bytes);
    assert_eq!(
        model.estimate_for(context, 3).kv_cache_bytes,
        3 * estimate.kv_cache_bytes
    );
}

#[test]
fn a_budget_smaller_than_one_module_is_an_error_naming_it() {
    let model = open();
    let budget = 1 << 20;
    model.residency().set_budget(Some(budget));
    let mut cache = model.new_cache().unwrap();
    let err = model.forward_prefill(&PROMPT, &mut cache).unwrap_err();
    let msg = err.to_string();
    // The root's own weights (token embeddings, tied to the head) are the first to exceed it.
    assert!(msg.contains("module `Llama`"), "{msg}");
    assert!(msg.contains(&budget.to_string()), "{msg}");
    assert!(msg.contains("--budget"), "{msg}");
    assert_eq!(
        model.residency().stats().loads.bytes_read,
        0,
        "nothing read"
    );
}
