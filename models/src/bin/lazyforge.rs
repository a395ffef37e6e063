//! The `lazyforge` command-line tool.

use clap::{Parser, Subcommand};
use lazyforge::source::checkpoint::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// lazyforge: lazily loaded neural-network checkpoints.
#[derive(Parser)]
#[command(name = "lazyforge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt (default model: SmolLM2-135M-Instruct).
    Run(lazyforge_models::run::RunArgs),
    /// Chat interactively with the model's chat template.
    Chat(lazyforge_models::run::RunArgs),
    /// Print a checkpoint's metadata and tensor table (reads no tensor data).
    Inspect {
        /// A .gguf file, a .safetensors file, a model.safetensors.index.json, or a directory.
        path: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Print metadata arrays and long strings in full.
        #[arg(long)]
        full: bool,
        /// Read with positioned reads instead of memory-mapping.
        #[arg(long)]
        no_mmap: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lazyforge: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> lazyforge_models::Result<()> {
    match cli.command {
        Command::Run(args) => lazyforge_models::run::run(&args),
        Command::Chat(args) => lazyforge_models::run::chat(&args),
        Command::Inspect {
            path,
            json,
            full,
            no_mmap,
        } => {
            let ckpt = OpenOptions::new().force_read(no_mmap).open(&path)?;
            if json {
                let doc = lazyforge_models::inspect::to_json(&ckpt, full)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc)
                        .expect("a serde_json::Value always serializes")
                );
            } else {
                print!("{}", lazyforge_models::inspect::to_text(&ckpt, full)?);
            }
            Ok(())
        }
    }
}
