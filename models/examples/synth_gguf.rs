//! Writes a random-weight Llama GGUF (no tokenizer; run it with `--prompt-ids`):
//!
//! ```sh
//! cargo run --release --example synth_gguf -- smollm2 Q4_1 /tmp/smollm2-random.gguf
//! ```
//!
//! Shapes: `smollm2` (SmolLM2-135M), `1b` (Llama-3.2-1B class), `7b` (Llama-2-7B class),
//! `tiny`. Dtypes: any the GPU kernels read (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q4_K, Q5_K, Q6_K). The GPU check (tools/gpu_check.sh) writes its models with this.

use lazyforge::DType;
use lazyforge_models::synth::SynthLlama;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, dtype, path] = &args[..] else {
        eprintln!("usage: synth_gguf smollm2|1b|7b|tiny DTYPE OUT.gguf");
        return ExitCode::FAILURE;
    };
    let Some(dtype) = DType::from_name(dtype) else {
        eprintln!("synth_gguf: unknown dtype '{dtype}'");
        return ExitCode::FAILURE;
    };
    let spec = match shape.as_str() {
        "smollm2" => SynthLlama::smollm2_135m(dtype),
        "1b" => SynthLlama::llama_1b(dtype),
        "7b" => SynthLlama::llama_7b(dtype),
        "tiny" => SynthLlama::tiny(dtype),
        other => {
            eprintln!("synth_gguf: unknown shape '{other}' (smollm2, 1b, 7b, tiny)");
            return ExitCode::FAILURE;
        }
    };
    match spec.write(path) {
        Ok(()) => {
            println!("{path}: {spec:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth_gguf: {e}");
            ExitCode::FAILURE
        }
    }
}
