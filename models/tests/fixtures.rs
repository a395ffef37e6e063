//! The reference fixtures `tools/make_refs.py` wrote are whole, consistent, and readable by
//! lazyforge: the model tests that compare against them can trust them.

mod common;

use common::ids;

use lazyforge::Checkpoint;
use lazyforge_models::npy;
use serde_json::Value;
use std::path::Path;

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with `python3 tools/make_refs.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("valid JSON")
}

/// Indices of the `k` largest values, largest first (lower index first on ties).
fn top_k(row: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[test]
fn smollm2_logits_fixture_agrees_with_its_top10_ids() {
    let refs = common::smollm2_refs();
    let dir = common::fixtures_dir().join("refs");
    let logits = npy::read_f32(dir.join(refs["logits_file"].as_str().unwrap())).unwrap();
    let entries = refs["logits"].as_array().unwrap();
    assert!(entries.len() >= 3, "at least 3 prompts");
    assert_eq!(logits.shape, vec![entries.len(), 49152]);
    assert!(logits.data.iter().all(|x| x.is_finite()));
    for e in entries {
        let row = logits.row(e["row"].as_u64().unwrap() as usize).unwrap();
        assert_eq!(top_k(row, 10), ids(&e["top10_ids"]), "{}", e["prompt"]);
    }
    for g in refs["greedy"].as_array().unwrap() {
        assert_eq!(ids(&g["generated_ids"]).len(), 16, "{}", g["prompt"]);
    }
    // The greedy continuation's first token is the argmax of the same prompt's logits.
    let first = &refs["greedy"][0];
    let same = entries
        .iter()
        .find(|e| e["prompt"] == first["prompt"])
        .expect("the first greedy prompt also has logits");
    assert_eq!(ids(&first["generated_ids"])[0], ids(&same["top10_ids"])[0]);
}

/// Checks a tiny model folder: refs, logits shape, greedy length, and that lazyforge opens
/// the checkpoint (every file, every tensor) from metadata alone.
fn check_tiny(name: &str) -> (Checkpoint, Value, Value) {
    let dir = common::fixtures_dir().join(name);
    let refs = json(&dir.join("refs.json"));
    let config = json(&dir.join("config.json"));
    let input = ids(&refs["input_ids"]);
    let vocab = config["vocab_size"].as_u64().unwrap() as usize;
    let logits = npy::read_f32(dir.join(refs["logits_file"].as_str().unwrap())).unwrap();
    assert_eq!(logits.shape, vec![input.len(), vocab]);
    assert!(logits.data.iter().all(|x| x.is_finite()));
    let generated = ids(&refs["greedy_generated_ids"]);
    assert_eq!(generated.len(), 8);
    // The first greedy token is the argmax at the last input position.
    let last = logits.row(input.len() - 1).unwrap();
    assert_eq!(generated[0], top_k(last, 1)[0]);
    let ckpt = Checkpoint::open(&dir).unwrap();
    let embed = ckpt.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.shape, vec![vocab, 64]);
    let k = ckpt
        .tensor("model.layers.1.self_attn.k_proj.weight")
        .unwrap();
    assert_eq!(k.shape, vec![2 * 16, 64], "2 KV heads of dimension 16");
    for file in ckpt.files() {
        assert!(file.len() < 1 << 20, "tiny checkpoints stay under 1 MB");
    }
    (ckpt, refs, config)
}

#[test]
fn tiny_mistral_window_is_shorter_than_the_test_sequence() {
    let (ckpt, refs, config) = check_tiny("tiny-mistral");
    let window = config["sliding_window"].as_u64().unwrap() as usize;
    assert_eq!(window, 4);
    assert!(window < ids(&refs["input_ids"]).len());
    assert!(ckpt.contains("lm_head.weight"), "untied output projection");
    // transformers 5.x layout: the rope base under rope_parameters.
    assert!(config["rope_parameters"]["rope_theta"].is_number());
}

#[test]
fn tiny_llama_is_sharded_with_tied_embeddings() {
    let (ckpt, _, config) = check_tiny("tiny-llama-sharded");
    assert!(ckpt.files().len() >= 2, "saved in at least two shards");
    assert!(
        !ckpt.contains("lm_head.weight"),
        "tied: no separate lm_head"
    );
    assert_eq!(config["tie_word_embeddings"], Value::Bool(true));
    // transformers 4.x layout: rope_theta at the top level.
    assert!(config["rope_theta"].is_number());
}
