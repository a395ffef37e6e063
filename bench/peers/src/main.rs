//! Open-time comparison on the same GGUF files, in one run: lazyforge's
//! `Checkpoint::open` (metadata, tensor table, validation) against candle's
//! `gguf_file::Content::read` (metadata and tensor table).
//!
//! `cargo run --release --manifest-path bench/peers/Cargo.toml -- FILE.gguf...`
//! Prints the median of 200 opens per file and the ratio lazyforge / candle.
//! `-- --make DIR` first writes DIR/small.gguf (~1 MB) and DIR/large.gguf (~33 GB, sparse),
//! each with the same 700-entry tensor table, as `runtime/benches/open.rs` does.
//! `-- --matvec FILE NAME...` instead times matrix-vector products on the named weights;
//! `-- --decode FILE [N]` times greedy decoding of N tokens with each framework's Llama.
//! `-- --bench FILE --prompt-ids IDS --max-tokens N --threads T` runs candle alone, as
//! `bench/compare.sh` uses it, and prints one JSON line (see [`candle_bench`]).

use lazyforge::source::gguf::{GgufWriter, MetaType, WriteValue};
use lazyforge::DType;
use std::path::Path;
use std::time::{Duration, Instant};

fn median<F: FnMut()>(mut f: F) -> Duration {
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn write_synthetic(path: &Path, rows: usize, cols: usize, dtype: DType) {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", WriteValue::String("llama".into()))
        .expect("valid metadata");
    let tokens = (0..32000)
        .map(|i| WriteValue::String(format!("tok{i}")))
        .collect();
    w.add_array("tokenizer.ggml.tokens", MetaType::String, tokens)
        .expect("valid metadata");
    for i in 0..700 {
        w.add_tensor_placeholder(
            format!("blk.{}.t{}.weight", i / 7, i % 7),
            dtype,
            &[rows, cols],
        )
        .expect("valid tensor");
    }
    w.write_to_path(path).expect("writable directory");
}

/// Matrix-vector products on real weights of `file`: lazyforge's `ops::cpu::matvec` (f32
/// activations, exact) against candle's `QMatMul::forward` (which quantizes the activations to
/// 8 bits for its quantized kernels), both on the same loaded tensor bytes.
fn matvec_bench(file: &Path, names: &[String]) {
    use candle_core::Module;
    let ckpt = lazyforge::Checkpoint::open(file).expect("lazyforge opens it");
    let mut reader = std::fs::File::open(file).expect("opens");
    let content =
        candle_core::quantized::gguf_file::Content::read(&mut reader).expect("candle reads it");
    println!("| weight | dtype | shape | bytes | lazyforge matvec | candle QMatMul | lazyforge / candle |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for name in names {
        let lazy = ckpt
            .lazy(name, lazyforge::Device::Cpu)
            .expect("tensor exists");
        let w = lazy.get().expect("loads");
        let cols = w.shape()[1];
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let qt = content
            .tensor(&mut reader, name, &candle_core::Device::Cpu)
            .expect("candle loads it");
        let qmm = candle_core::quantized::QMatMul::from_qtensor(qt).expect("quantized matmul");
        let xt = candle_core::Tensor::from_vec(x.clone(), (1, cols), &candle_core::Device::Cpu)
            .expect("tensor");
        let ours = median(|| {
            std::hint::black_box(lazyforge::ops::cpu::matvec(&w, &x).expect("shapes match"));
        });
        let theirs = median(|| {
            std::hint::black_box(qmm.forward(&xt).expect("shapes match"));
        });
        println!(
            "| {name} | {} | {:?} | {} | {:.1} µs | {:.1} µs | {:.2} |",
            w.dtype(),
            w.shape(),
            w.bytes().len(),
            ours.as_secs_f64() * 1e6,
            theirs.as_secs_f64() * 1e6,
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}

/// Greedy decode speed on the same GGUF file: lazyforge's `Llama` (f32 activations, exact)
/// against candle-transformers' `quantized_llama` (8-bit activations in its quantized
/// kernels). Both prefill the same prompt ids, then decode `n` tokens one at a time.
fn decode_bench(file: &Path, n: usize) {
    let prompt: [u32; 5] = [504, 3575, 282, 4649, 314]; // "The capital of France is"
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .expect("logits are not empty")
    };

    let t = Instant::now();
    let model = lazyforge_models::Llama::open(file, lazyforge::Device::Cpu).expect("opens");
    let open = t.elapsed();
    let mut cache = model.new_cache().expect("cache");
    let t = Instant::now();
    let logits = model.forward_prefill(&prompt, &mut cache).expect("prefill");
    let first = t.elapsed();
    let mut next = argmax(logits.as_f32().expect("f32"));
    let mut ours_ids = vec![next];
    let t = Instant::now();
    for _ in 1..n {
        let logits = model.forward_decode(&[next], &mut cache).expect("decode");
        next = argmax(logits.as_f32().expect("f32"));
        ours_ids.push(next);
    }
    let ours = (n - 1) as f64 / t.elapsed().as_secs_f64();

    use candle_transformers::models::quantized_llama::ModelWeights;
    let dev = candle_core::Device::Cpu;
    let t = Instant::now();
    let mut reader = std::fs::File::open(file).expect("opens");
    let content = candle_core::quantized::gguf_file::Content::read(&mut reader).expect("reads");
    let mut cm = ModelWeights::from_gguf(content, &mut reader, &dev).expect("candle loads it");
    let c_open = t.elapsed();
    let input = candle_core::Tensor::new(&prompt[..], &dev)
        .expect("ids")
        .unsqueeze(0)
        .expect("batch");
    let t = Instant::now();
    let logits = cm.forward(&input, 0).expect("prefill");
    let c_first = t.elapsed();
    let to_vec = |l: candle_core::Tensor| -> Vec<f32> {
        l.squeeze(0)
            .expect("batch")
            .to_dtype(candle_core::DType::F32)
            .expect("f32")
            .to_vec1()
            .expect("vector")
    };
    let mut next = argmax(&to_vec(logits));
    let mut theirs_ids = vec![next];
    let t = Instant::now();
    for i in 1..n {
        let input = candle_core::Tensor::new(&[next], &dev)
            .expect("id")
            .unsqueeze(0)
            .expect("batch");
        let logits = cm.forward(&input, prompt.len() + i - 1).expect("decode");
        next = argmax(&to_vec(logits));
        theirs_ids.push(next);
    }
    let theirs = (n - 1) as f64 / t.elapsed().as_secs_f64();
    let same = ours_ids
        .iter()
        .zip(&theirs_ids)
        .take_while(|(a, b)| a == b)
        .count();
    println!("| | lazyforge | candle | lazyforge / candle |");
    println!("|---|---:|---:|---:|");
    println!(
        "| open (ms) | {:.1} | {:.1} | {:.3} |",
        open.as_secs_f64() * 1e3,
        c_open.as_secs_f64() * 1e3,
        open.as_secs_f64() / c_open.as_secs_f64()
    );
    println!(
        "| first token, cold (ms) | {:.1} | {:.1} | {:.2} |",
        first.as_secs_f64() * 1e3,
        c_first.as_secs_f64() * 1e3,
        first.as_secs_f64() / c_first.as_secs_f64()
    );
    println!(
        "| decode (tok/s, {} tokens) | {ours:.1} | {theirs:.1} | {:.2} (speed ratio) |",
        n - 1,
        ours / theirs
    );
    println!("greedy tokens identical for the first {same} of {n}");
}

/// The options of `--bench`.
struct BenchArgs {
    file: String,
    prompt: Vec<u32>,
    max_tokens: usize,
    threads: usize,
}

fn parse_bench_args(args: &[String]) -> Result<BenchArgs, String> {
    let mut file = None;
    let mut prompt = None;
    let mut max_tokens = 64;
    let mut threads = 2;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--bench" => file = Some(value()?),
            "--prompt-ids" => {
                let ids = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u32>()
                            .map_err(|e| format!("--prompt-ids {s:?}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                prompt = Some(ids);
            }
            "--max-tokens" => {
                max_tokens = value()?.parse().map_err(|e| format!("--max-tokens: {e}"))?
            }
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let prompt = prompt.ok_or("--prompt-ids ID,ID,... is required")?;
    if prompt.is_empty() || max_tokens == 0 || threads == 0 {
        return Err("--prompt-ids, --max-tokens and --threads must not be empty or zero".into());
    }
    Ok(BenchArgs {
        file: file.ok_or("--bench FILE is required")?,
        prompt,
        max_tokens,
        threads,
    })
}

/// One of candle-transformers' quantized models, chosen by the file's `general.architecture`.
enum CandleModel {
    Llama(candle_transformers::models::quantized_llama::ModelWeights),
    Gemma3(candle_transformers::models::quantized_gemma3::ModelWeights),
}

impl CandleModel {
    fn forward(
        &mut self,
        x: &candle_core::Tensor,
        pos: usize,
    ) -> candle_core::Result<candle_core::Tensor> {
        match self {
            CandleModel::Llama(m) => m.forward(x, pos),
            CandleModel::Gemma3(m) => m.forward(x, pos),
        }
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => "\\\"".chars().collect::<Vec<_>>(),
            '\\' => "\\\\".chars().collect(),
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// candle alone, for `bench/compare.sh`: opens FILE (`gguf_file::Content::read` and the
/// quantized model's `from_gguf`, which reads every weight into memory), prefills the prompt
/// ids in one forward pass, then decodes greedily one token at a time until `max_tokens`
/// tokens (the first included; an end-of-sequence token does not stop it). Prints one JSON
/// line: `open_ms`, `first_token_ms` (start of prefill to the first id), `prefill_tokens_per_s`
/// (prompt ids / prefill forward), `decode_tokens_per_s` (steps after the first / their
/// forward passes), `threads` (candle's own count), `generated_ids`. The timings are the
/// forward passes only, as lazyforge's `--json` stats. For an architecture candle has no
/// quantized model of, prints `{"error": ...}` and exits with status 3.
fn candle_bench(args: &BenchArgs) -> Result<(), String> {
    fn err(what: &'static str) -> impl Fn(candle_core::Error) -> String {
        move |e| format!("candle: {what}: {e}")
    }
    let dev = candle_core::Device::Cpu;
    let t = Instant::now();
    let mut reader = std::fs::File::open(&args.file).map_err(|e| format!("{}: {e}", args.file))?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut reader)
        .map_err(err("reading the GGUF header"))?;
    let arch = match content.metadata.get("general.architecture") {
        Some(candle_core::quantized::gguf_file::Value::String(s)) => s.clone(),
        _ => String::from("(none)"),
    };
    let mut model = match arch.as_str() {
        "llama" => CandleModel::Llama(
            candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                content,
                &mut reader,
                &dev,
            )
            .map_err(err("quantized_llama"))?,
        ),
        "gemma3" => CandleModel::Gemma3(
            candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
                content,
                &mut reader,
                &dev,
            )
            .map_err(err("quantized_gemma3"))?,
        ),
        other => {
            println!(
                "{{\"framework\": \"candle\", \"architecture\": \"{}\", \"error\": \"candle-transformers 0.11 has no quantized model wired here for architecture {}\"}}",
                json_escape(other),
                json_escape(other)
            );
            std::process::exit(3);
        }
    };
    let open = t.elapsed();
    let argmax = |l: candle_core::Tensor| -> Result<u32, String> {
        let v: Vec<f32> = l
            .flatten_all()
            .and_then(|l| l.to_dtype(candle_core::DType::F32))
            .and_then(|l| l.to_vec1())
            .map_err(err("logits"))?;
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .ok_or_else(|| "candle: empty logits".to_string())
    };
    let ids = |ids: &[u32]| {
        candle_core::Tensor::new(ids, &dev)
            .and_then(|t| t.unsqueeze(0))
            .map_err(err("input ids"))
    };

    let input = ids(&args.prompt)?;
    let t = Instant::now();
    let logits = model.forward(&input, 0).map_err(err("prefill"))?;
    let prefill = t.elapsed();
    let mut next = argmax(logits)?;
    let first = t.elapsed();
    let mut generated = vec![next];
    let mut decode = Duration::ZERO;
    for i in 1..args.max_tokens {
        let input = ids(&[next])?;
        let t = Instant::now();
        let logits = model
            .forward(&input, args.prompt.len() + i - 1)
            .map_err(err("decode"))?;
        decode += t.elapsed();
        next = argmax(logits)?;
        generated.push(next);
    }
    let per_s = |n: usize, d: Duration| {
        if d.is_zero() {
            0.0
        } else {
            n as f64 / d.as_secs_f64()
        }
    };
    println!(
        "{{\"framework\": \"candle\", \"architecture\": \"{}\", \"threads\": {}, \"open_ms\": {:.3}, \"first_token_ms\": {:.3}, \"prefill_tokens_per_s\": {:.3}, \"decode_tokens_per_s\": {:.3}, \"prompt_tokens\": {}, \"generated_ids\": {:?}}}",
        json_escape(&arch),
        candle_core::utils::get_num_threads(),
        open.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        per_s(args.prompt.len(), prefill),
        per_s(args.max_tokens - 1, decode),
        args.prompt.len(),
        generated
    );
    Ok(())
}

fn main() {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    if files.first().map(String::as_str) == Some("--bench") {
        let args = parse_bench_args(&files).unwrap_or_else(|e| {
            eprintln!("lazyforge-peer-bench --bench: {e}\nusage: lazyforge-peer-bench --bench FILE --prompt-ids ID,ID,... [--max-tokens N] [--threads T]");
            std::process::exit(2);
        });
        // candle sizes its own thread pools from these variables (CANDLE_NUM_THREADS first,
        // then RAYON_NUM_THREADS) when it first uses them; set both before any candle call,
        // while this process has one thread.
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", args.threads.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
            .expect("the global rayon pool is not built yet");
        if let Err(e) = candle_bench(&args) {
            eprintln!("lazyforge-peer-bench --bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if files.first().map(String::as_str) == Some("--decode") {
        let file = files.get(1).expect("--decode FILE [N]").clone();
        let n = files
            .get(2)
            .map_or(64, |s| s.parse().expect("N is a number"));
        decode_bench(Path::new(&file), n);
        return;
    }
    if files.first().map(String::as_str) == Some("--matvec") {
        let file = files.get(1).expect("--matvec FILE NAME...").clone();
        matvec_bench(Path::new(&file), &files[2..]);
        return;
    }
    if files.first().map(String::as_str) == Some("--make") {
        let dir = Path::new(files.get(1).expect("--make DIR"));
        write_synthetic(&dir.join("small.gguf"), 16, 32, DType::F16);
        write_synthetic(&dir.join("large.gguf"), 4096, 11008, DType::Q8_0);
        files.drain(..2);
    }
    if files.is_empty() {
        eprintln!("usage: lazyforge-peer-bench FILE.gguf...");
        std::process::exit(2);
    }
    println!("| file | bytes | tensors | lazyforge open | candle open (File) | candle open (BufReader) | lazyforge / candle (BufReader) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for f in &files {
        let path = Path::new(f);
        let bytes = std::fs::metadata(path).expect("file exists").len();
        let n = lazyforge::Checkpoint::open(path)
            .expect("lazyforge opens it")
            .tensors()
            .len();
        let ours = median(|| {
            std::hint::black_box(lazyforge::Checkpoint::open(path).expect("opens"));
        });
        let theirs = median(|| {
            let mut file = std::fs::File::open(path).expect("opens");
            std::hint::black_box(
                candle_core::quantized::gguf_file::Content::read(&mut file)
                    .expect("candle reads it"),
            );
        });
        // candle's examples pass a bare File; a BufReader is the fairer comparison.
        let buffered = median(|| {
            let mut file = std::io::BufReader::new(std::fs::File::open(path).expect("opens"));
            std::hint::black_box(
                candle_core::quantized::gguf_file::Content::read(&mut file)
                    .expect("candle reads it"),
            );
        });
        println!(
            "| {} | {bytes} | {n} | {:.1} µs | {:.1} µs | {:.1} µs | {:.3} |",
            path.file_name()
                .map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned()),
            ours.as_secs_f64() * 1e6,
            theirs.as_secs_f64() * 1e6,
            buffered.as_secs_f64() * 1e6,
            ours.as_secs_f64() / buffered.as_secs_f64()
        );
    }
}
