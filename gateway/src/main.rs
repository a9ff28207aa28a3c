//! The `gateway` binary: parse the configuration, install logging, run. An invalid
//! configuration exits with code 64 and names the key.

use std::process::ExitCode;

use clap::Parser;
use gateway::config::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `EX_USAGE` from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            let _ = error.print();
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(help) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        Some(Command::Tenant(command)) => report(gateway::admin_cmd::run_tenant(command)),
        Some(Command::Operator(command)) => report(gateway::admin_cmd::run_operator(command)),
        Some(Command::Migrate { storage }) => report(gateway::admin_cmd::migrate(&storage)),
        Some(Command::KeysGenerate) => report(gateway::admin_cmd::keys_generate()),
        Some(Command::Healthcheck(args)) => healthcheck(&args),
        Some(Command::AuditArchive(args)) => report(gateway::audit_archive::run(&args)),
        Some(Command::Serve(args)) => serve(&args),
        None => serve(&cli.serve),
    }
}

fn serve(args: &gateway::config::ServeArgs) -> ExitCode {
    let config = match args.validate(pool::cores::available_cores()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let telemetry = match gateway::telemetry::init(&config.observability) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("invalid configuration: otlp-endpoint: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(error) = gateway::logging::init(&config.log, telemetry.as_ref()) {
        eprintln!("invalid configuration: log: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let served = report(gateway::run::serve(config));
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    served
}

fn healthcheck(args: &gateway::healthcheck::HealthcheckArgs) -> ExitCode {
    match gateway::healthcheck::probe(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<gateway::config::ConfigError>().is_some() => {
            eprintln!("{error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "gateway failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
