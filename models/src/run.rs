//! Running a model from the command line: the options and the loop behind
//! `cargo run --release --example llama` and `lazyforge run` / `lazyforge chat`.

use crate::cache::Cache;
use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{Error, Result};
use crate::generate::generate_ids;
use crate::generate::{generate, GenerateOptions, Generation};
use crate::registry::{CausalLm, Registry};
use crate::sampling::SamplingConfig;
use crate::tokenizer::TextTokenizer;
use lazyforge::{Device, LazyModule};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The question asked when no prompt is given.
const DEFAULT_QUESTION: &str = "What is the capital of France? Answer in one sentence.";

/// When weights are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadMode {
    /// Each weight on first use (open reads metadata only).
    Lazy,
    /// On first use, and the next modules are loaded ahead on an I/O thread while the
    /// current one computes.
    Prefetch,
    /// Every weight right after open, in parallel.
    Eager,
}

/// Options of a run (shared by the `llama` example and the `lazyforge` CLI).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A GGUF file, an HF model directory (config.json, tokenizer.json, safetensors), or a
    /// known model's name, fetched into the cache on first use: smollm2-135m (the default,
    /// SmolLM2-135M-Instruct Q4_1) or gemma3-270m (Gemma 3 270M Q4_K_M). The architecture
    /// comes from the file (`general.architecture` or config.json's `model_type`).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The prompt, used as given (no chat template).
    #[arg(long, value_name = "TEXT", conflicts_with = "prompt_ids")]
    pub prompt: Option<String>,
    /// The prompt as raw token ids, e.g. 1,2,3 (parity checks, models without a tokenizer).
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,
    /// Keep only the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Keep the most likely tokens whose probabilities sum to P.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Repetition penalty (1 = off), as in HF transformers.
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    pub repetition_penalty: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this text appears (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Device: cpu, cuda:N or hip:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// When to read weights.
    #[arg(long, value_enum, default_value_t = LoadMode::Prefetch)]
    pub load: LoadMode,
    /// Memory budget for the weights on the device: bytes (1000000), a size (512MiB, 2GB)
    /// or a share of the model's bytes (60%). Least recently used modules are evicted to
    /// stay within it. Default: unlimited.
    #[arg(long, value_name = "SIZE")]
    pub budget: Option<lazyforge::lazy::Budget>,
    /// Drop the model's pages from the OS page cache before opening it (a cold start).
    #[arg(long)]
    pub cold: bool,
    /// No progress bar and no statistics line.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object (prompt ids, generated ids, text, statistics) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the prompt's last-position logits to FILE (.npy, float32, shape [vocab]).
    #[arg(long, value_name = "FILE")]
    pub dump_logits: Option<PathBuf>,
}

/// A model opened for generation, with its tokenizer and timings of opening.
struct Session {
    model: Box<dyn CausalLm>,
    path: PathBuf,
    tokenizer: Option<TextTokenizer>,
    open_ms: f64,
    materialize_ms: Option<f64>,
}

fn open(registry: &Registry, args: &RunArgs) -> Result<Session> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::Config(format!("--threads {n}: {e}")))?;
    }
    let device: Device = args.device.parse()?;
    let path = crate::fetch::resolve_model(args.model.as_deref())?;
    if args.cold {
        drop_page_cache(&path)?;
    }
    let start = Instant::now();
    let model = registry.open(&path, device)?;
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let module = model.module();
    let residency = module.residency();
    if let Some(budget) = args.budget {
        residency.set_budget(Some(budget.bytes_for(module.total_bytes())));
    }
    let tokenizer = open_tokenizer(&path, args.prompt_ids.is_some())?;
    let materialize_ms = match args.load {
        LoadMode::Lazy => None,
        LoadMode::Prefetch => {
            residency.set_prefetch(PREFETCH_MODULES);
            None
        }
        LoadMode::Eager => {
            let t = Instant::now();
            let _progress = LoadProgress::start(module, show_progress(args));
            match residency.budget() {
                Some(b) => module.materialize_within(b).map_err(|e| {
                    Error::Config(format!(
                        "--load eager: {e}; with this budget use --load lazy or prefetch"
                    ))
                })?,
                None => module.materialize()?,
            }
            Some(t.elapsed().as_secs_f64() * 1e3)
        }
    };
    Ok(Session {
        model,
        path,
        tokenizer,
        open_ms,
        materialize_ms,
    })
}

/// The tokenizer stored with the model; optional when the prompt is given as ids.
/// Modules queued ahead by `--load prefetch`: the next two blocks (a block, its attention and
/// its feed-forward are three modules).
const PREFETCH_MODULES: usize = 6;

/// Whether a progress bar may be drawn: stderr is a terminal, and neither --json nor --quiet.
fn show_progress(args: &RunArgs) -> bool {
    use std::io::IsTerminal;
    !args.json && !args.quiet && std::io::stderr().is_terminal()
}

/// Drops the pages of a model file (or of every file in a model directory) from the page
/// cache.
fn drop_page_cache(path: &Path) -> Result<()> {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for f in files {
        lazyforge::source::Mapping::open(&f, lazyforge::source::MapPolicy::ForceRead)?
            .drop_page_cache()?;
    }
    Ok(())
}

/// A progress bar of bytes materialized, drawn on stderr only when loading takes longer than
/// about half a second (and [`show_progress`] allows it); cleared when dropped.
struct LoadProgress {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadProgress {
    fn start(model: &dyn LazyModule, enabled: bool) -> LoadProgress {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let total = model.total_bytes();
        let residency = std::sync::Arc::clone(model.residency());
        let thread = (enabled && total > 0).then(|| {
            let done = std::sync::Arc::clone(&done);
            let start_bytes = residency.stats().loads.bytes_read;
            std::thread::spawn(move || {
                use std::sync::atomic::Ordering;
                let started = Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(500) {
                    if done.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "materializing {bar:30} {binary_bytes}/{binary_total_bytes} ({elapsed})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                while !done.load(Ordering::Acquire) {
                    let read = residency.stats().loads.bytes_read - start_bytes;
                    bar.set_position(read.min(total));
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                bar.finish_and_clear();
            })
        });
        LoadProgress { done, thread }
    }
}

impl Drop for LoadProgress {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_tokenizer(path: &Path, optional: bool) -> Result<Option<TextTokenizer>> {
    let result = if path.is_dir() {
        TextTokenizer::from_hf_dir(path)
    } else {
        TextTokenizer::from_gguf_file(path)
    };
    match result {
        Ok(t) => Ok(Some(t)),
        Err(_) if optional => Ok(None),
        Err(e) => Err(e),
    }
}

fn options(args: &RunArgs) -> Result<GenerateOptions> {
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
    };
    sampling.validate()?;
    Ok(GenerateOptions {
        max_tokens: args.max_tokens,
        stop_strings: args.stop.clone(),
        sampling,
    })
}

/// Runs one prompt (`--prompt`, `--prompt-ids`, or a default chat question) and prints the
/// continuation as it is produced, or one JSON object with `--json`. Architectures come
/// from [`Registry::builtin`].
pub fn run(args: &RunArgs) -> Result<()> {
    run_with(&Registry::builtin(), args)
}

/// [`run`] with the architectures of `registry` (e.g. the built-in ones plus a downstream
/// crate's own).
pub fn run_with(registry: &Registry, args: &RunArgs) -> Result<()> {
    let session = open(registry, args)?;
    let tokenizer = session.tokenizer.as_ref();
    let prompt_ids = match (&args.prompt_ids, &args.prompt, tokenizer) {
        (Some(ids), _, _) => ids.clone(),
        (None, Some(text), Some(t)) => t.encode(text, true)?,
        (None, None, Some(t)) => {
            let rendered = render_chat(&session, t, &[ChatMessage::user(DEFAULT_QUESTION)])?;
            if !args.json {
                eprintln!("(no --prompt given: asking \"{DEFAULT_QUESTION}\")");
            }
            t.encode(&rendered, false)?
        }
        (None, _, None) => {
            return Err(Error::Config(
                "this model has no tokenizer: give the prompt with --prompt-ids".into(),
            ))
        }
    };
    let mut cache = session.model.new_cache()?;
    let generation = generate_with(&session, args, &prompt_ids, &mut cache)?;
    if args.json {
        print_json(&session, args, &generation)?;
    } else {
        println!();
        if !args.quiet {
            eprintln!("{}", stats_line(&session, &generation));
        }
    }
    Ok(())
}

/// An interactive chat on stdin/stdout with the model's chat template; the conversation is
/// kept in the KV cache between turns. An empty line or end of input ends it.
pub fn chat(args: &RunArgs) -> Result<()> {
    chat_with(&Registry::builtin(), args)
}

/// [`chat`] with the architectures of `registry`.
pub fn chat_with(registry: &Registry, args: &RunArgs) -> Result<()> {
    let session = open(registry, args)?;
    let tokenizer = session
        .tokenizer
        .as_ref()
        .ok_or_else(|| Error::Config("chat needs the model's tokenizer".into()))?;
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut cache = session.model.new_cache()?;
    let mut seen_ids: Vec<u32> = Vec::new();
    let stdin = std::io::stdin();
    eprintln!(
        "chatting with {} ({}; empty line to quit)",
        session.path.display(),
        session.model.architecture()
    );
    loop {
        eprint!("> ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::Config(format!("stdin: {e}")))?
            == 0
        {
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        history.push(ChatMessage::user(line));
        let rendered = render_chat(&session, tokenizer, &history)?;
        let all_ids = tokenizer.encode(&rendered, false)?;
        // The cache already holds the earlier turns when they tokenize the same way;
        // otherwise start the sequence over.
        let new_ids = if all_ids.starts_with(&seen_ids) && seen_ids.len() < all_ids.len() {
            all_ids[seen_ids.len()..].to_vec()
        } else {
            cache = session.model.new_cache()?;
            all_ids.clone()
        };
        let generation = generate_with(&session, args, &new_ids, &mut cache)?;
        println!();
        if !args.quiet {
            eprintln!("{}", stats_line(&session, &generation));
        }
        // The cache holds every generated token but the last, which was sampled, not run.
        let mut ids = all_ids;
        let n = generation.generated_ids.len();
        ids.extend_from_slice(&generation.generated_ids[..n.saturating_sub(1)]);
        seen_ids = ids;
        history.push(ChatMessage::assistant(generation.text.trim()));
        if cache.position() != seen_ids.len() {
            cache = session.model.new_cache()?;
            seen_ids.clear();
        }
    }
    Ok(())
}

/// Renders `messages` with the file's chat template; with the architecture's standard one
/// when the file has none (saying so once); else as plain lines.
fn render_chat(
    session: &Session,
    tokenizer: &TextTokenizer,
    messages: &[ChatMessage],
) -> Result<String> {
    if let Some(template) = ChatTemplate::from_tokenizer(tokenizer) {
        return template?.render(messages, true);
    }
    match session.model.fallback_chat_template() {
        Some(source) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "(the file carries no chat template: using {}'s standard turn format)",
                    session.model.architecture()
                )
            });
            ChatTemplate::new(source, tokenizer.bos_text(), tokenizer.eos_text())?
                .render(messages, true)
        }
        None => Ok(messages
            .iter()
            .map(|m| m.content.clone())
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

fn generate_with(
    session: &Session,
    args: &RunArgs,
    prompt_ids: &[u32],
    cache: &mut Cache,
) -> Result<Generation> {
    let model = &session.model;
    let mut first = true;
    let mut forward = |ids: &[u32]| -> Result<Vec<f32>> {
        let logits = if first {
            first = false;
            let progress = LoadProgress::start(model.module(), show_progress(args));
            let logits = model.prefill(ids, cache)?;
            drop(progress);
            if let Some(path) = &args.dump_logits {
                let values = logits.as_f32()?;
                crate::npy::write_f32(path, &[values.len()], values)?;
            }
            logits
        } else {
            model.decode(ids, cache)?
        };
        Ok(logits.into_f32_vec()?)
    };
    let options = options(args)?;
    let quiet = args.json || args.quiet;
    match session.tokenizer.as_ref() {
        Some(t) => generate(t, prompt_ids, &options, &mut forward, |text| {
            if !quiet {
                print!("{text}");
                std::io::stdout().flush().ok();
            }
        }),
        None => generate_ids(prompt_ids, &options, &mut forward),
    }
}

fn print_json(session: &Session, args: &RunArgs, g: &Generation) -> Result<()> {
    let r = session.model.module().residency().stats();
    let doc = serde_json::json!({
        "prompt_ids": g.prompt_ids,
        "generated_ids": g.generated_ids,
        "text": session.tokenizer.as_ref().map(|_| &g.text),
        "architecture": session.model.architecture(),
        "stop": format!("{:?}", g.stop),
        "stats": {
            "open_ms": session.open_ms,
            "materialize_ms": session.materialize_ms,
            "first_token_ms": g.stats.first_token_ms,
            "prefill_tokens_per_s": g.stats.prefill_tokens_per_s,
            "decode_tokens_per_s": g.stats.decode_tokens_per_s,
            "prompt_tokens": g.stats.prompt_tokens,
            "generated_tokens": g.stats.generated_tokens,
            "total_ms": g.stats.total_ms,
            "bytes_materialized": r.loads.bytes_read,
            "peak_rss_bytes": g.stats.peak_rss_bytes,
            "load": format!("{:?}", args.load).to_lowercase(),
            "model_bytes": session.model.module().total_bytes(),
            "budget_bytes": r.budget,
            "resident_bytes": r.resident_bytes,
            "peak_resident_bytes": r.peak_resident_bytes,
            "loads": r.loads.loads,
            "reloads": r.loads.reloads,
            "evictions": r.loads.evictions,
            "over_budget": r.over_budget,
            "hits": r.loads.hits,
            "load_ms": r.loads.load_nanos as f64 / 1e6,
            "page_fault_ms": r.loads.fault_nanos as f64 / 1e6,
        },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serializes")
    );
    Ok(())
}

fn stats_line(session: &Session, g: &Generation) -> String {
    let r = session.model.module().residency().stats();
    let loaded = r.loads.bytes_read;
    let budget = match r.budget {
        Some(b) => format!(
            ", budget {:.1} MB: peak resident {:.1} MB, {} evictions, {} reloads",
            b as f64 / 1e6,
            r.peak_resident_bytes as f64 / 1e6,
            r.loads.evictions,
            r.loads.reloads
        ),
        None => String::new(),
    };
    format!(
        "[open {:.1} ms, first token {:.0} ms, prefill {:.1} tok/s, decode {:.1} tok/s, {} tokens, {:.1} MB materialized{budget}, peak RSS {}]",
        session.open_ms,
        g.stats.first_token_ms,
        g.stats.prefill_tokens_per_s,
        g.stats.decode_tokens_per_s,
        g.stats.generated_tokens,
        loaded as f64 / 1e6,
        g.stats.peak_rss_bytes.map_or("n/a".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6)),
    )
}
