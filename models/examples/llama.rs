//! Chat with a model on lazyforge: Llama, Mistral, Gemma 3, Qwen2, Qwen3 or Phi-3 (the
//! architecture comes from the file).
//!
//! `cargo run --release --example llama` asks SmolLM2-135M-Instruct (fetched into the cache
//! on first use) a short question; `-- --prompt "The capital of France is" --max-tokens 16`
//! continues a prompt; `-- --model gemma3-270m` runs Gemma 3 270M (fetched too); `-- --chat`
//! chats; `-- --help` lists every option.

use clap::Parser;
use lazyforge_models::run::{chat, run, RunArgs};
use std::process::ExitCode;

/// Run or chat with a model (GGUF file, HF directory, or a known model's name).
#[derive(Parser)]
#[command(name = "llama", about)]
struct Cli {
    /// Chat interactively (with the model's chat template) instead of one prompt.
    #[arg(long)]
    chat: bool,
    #[command(flatten)]
    run: RunArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if cli.chat {
        chat(&cli.run)
    } else {
        run(&cli.run)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama: error: {e}");
            ExitCode::FAILURE
        }
    }
}
