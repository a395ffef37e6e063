//! The `lazyforge` command line (`run`, `chat`, `inspect`) as a library function, so a
//! downstream crate's own binary runs the same tool with its architectures registered:
//!
//! ```no_run
//! let mut registry = lazyforge_models::Registry::builtin();
//! // registry.register(&["gpt2"], |path, device| Ok(Box::new(MyGpt2::open(path, device)?)));
//! std::process::exit(match lazyforge_models::cli::main_with(&registry, std::env::args_os()) {
//!     Ok(()) => 0,
//!     Err(_) => 1,
//! });
//! ```

use crate::registry::Registry;
use crate::run::RunArgs;
use clap::{Parser, Subcommand};
use lazyforge::source::checkpoint::OpenOptions;
use std::ffi::OsString;
use std::path::PathBuf;

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
    Run(RunArgs),
    /// Chat interactively with the model's chat template.
    Chat(RunArgs),
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
    /// List the architectures this build can run, and the known models `--model` fetches.
    Architectures,
}

/// Parses `argv` (program name first) and runs the command with `registry`'s
/// architectures; errors are printed as `lazyforge: error: ...` and returned. `--help` and
/// bad arguments print clap's message and exit the process, as a CLI does.
pub fn main_with<I, T>(registry: &Registry, argv: I) -> crate::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(argv);
    let result = dispatch(registry, cli);
    if let Err(e) = &result {
        eprintln!("lazyforge: error: {e}");
    }
    result
}

fn dispatch(registry: &Registry, cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Run(args) => crate::run::run_with(registry, &args),
        Command::Chat(args) => crate::run::chat_with(registry, &args),
        Command::Inspect {
            path,
            json,
            full,
            no_mmap,
        } => {
            let ckpt = OpenOptions::new().force_read(no_mmap).open(&path)?;
            if json {
                let doc = crate::inspect::to_json(&ckpt, full)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc)
                        .expect("a serde_json::Value always serializes")
                );
            } else {
                print!("{}", crate::inspect::to_text(&ckpt, full)?);
            }
            Ok(())
        }
        Command::Architectures => {
            println!("architectures: {}", registry.names().join(", "));
            for m in crate::fetch::KNOWN_MODELS {
                println!("--model {}: {}", m.name, m.about);
            }
            Ok(())
        }
    }
}
