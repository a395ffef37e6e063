//! [`Checkpoint`]: any supported checkpoint behind one interface — its files, its tensor
//! table, and lazy handles on its tensors.

use super::gguf::GgufFile;
use super::safetensors::{SafetensorsFile, ShardIndex};
use super::{MapPolicy, Mapping, TensorInfo};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::lazy::{LazyTensor, LoadCounters, LoadStats, Residency};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file format of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// A GGUF file (llama.cpp's format).
    Gguf,
    /// One `.safetensors` file.
    Safetensors,
    /// Several `.safetensors` shards listed by an index.
    ShardedSafetensors,
}

/// How to open a checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Memory-map (the default) or force positioned reads.
    pub map_policy: MapPolicy,
}

impl OpenOptions {
    /// Default options: memory-map, fall back to reads.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Never memory-map; read tensors with positioned reads.
    pub fn force_read(mut self, yes: bool) -> OpenOptions {
        self.map_policy = if yes {
            MapPolicy::ForceRead
        } else {
            MapPolicy::Auto
        };
        self
    }

    /// Opens `path` with these options (see [`Checkpoint::open`]).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Checkpoint> {
        Checkpoint::open_with(path, *self)
    }
}

/// An opened checkpoint: metadata only, until tensors are asked for.
///
/// ```no_run
/// use lazyforge::{Checkpoint, Device};
/// let ckpt = Checkpoint::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
/// let embd = ckpt.lazy("token_embd.weight", Device::Cpu)?; // nothing read yet
/// let tensor = embd.get()?; // read (here: mapped) on first use
/// assert_eq!(ckpt.stats().loads, 1);
/// # Ok::<(), lazyforge::Error>(())
/// ```
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    files: Vec<Arc<Mapping>>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    unsupported: BTreeMap<String, String>,
    gguf: Option<GgufFile>,
    safetensors_metadata: BTreeMap<String, String>,
    totals: Arc<LoadCounters>,
    residencies: Mutex<Vec<Arc<Residency>>>,
}

const PICKLE_EXTENSIONS: [&str; 6] = ["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

fn refuse_pickle(path: &Path) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: "this is a PyTorch pickle checkpoint; lazyforge refuses pickles because \
                 unpickling can execute arbitrary code. Convert it to safetensors, e.g. \
                 `model.save_pretrained(out_dir, safe_serialization=True)` in transformers, \
                 or use a GGUF file"
            .into(),
    }
}

impl Checkpoint {
    /// Opens a checkpoint with default options: a `.gguf` file, a `.safetensors` file, a
    /// `model.safetensors.index.json`, or a directory holding one of those. Reads only
    /// metadata. Pickle checkpoints (`.bin`, `.pt`, `.pth`) are refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        Checkpoint::open_with(path, OpenOptions::default())
    }

    /// Opens a checkpoint with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Checkpoint> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Checkpoint::open_dir(path, options);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(refuse_pickle(path));
        }
        if name.ends_with(".index.json") {
            return Checkpoint::open_sharded(path, options);
        }
        let mapping = Arc::new(Mapping::open(path, options.map_policy)?);
        Checkpoint::from_mapping(path, mapping)
    }

    /// A checkpoint over one opened file (GGUF or safetensors, told apart by its first
    /// bytes).
    pub(crate) fn from_mapping(path: &Path, mapping: Arc<Mapping>) -> Result<Checkpoint> {
        match sniff(&mapping)? {
            Sniffed::Gguf => Checkpoint::from_gguf(GgufFile::from_mapping(mapping)?),
            Sniffed::Safetensors => {
                let file = SafetensorsFile::from_mapping(Arc::clone(&mapping), 0)?;
                let (tensors, unsupported, metadata) = file.into_parts();
                Checkpoint::assemble(
                    path,
                    Format::Safetensors,
                    vec![mapping],
                    tensors,
                    unsupported,
                    None,
                    metadata,
                )
            }
            Sniffed::Pickle => Err(refuse_pickle(path)),
            Sniffed::Unknown => Err(Error::Unsupported {
                path: path.to_path_buf(),
                reason: "not a GGUF or safetensors file (unrecognized first bytes)".into(),
            }),
        }
    }

    /// Wraps an opened GGUF file.
    pub fn from_gguf(gguf: GgufFile) -> Result<Checkpoint> {
        let mapping = Arc::clone(gguf.mapping());
        let tensors = gguf.tensors().to_vec();
        let path = mapping.path().to_path_buf();
        Checkpoint::assemble(
            &path,
            Format::Gguf,
            vec![mapping],
            tensors,
            Vec::new(),
            Some(gguf),
            BTreeMap::new(),
        )
    }

    fn open_dir(dir: &Path, options: OpenOptions) -> Result<Checkpoint> {
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Checkpoint::open_sharded(&index, options);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Checkpoint::open_with(&single, options);
        }
        let mut ggufs = Vec::new();
        let mut pickles = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let p = entry.map_err(|e| Error::io(dir, e))?.path();
            match p.extension().and_then(|e| e.to_str()) {
                Some("gguf") => ggufs.push(p),
                Some(e) if PICKLE_EXTENSIONS.contains(&e) => pickles.push(p),
                _ => {}
            }
        }
        ggufs.sort();
        match (ggufs.as_slice(), pickles.first()) {
            ([one], _) => Checkpoint::open_with(one, options),
            ([], Some(p)) => Err(refuse_pickle(p)),
            ([], None) => Err(Error::Unsupported {
                path: dir.to_path_buf(),
                reason: "directory holds no model.safetensors, model.safetensors.index.json \
                         or .gguf file"
                    .into(),
            }),
            (many, _) => Err(Error::Unsupported {
                path: dir.to_path_buf(),
                reason: format!(
                    "directory holds {} .gguf files; name the one to open",
                    many.len()
                ),
            }),
        }
    }

    fn open_sharded(index_path: &Path, options: OpenOptions) -> Result<Checkpoint> {
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let index = ShardIndex::read(index_path)?;
        let mut files = Vec::new();
        let mut tensors = Vec::new();
        let mut unsupported = Vec::new();
        let mut metadata = BTreeMap::new();
        let mut shard_of_file = HashMap::new();
        for (i, (name, shard_path)) in index.shard_paths(index_path, dir)?.into_iter().enumerate() {
            let mapping = Arc::new(Mapping::open(&shard_path, options.map_policy)?);
            let shard = SafetensorsFile::from_mapping(Arc::clone(&mapping), i)?;
            let (t, u, m) = shard.into_parts();
            tensors.extend(t);
            unsupported.extend(u);
            metadata.extend(m);
            files.push(mapping);
            shard_of_file.insert(name, i);
        }
        // Every tensor the index names must be in the shard it names.
        let where_is: HashMap<&str, usize> = tensors
            .iter()
            .map(|t| (t.name.as_str(), t.file))
            .chain(unsupported.iter().map(|(n, _)| (n.as_str(), usize::MAX)))
            .collect();
        for (tensor, shard) in &index.weight_map {
            let expected = shard_of_file[shard];
            match where_is.get(tensor.as_str()) {
                Some(&f) if f == expected || f == usize::MAX => {}
                _ => {
                    return Err(Error::Corrupt {
                        path: index_path.to_path_buf(),
                        format: "safetensors index",
                        offset: 0,
                        reason: format!(
                            "tensor '{tensor}' is listed in shard '{shard}' but is not there"
                        ),
                    })
                }
            }
        }
        Checkpoint::assemble(
            index_path,
            Format::ShardedSafetensors,
            files,
            tensors,
            unsupported,
            None,
            metadata,
        )
    }

    fn assemble(
        path: &Path,
        format: Format,
        files: Vec<Arc<Mapping>>,
        tensors: Vec<TensorInfo>,
        unsupported: Vec<(String, String)>,
        gguf: Option<GgufFile>,
        safetensors_metadata: BTreeMap<String, String>,
    ) -> Result<Checkpoint> {
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(Error::Corrupt {
                    path: files[t.file].path().to_path_buf(),
                    format: "checkpoint",
                    offset: t.offset,
                    reason: format!("tensor '{}' appears more than once", t.name),
                });
            }
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            format,
            files,
            tensors,
            by_name,
            unsupported: unsupported.into_iter().collect(),
            gguf,
            safetensors_metadata,
            totals: Arc::new(LoadCounters::default()),
            residencies: Mutex::new(Vec::new()),
        })
    }

    /// The path that was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The files holding tensor data (one, or one per shard).
    pub fn files(&self) -> &[Arc<Mapping>] {
        &self.files
    }

    /// Every loadable tensor, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Tensors present in the file with a dtype lazyforge does not load: name → dtype.
    pub fn unsupported_tensors(&self) -> &BTreeMap<String, String> {
        &self.unsupported
    }

    /// The GGUF header, for GGUF checkpoints.
    pub fn gguf(&self) -> Option<&GgufFile> {
        self.gguf.as_ref()
    }

    /// safetensors `__metadata__` strings (merged across shards).
    pub fn safetensors_metadata(&self) -> &BTreeMap<String, String> {
        &self.safetensors_metadata
    }

    /// Whether a tensor named `name` exists and can be loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// What the file says about tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        if let Some(&i) = self.by_name.get(name) {
            return Ok(&self.tensors[i]);
        }
        match self.unsupported.get(name) {
            Some(dtype) => Err(Error::DType {
                context: format!("tensor '{name}' in {}", self.path.display()),
                dtype: dtype.clone(),
            }),
            None => Err(Error::MissingTensor {
                tensor: name.to_string(),
                path: self.path.clone(),
            }),
        }
    }

    /// Lets tensors also be found under other names: `alias(file_name)` returns the name a
    /// model asks for (e.g. GGUF-style `blk.0.attn_q.weight` for an HF checkpoint's
    /// `model.layers.0.self_attn.q_proj.weight`), or `None` to keep only the file's name.
    /// Error messages keep naming the tensor as the file does.
    pub fn with_aliases(mut self, alias: impl Fn(&str) -> Option<String>) -> Result<Checkpoint> {
        for (i, t) in self.tensors.iter().enumerate() {
            if let Some(name) = alias(&t.name) {
                if let Some(&j) = self.by_name.get(&name) {
                    if j != i {
                        return Err(Error::Invalid(format!(
                            "{}: tensors '{}' and '{}' both answer to '{name}'",
                            self.path.display(),
                            self.tensors[j].name,
                            t.name
                        )));
                    }
                }
                self.by_name.insert(name, i);
            }
        }
        Ok(self)
    }

    /// A lazy handle on tensor `name`, kept in its stored dtype, placed on `device` when
    /// first used.
    pub fn lazy(&self, name: &str, device: Device) -> Result<LazyTensor> {
        let dtype = self.tensor(name)?.dtype;
        self.lazy_as(name, device, dtype)
    }

    /// A lazy handle on tensor `name` converted to `dtype` (its stored dtype, or `F32`).
    pub fn lazy_as(&self, name: &str, device: Device, dtype: DType) -> Result<LazyTensor> {
        let info = self.tensor(name)?.clone();
        let file = Arc::clone(&self.files[info.file]);
        let residency = self.residency(device);
        LazyTensor::new(info, file, &residency, dtype, Arc::clone(&self.totals))
    }

    /// The residency of `device`: where this checkpoint's tensors on that device are
    /// materialized, within its budget (unlimited until set). Made on first use.
    pub fn residency(&self, device: Device) -> Arc<Residency> {
        let mut all = self.residencies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = all.iter().find(|r| r.device() == device) {
            return Arc::clone(r);
        }
        let r = Residency::new(device);
        all.push(Arc::clone(&r));
        r
    }

    /// Places this checkpoint's tensors on `residency.device()` in `residency`, shared with
    /// other checkpoints (one budget for several models on one device). Handles made before
    /// keep their residency.
    pub fn set_residency(&self, residency: Arc<Residency>) {
        let mut all = self.residencies.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|r| r.device() != residency.device());
        all.push(residency);
    }

    /// Load counters summed over every lazy handle made from this checkpoint.
    pub fn stats(&self) -> LoadStats {
        self.totals.snapshot()
    }

    /// Total bytes of tensor data, per stored dtype.
    pub fn bytes_by_dtype(&self) -> BTreeMap<DType, (usize, u64)> {
        let mut out: BTreeMap<DType, (usize, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = out.entry(t.dtype).or_default();
            e.0 += 1;
            e.1 += t.len;
        }
        out
    }
}

enum Sniffed {
    Gguf,
    Safetensors,
    Pickle,
    Unknown,
}

/// Tells formats apart by their first bytes.
fn sniff(mapping: &Mapping) -> Result<Sniffed> {
    let mut head = [0u8; 9];
    let n = mapping.len().min(head.len() as u64) as usize;
    mapping.read_exact_at(0, &mut head[..n])?;
    let head = &head[..n];
    Ok(if head.starts_with(b"GGUF") {
        Sniffed::Gguf
    } else if n == 9 && head[8] == b'{' {
        // A little-endian header length, then the JSON header.
        Sniffed::Safetensors
    } else if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
        // PyTorch's zip container, or a raw pickle (protocol 2+ starts with 0x80).
        Sniffed::Pickle
    } else {
        Sniffed::Unknown
    })
}
