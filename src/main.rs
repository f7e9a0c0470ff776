//! Thin binary: parse the command line, hand over to [`loadgate::cli::run`], map the result to
//! the contract's exit codes (0 pass, 99 check failed, 2 invalid plan/arguments, 1 harness error).
use std::process::ExitCode;

fn main() -> ExitCode {
    match loadgate::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("loadgate: error: {err:#}");
            ExitCode::from(loadgate::cli::EXIT_HARNESS)
        }
    }
}
