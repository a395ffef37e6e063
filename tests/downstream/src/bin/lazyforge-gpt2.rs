//! The `lazyforge` tool with the downstream GPT-2 registered beside the built-in
//! architectures: the same `run`, `chat` and `inspect`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = lazyforge_models::Registry::builtin();
    lazyforge_downstream::cli::register(&mut registry);
    match lazyforge_models::cli::main_with(&registry, std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
