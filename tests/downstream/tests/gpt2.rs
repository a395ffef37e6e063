//! The downstream GPT-2 block bound to synthetic GGUF checkpoints: forward against a naive
//! reference, bind errors, laziness, spec round trip, hygiene.

use lazyforge::module::{LazyModule, Strategy};
use lazyforge::ops::KvCache;
use lazyforge::serde_json;
use lazyforge::source::gguf::GgufWriter;
use lazyforge::{
    lazy_module, Bind, Checkpoint, DType, Device, Error, ExecutionMode, Scope, Tensor, Weight,
};
use lazyforge_downstream::{Gpt2, GptConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn config() -> GptConfig {
    GptConfig {
        hidden: 16,
        n_heads: 2,
        intermediate: 64,
        n_layers: 2,
        vocab: 24,
        context: 12,
        eps: 1e-5,
    }
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Deterministic pseudo-random values in [-scale, scale].
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Every tensor of a GPT-2 checkpoint for `cfg` (with `output.weight` only if `untied`).
fn gpt2_tensors(cfg: &GptConfig, untied: bool) -> Tensors {
    let (d, f) = (cfg.hidden, cfg.intermediate);
    let mut t = Tensors::new();
    let mut seed = 0;
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        seed += 1;
        let n = shape.iter().product();
        let v = values(seed, n, scale)
            .into_iter()
            .map(|x| x + offset)
            .collect();
        t.insert(name, (shape, v));
    };
    add("token_embd.weight".into(), vec![cfg.vocab, d], 0.5, 0.0);
    add(
        "position_embd.weight".into(),
        vec![cfg.context, d],
        0.1,
        0.0,
    );
    for i in 0..cfg.n_layers {
        for norm in ["attn_norm", "ffn_norm"] {
            add(format!("blk.{i}.{norm}.weight"), vec![d], 0.1, 1.0);
            add(format!("blk.{i}.{norm}.bias"), vec![d], 0.1, 0.0);
        }
        add(format!("blk.{i}.attn_qkv.weight"), vec![3 * d, d], 0.4, 0.0);
        add(format!("blk.{i}.attn_qkv.bias"), vec![3 * d], 0.1, 0.0);
        add(format!("blk.{i}.attn_output.weight"), vec![d, d], 0.3, 0.0);
        add(format!("blk.{i}.attn_output.bias"), vec![d], 0.1, 0.0);
        add(format!("blk.{i}.ffn_up.weight"), vec![f, d], 0.3, 0.0);
        add(format!("blk.{i}.ffn_up.bias"), vec![f], 0.1, 0.0);
        add(format!("blk.{i}.ffn_down.weight"), vec![d, f], 0.2, 0.0);
        add(format!("blk.{i}.ffn_down.bias"), vec![d], 0.1, 0.0);
    }
    add("output_norm.weight".into(), vec![d], 0.1, 1.0);
    add("output_norm.bias".into(), vec![d], 0.1, 0.0);
    if untied {
        add("output.weight".into(), vec![cfg.vocab, d], 0.3, 0.0);
    }
    t
}

fn write(dir: &Path, name: &str, tensors: &Tensors) -> PathBuf {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "gpt2".to_string())
        .unwrap();
    for (name, (shape, v)) in tensors {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.add_tensor(name.clone(), DType::F32, shape, &bytes)
            .unwrap();
    }
    let path = dir.join(name);
    w.write_to_path(&path).unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lazyforge-downstream-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bind(path: &Path) -> (Checkpoint, lazyforge::Result<Gpt2>) {
    let ckpt = Checkpoint::open(path).unwrap();
    let model = Gpt2::bind(config(), &Scope::root(&ckpt, Device::Cpu));
    (ckpt, model)
}

// ---- the naive reference: plain loops over the same values ----

fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    x.iter()
        .zip(w)
        .zip(b)
        .map(|((v, w), b)| (v - mean) * inv * w + b)
        .collect()
}

fn linear(x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let k = x.len();
    (0..w.len() / k)
        .map(|i| {
            let dot: f32 = (0..k).map(|j| w[i * k + j] * x[j]).sum();
            dot + b.map_or(0.0, |b| b[i])
        })
        .collect()
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

fn naive_logits(t: &Tensors, cfg: &GptConfig, ids: &[u32]) -> Vec<f32> {
    let g = |name: &str| t[name].1.as_slice();
    let (d, hd) = (cfg.hidden, cfg.head_dim());
    let mut xs: Vec<Vec<f32>> = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            let id = id as usize;
            (0..d)
                .map(|j| g("token_embd.weight")[id * d + j] + g("position_embd.weight")[p * d + j])
                .collect()
        })
        .collect();
    for l in 0..cfg.n_layers {
        let w = |s: &str| g(&format!("blk.{l}.{s}")).to_vec();
        let qkv: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| {
                let h = layer_norm(x, &w("attn_norm.weight"), &w("attn_norm.bias"), cfg.eps);
                linear(&h, &w("attn_qkv.weight"), Some(&w("attn_qkv.bias")))
            })
            .collect();
        for t_i in 0..xs.len() {
            let mut mixed = vec![0.0; d];
            for h in 0..cfg.n_heads {
                let q = &qkv[t_i][h * hd..(h + 1) * hd];
                let scores: Vec<f32> = (0..=t_i)
                    .map(|s| {
                        let k = &qkv[s][d + h * hd..d + (h + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (hd as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f32 = e.iter().sum();
                for (s, p) in e.iter().enumerate() {
                    for j in 0..hd {
                        mixed[h * hd + j] += p / z * qkv[s][2 * d + h * hd + j];
                    }
                }
            }
            let a = linear(
                &mixed,
                &w("attn_output.weight"),
                Some(&w("attn_output.bias")),
            );
            xs[t_i].iter_mut().zip(a).for_each(|(x, a)| *x += a);
        }
        for x in xs.iter_mut() {
            let h = layer_norm(x, &w("ffn_norm.weight"), &w("ffn_norm.bias"), cfg.eps);
            let up: Vec<f32> = linear(&h, &w("ffn_up.weight"), Some(&w("ffn_up.bias")))
                .into_iter()
                .map(gelu)
                .collect();
            let down = linear(&up, &w("ffn_down.weight"), Some(&w("ffn_down.bias")));
            x.iter_mut().zip(down).for_each(|(x, m)| *x += m);
        }
    }
    let last = layer_norm(
        xs.last().unwrap(),
        g("output_norm.weight"),
        g("output_norm.bias"),
        cfg.eps,
    );
    let head = t.get("output.weight").unwrap_or(&t["token_embd.weight"]);
    linear(&last, &head.1, None)
}

fn assert_close(got: &Tensor, want: &[f32]) {
    let got = got.to_f32_vec().unwrap();
    assert_eq!(got.len(), want.len());
    let err: f32 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        .sqrt();
    let norm: f32 = want.iter().map(|b| b * b).sum::<f32>().sqrt();
    assert!(
        err <= 1e-4 * norm,
        "relative L2 error {} (got {got:?}, want {want:?})",
        err / norm
    );
}

// ---- tests ----

#[test]
fn prefill_then_decode_match_the_naive_reference() {
    let cfg = config();
    for untied in [false, true] {
        let dir = temp_dir(&format!("forward-{untied}"));
        let tensors = gpt2_tensors(&cfg, untied);
        let (_ckpt, model) = bind(&write(&dir, "gpt2.gguf", &tensors));
        let model = model.unwrap();
        let ids = [3u32, 17, 5, 9, 21];
        let mut caches =
            KvCache::for_layers(cfg.n_layers, cfg.n_heads, cfg.head_dim(), None).unwrap();
        let logits = model.forward_prefill(&ids[..4], &mut caches).unwrap();
        assert_close(&logits, &naive_logits(&tensors, &cfg, &ids[..4]));
        let logits = model
            .forward(ExecutionMode::DECODE, &ids[4..], &mut caches)
            .unwrap();
        assert_close(&logits, &naive_logits(&tensors, &cfg, &ids));
        assert_eq!(model.metrics().get(ExecutionMode::PREFILL).calls, 1);
        assert_eq!(model.metrics().get(ExecutionMode::DECODE).calls, 1);
        assert_eq!(
            model.blocks[1].metrics().get(ExecutionMode::DECODE).calls,
            1
        );
    }
}

#[test]
fn binding_reads_nothing_and_counts_parameters_from_metadata() {
    let cfg = config();
    for untied in [false, true] {
        let dir = temp_dir(&format!("params-{untied}"));
        let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &gpt2_tensors(&cfg, untied)));
        let model = model.unwrap();
        let stats = ckpt.stats();
        assert_eq!(
            (stats.loads, stats.bytes_read, stats.bytes_resident),
            (0, 0, 0)
        );
        let from_file: u64 = ckpt.tensors().iter().map(|t| t.elem_count()).sum();
        assert_eq!(model.parameter_count(), from_file);
        assert!(!model.is_materialized());
        let bytes = model.bytes_by_dtype();
        assert_eq!(bytes.keys().collect::<Vec<_>>(), [&DType::F32]);
        let mut paths = Vec::new();
        model.visit_weights(&mut |w| paths.push(w.path().to_string()));
        assert!(
            paths.contains(&"blocks[1].attn.qkv_bias".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"ln_f.weight".to_string()), "{paths:?}");
        assert_eq!(ckpt.stats().bytes_read, 0, "visiting read nothing");
    }
}

#[test]
fn wrong_shape_fails_naming_path_key_expected_and_found() {
    let cfg = config();
    let dir = temp_dir("wrong-shape");
    let mut tensors = gpt2_tensors(&cfg, true);
    tensors.insert(
        "blk.1.ffn_up.weight".into(),
        (vec![64, 8], vec![0.0; 64 * 8]),
    );
    let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &tensors));
    let err = model.err().expect("a wrong shape is a bind error");
    match &err {
        Error::Bind {
            path,
            key,
            expected,
            found,
            ..
        } => {
            assert_eq!(path, "blocks[1].mlp.up");
            assert_eq!(key, "blk.1.ffn_up.weight");
            assert_eq!(expected, "shape [64, 16]");
            assert_eq!(found, "shape [64, 8]");
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    let text = err.to_string();
    for part in [
        "blocks[1].mlp.up",
        "blk.1.ffn_up.weight",
        "[64, 16]",
        "[64, 8]",
        "gpt2.gguf",
    ] {
        assert!(text.contains(part), "{text}");
    }
    assert_eq!(ckpt.stats().bytes_read, 0);
}

#[test]
fn missing_tensor_fails_naming_path_and_key() {
    let cfg = config();
    let dir = temp_dir("missing");
    let mut tensors = gpt2_tensors(&cfg, true);
    tensors.remove("blk.0.attn_qkv.bias");
    let (_ckpt, model) = bind(&write(&dir, "gpt2.gguf", &tensors));
    let err = model.err().expect("a missing tensor is a bind error");
    assert_eq!(
        err.to_string(),
        format!(
            "binding `blocks[0].attn.qkv_bias`: tensor 'blk.0.attn_qkv.bias' in {}: expected a \
             tensor of shape [48], found no such tensor",
            dir.join("gpt2.gguf").display()
        )
    );
}

#[test]
fn a_decode_step_materializes_only_the_weights_that_ran() {
    let cfg = config();
    let dir = temp_dir("decode-lazy");
    let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &gpt2_tensors(&cfg, true)));
    let model = model.unwrap();
    let mut cache = KvCache::new(cfg.n_heads, cfg.head_dim(), None).unwrap();
    let x = Tensor::from_f32([1, cfg.hidden], vec![0.25; cfg.hidden]).unwrap();
    model.blocks[0].forward_decode(&x, &mut cache).unwrap();
    let mut loaded = Vec::new();
    let mut lazy = Vec::new();
    model.visit_weights(&mut |w| {
        if w.is_materialized() {
            loaded.push(w.path().to_string())
        } else {
            lazy.push(w.path().to_string())
        }
    });
    assert_eq!(loaded.len(), 12, "{loaded:?}");
    assert!(
        loaded.iter().all(|p| p.starts_with("blocks[0].")),
        "{loaded:?}"
    );
    assert!(
        lazy.iter().all(|p| !p.starts_with("blocks[0].")),
        "{lazy:?}"
    );
    assert!(model.blocks[0].is_materialized() && !model.blocks[1].is_materialized());
    assert_eq!(ckpt.stats().loads, 12);
    assert_eq!(
        model.blocks[0].metrics().get(ExecutionMode::DECODE).calls,
        1
    );
    assert_eq!(
        model.blocks[0].metrics().get(ExecutionMode::PREFILL).calls,
        0
    );
}

#[test]
fn spec_json_binds_again_to_an_identical_summary() {
    let cfg = config();
    let dir = temp_dir("spec");
    let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &gpt2_tensors(&cfg, false)));
    let model = model.unwrap();
    let text = model.spec().to_string();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let again = Gpt2::bind_spec(&spec, &ckpt).unwrap();
    assert_eq!(again.summary(), model.summary());
    assert_eq!(again.spec(), model.spec());
    let summary = model.summary();
    assert!(summary.contains("blocks[1].attn.qkv = 'blk.1.attn_qkv.weight'  [48, 16] F32 on cpu  768 params, 3.0 KiB, lazy"), "{summary}");
    assert!(summary.starts_with("<root>: Gpt2"), "{summary}");

    // A checkpoint that no longer matches the weight table is refused.
    let mut other = gpt2_tensors(
        &GptConfig {
            intermediate: 32,
            ..cfg
        },
        false,
    );
    other.remove("output.weight");
    let (ckpt2, _) = bind(&write(&dir, "other.gguf", &other));
    assert!(Gpt2::bind_spec(&spec, &ckpt2).is_err());
}

#[test]
fn materialize_loads_everything_once_and_evict_drops_it() {
    let cfg = config();
    let dir = temp_dir("materialize");
    let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &gpt2_tensors(&cfg, false)));
    let model = model.unwrap();
    model.materialize().unwrap();
    assert!(model.is_materialized());
    // The LM head is tied to the token embeddings: one tensor, loaded once.
    let n = model.unique_weights().len();
    assert_eq!(n + 1, model.all_weights().len());
    assert_eq!(ckpt.stats().loads as usize, n);
    model.materialize().unwrap();
    assert_eq!(ckpt.stats().loads as usize, n, "loaded once");
    assert!(model.summary().contains("materialized in"));
    assert_eq!(model.evict(), n);
    assert!(!model.is_materialized());
}

#[test]
fn a_mode_outside_the_strategy_is_an_error() {
    let cfg = config();
    let dir = temp_dir("modes");
    let (_ckpt, model) = bind(&write(&dir, "gpt2.gguf", &gpt2_tensors(&cfg, false)));
    let model = model.unwrap();
    assert_eq!(Gpt2::MODES, [ExecutionMode::PREFILL, ExecutionMode::DECODE]);
    assert!(Gpt2::supports(ExecutionMode::DECODE));
    let mut caches = KvCache::for_layers(cfg.n_layers, cfg.n_heads, cfg.head_dim(), None).unwrap();
    let err = model
        .forward(ExecutionMode::new("long_context"), &[1], &mut caches)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "module `Gpt2` has no long_context mode; its strategy supports: prefill, decode"
    );
}

/// Fields named like generated internals compile and behave.
#[lazy_module]
struct Hygiene {
    #[config]
    scope: usize,
    #[weight("meta", shape = [scope])]
    meta: Weight,
    #[weight("cell", shape = [*scope, 2])]
    cell: Weight,
    #[weight("source", shape = [scope], optional)]
    source: Option<Weight>,
    #[state]
    state: std::sync::Mutex<u32>,
}

#[test]
fn fields_named_like_internals_compile() {
    let dir = temp_dir("hygiene");
    let mut t = Tensors::new();
    t.insert("meta".into(), (vec![3], vec![1.0, 2.0, 3.0]));
    t.insert("cell".into(), (vec![3, 2], vec![0.0; 6]));
    let ckpt = Checkpoint::open(write(&dir, "h.gguf", &t)).unwrap();
    let h = Hygiene::bind(3, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    assert_eq!(h.meta().unwrap().as_f32().unwrap(), [1.0, 2.0, 3.0]);
    assert_eq!(h.cell().unwrap().shape(), [3, 2]);
    assert!(h.source().unwrap().is_none() && h.source.is_none());
    assert_eq!(*h.state.lock().unwrap(), 0);
    assert_eq!(h.parameter_count(), 9);
    assert_eq!(h.config_json(), serde_json::Value::from(3));
}

#[test]
fn one_model_serves_many_threads_and_loads_each_weight_once() {
    let cfg = config();
    let dir = temp_dir("threads");
    let tensors = gpt2_tensors(&cfg, false);
    let (ckpt, model) = bind(&write(&dir, "gpt2.gguf", &tensors));
    let model = model.unwrap();
    let want = naive_logits(&tensors, &cfg, &[4, 8, 15]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut caches =
                    KvCache::for_layers(cfg.n_layers, cfg.n_heads, cfg.head_dim(), None).unwrap();
                let logits = model.forward_prefill(&[4, 8, 15], &mut caches).unwrap();
                assert_close(&logits, &want);
            });
        }
    });
    assert_eq!(ckpt.stats().loads as usize, model.unique_weights().len());
    assert_eq!(model.metrics().get(ExecutionMode::PREFILL).calls, 4);
}

/// A GPT-2 GGUF that also carries its config under `gpt2.*`, as the registry's opener
/// reads it.
fn write_with_config(dir: &Path, cfg: &GptConfig, tensors: &Tensors) -> PathBuf {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "gpt2".to_string())
        .unwrap();
    for (key, value) in [
        ("gpt2.embedding_length", cfg.hidden),
        ("gpt2.attention.head_count", cfg.n_heads),
        ("gpt2.feed_forward_length", cfg.intermediate),
        ("gpt2.block_count", cfg.n_layers),
        ("gpt2.context_length", cfg.context),
    ] {
        w.add_metadata(key, value as u32).unwrap();
    }
    w.add_metadata("gpt2.attention.layer_norm_epsilon", cfg.eps)
        .unwrap();
    for (name, (shape, v)) in tensors {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.add_tensor(name.clone(), DType::F32, shape, &bytes)
            .unwrap();
    }
    let path = dir.join("gpt2-config.gguf");
    w.write_to_path(&path).unwrap();
    path
}

#[test]
fn registered_gpt2_runs_through_the_lazyforge_command_line() {
    let cfg = config();
    let dir = temp_dir("cli");
    let tensors = gpt2_tensors(&cfg, false);
    let path = write_with_config(&dir, &cfg, &tensors);

    // The greedy continuation, straight from the model.
    let model = Gpt2::open(&path, Device::Cpu).unwrap();
    let mut caches = KvCache::for_layers(cfg.n_layers, cfg.n_heads, cfg.head_dim(), None).unwrap();
    let prompt = [3u32, 17, 5];
    let mut logits = model.forward_prefill(&prompt, &mut caches).unwrap();
    let mut want = Vec::new();
    for _ in 0..4 {
        let row = logits.to_f32_vec().unwrap();
        let next = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap() as u32;
        want.push(next);
        logits = model.forward_decode(&[next], &mut caches).unwrap();
    }

    // The same through `lazyforge-gpt2 run` (the lazyforge CLI with GPT-2 registered): ids
    // in, ids out, no tokenizer in the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lazyforge-gpt2"))
        .args(["run", "--model"])
        .arg(&path)
        .args(["--prompt-ids", "3,17,5", "--max-tokens", "4", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["architecture"], "gpt2");
    assert_eq!(doc["text"], serde_json::Value::Null);
    let got: Vec<u32> = doc["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, want);

    // The built-in tool alone does not know GPT-2, and says which architectures it knows.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lazyforge-gpt2"))
        .args(["architectures"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("gpt2") && listed.contains("gemma3") && listed.contains("llama"),
        "{listed}"
    );
}
