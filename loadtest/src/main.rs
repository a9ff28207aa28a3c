//! The `loadtest` binary: parses flags, builds a runtime and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadtest::config::{Args, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => return flags_refused(&error),
    };
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::from(loadtest::EXIT_FLAGS);
        }
    };
    match run(&config) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            let code =
                error.downcast_ref::<loadtest::Error>().map_or(1, loadtest::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// Help and version exit 0; a bad flag exits 64 (not clap's 2, which means "cannot connect").
fn flags_refused(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    ExitCode::from(if error.use_stderr() { loadtest::EXIT_FLAGS } else { 0 })
}

fn run(config: &Config) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(loadtest::run_cli(config))?)
}
