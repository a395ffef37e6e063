//! Residency: a byte budget with LRU eviction at module granularity, pins, tied weights,
//! exactly one load per residency under contention, and mapped pages given back.

use lazyforge::source::gguf::GgufWriter;
use lazyforge::{lazy_module, strategy, Bind, Checkpoint, DType, Device, Error, LazyModule};
use lazyforge::{Result, Scope, Weight};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `(layers, dim)`.
type Dims = (usize, usize);

#[lazy_module]
struct Layer {
    #[config]
    dims: Dims,
    #[weight("w", shape = [dims.1, dims.1])]
    w: Weight,
}

#[strategy(unified)]
impl Layer {
    /// A stand-in for real work that reads every value of the weight.
    fn unified(&self, x: f64) -> Result<f64> {
        let w = self.w()?;
        Ok(x + w.to_f32_vec()?.iter().map(|&v| v as f64).sum::<f64>())
    }
}

#[lazy_module]
struct Stack {
    #[config]
    dims: Dims,
    #[weight("embd", shape = [8, dims.1])]
    embd: Weight,
    #[submodules("blk.{i}", count = dims.0)]
    layers: Vec<Layer>,
    #[weight("head", shape = [8, dims.1], fallback = "embd")]
    head: Weight,
}

#[strategy(unified)]
impl Stack {
    fn unified(&self, x: f64) -> Result<f64> {
        let mut x = x + self.embd()?.to_f32_vec()?[0] as f64;
        for layer in &self.layers {
            x = layer.forward_unified(x)?;
        }
        Ok(x + self.head()?.to_f32_vec()?[1] as f64)
    }
}

const LAYERS: usize = 8;
const DIM: usize = 64;
/// Bytes of one layer's weight (F32).
const LAYER_BYTES: u64 = (DIM * DIM * 4) as u64;
/// Bytes of the embeddings (tied to the head: once).
const EMBD_BYTES: u64 = (8 * DIM * 4) as u64;

fn write_model(dir: &Path) -> PathBuf {
    let mut w = GgufWriter::new();
    let bytes = |n: usize, seed: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (((i * 31 + seed * 7) % 17) as f32 / 16.0).to_le_bytes())
            .collect()
    };
    w.add_tensor("embd", DType::F32, &[8, DIM], &bytes(8 * DIM, 99))
        .unwrap();
    for i in 0..LAYERS {
        w.add_tensor(
            format!("blk.{i}.w"),
            DType::F32,
            &[DIM, DIM],
            &bytes(DIM * DIM, i),
        )
        .unwrap();
    }
    let path = dir.join("stack.gguf");
    w.write_to_path(&path).unwrap();
    path
}

fn open(dir: &Path) -> (Checkpoint, Stack) {
    let ckpt = Checkpoint::open(write_model(dir)).unwrap();
    let model = Stack::bind((LAYERS, DIM), &Scope::root(&ckpt, Device::Cpu)).unwrap();
    (ckpt, model)
}

#[test]
fn lru_evicts_least_recently_used_modules_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, unlimited) = open(dir.path());
    let want = unlimited.forward_unified(1.0).unwrap();

    let (_c, model) = open(dir.path());
    let budget = EMBD_BYTES + 3 * LAYER_BYTES;
    model.residency().set_budget(Some(budget));
    for _ in 0..3 {
        assert_eq!(model.forward_unified(1.0).unwrap(), want);
    }
    let stats = model.residency().stats();
    assert!(stats.peak_resident_bytes <= budget, "{stats:?}");
    assert_eq!(stats.over_budget, 0);
    // Each pass loads every layer once and evicts all but the last three.
    assert_eq!(stats.loads.evictions, 3 * (LAYERS as u64 - 3) + 2 * 3);
    // Every eviction but the last pass's five was followed by a reload.
    assert_eq!(
        stats.loads.reloads,
        stats.loads.evictions - (LAYERS as u64 - 3)
    );
    let resident: Vec<bool> = model.layers.iter().map(|l| l.is_materialized()).collect();
    assert_eq!(
        resident,
        [false, false, false, false, false, true, true, true]
    );
    assert!(
        model.embd.is_materialized(),
        "the root is pinned while it runs"
    );
    let summary = model.summary();
    assert!(summary.contains("evictions"), "{summary}");
}

#[test]
fn a_module_bigger_than_the_budget_is_an_error_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, model) = open(dir.path());
    model.residency().set_budget(Some(LAYER_BYTES - 1));
    let err = model.forward_unified(0.0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Budget { .. }), "{err:?}");
    assert!(
        msg.contains("Layer (layers[0])")
            && msg.contains(&LAYER_BYTES.to_string())
            && msg.contains(&(LAYER_BYTES - 1).to_string()),
        "{msg}"
    );
    // The root's embeddings fit and were loaded; no layer byte was read.
    assert_eq!(ckpt.stats().bytes_read, EMBD_BYTES);
    let err = model.materialize_within(LAYER_BYTES).unwrap_err();
    assert!(err.to_string().contains("Stack"), "{err}");
}

#[test]
fn tied_weights_are_one_resident_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, model) = open(dir.path());
    let total = EMBD_BYTES + LAYERS as u64 * LAYER_BYTES;
    assert_eq!(model.all_weights().len(), LAYERS + 2);
    assert_eq!(model.unique_weights().len(), LAYERS + 1);
    assert_eq!(model.bytes_by_dtype()[&DType::F32], total);
    assert_eq!(model.total_bytes(), total);
    assert_eq!(model.parameter_count(), total / 4);
    model.materialize().unwrap();
    assert_eq!(ckpt.stats().loads, LAYERS as u64 + 1);
    assert_eq!(model.residency().resident_bytes(), total);
    assert!(
        model.head.is_materialized(),
        "the head shares the embeddings' slot"
    );
    let estimate = model.estimate();
    assert_eq!(estimate.weight_bytes_on(Device::Cpu), total);
}

#[test]
fn pinned_weights_are_never_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, model) = open(dir.path());
    model.materialize().unwrap();
    let pinned = model.layers[2].w().unwrap();
    let dropped = model.residency().evict_all();
    assert_eq!(dropped, LAYERS, "everything but the pinned layer");
    assert!(model.layers[2].is_materialized());
    assert_eq!(model.residency().resident_bytes(), LAYER_BYTES);
    // Shrinking the budget below what is pinned cannot free it either.
    model.residency().set_budget(Some(1));
    assert!(model.layers[2].is_materialized());
    assert_eq!(pinned.shape(), [DIM, DIM]);
    drop(pinned);
    assert_eq!(model.evict(), 1);
    assert_eq!(model.residency().resident_bytes(), 0);
}

#[test]
fn loads_are_exactly_once_per_residency_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, reference) = open(dir.path());
    let want = reference.forward_unified(0.5).unwrap();
    let (_c, model) = open(dir.path());
    let model = Arc::new(model);
    // Room for the root and two layers: 16 threads keep evicting each other's layers.
    let budget = EMBD_BYTES + 2 * LAYER_BYTES;
    model.residency().set_budget(Some(budget));
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..16 {
        let (model, tx) = (Arc::clone(&model), tx.clone());
        std::thread::spawn(move || {
            let results: Vec<f64> = (0..30)
                .map(|_| model.forward_unified(0.5).unwrap())
                .collect();
            tx.send(results).unwrap();
        });
    }
    drop(tx);
    for _ in 0..16 {
        let results = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("no thread deadlocked");
        assert!(results.iter().all(|&r| r == want));
    }
    let stats = model.residency().stats();
    assert!(stats.loads.evictions > 0, "{stats:?}");
    // One load per residency: every load but the first of each weight follows an eviction.
    for w in model.unique_weights() {
        let s = w.stats();
        let resident = u64::from(w.is_materialized());
        assert_eq!(s.loads, s.evictions + resident, "{}: {s:?}", w.path());
        assert_eq!(s.reloads, s.loads - 1, "{}: {s:?}", w.path());
    }
    assert_eq!(model.residency().resident_bytes() as usize, {
        model
            .unique_weights()
            .iter()
            .filter(|w| w.is_materialized())
            .map(|w| w.resident_bytes() as usize)
            .sum::<usize>()
    });
}

/// The resident set of this process's mapping of `path`, from `/proc/self/smaps`.
#[cfg(target_os = "linux")]
fn mapped_rss_kib(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.canonicalize().unwrap().display().to_string();
    let mut in_map = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.ends_with(&name);
        } else if let Some(kib) = line.strip_prefix("Rss:").filter(|_| in_map) {
            total += kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

#[cfg(target_os = "linux")]
#[test]
fn evicting_a_mapped_weight_gives_its_pages_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path());
    let ckpt = Checkpoint::open(&path).unwrap();
    let model = Stack::bind((LAYERS, DIM), &Scope::root(&ckpt, Device::Cpu)).unwrap();
    model.materialize().unwrap();
    assert!(model.layers[0].w().unwrap().is_zero_copy());
    let loaded = mapped_rss_kib(&path);
    // Materializing faulted every page in (the header's pages too, from open).
    assert!(loaded * 1024 >= LAYERS as u64 * LAYER_BYTES, "{loaded} KiB");
    assert_eq!(model.evict(), LAYERS + 1);
    let evicted = mapped_rss_kib(&path);
    // What is left is the header and the partial pages at tensor boundaries.
    assert!(
        evicted * 3 < loaded,
        "RSS of the mapping fell from {loaded} KiB to {evicted} KiB"
    );
}
