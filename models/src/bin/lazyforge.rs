//! The `lazyforge` command-line tool: [`lazyforge_models::cli`] with the built-in
//! architectures.

use std::process::ExitCode;

fn main() -> ExitCode {
    let registry = lazyforge_models::Registry::builtin();
    match lazyforge_models::cli::main_with(&registry, std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
