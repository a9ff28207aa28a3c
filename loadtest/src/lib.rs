//! Protea's load tester: drives a Protea deployment (or, with `--mix livez=1`, any
//! HTTP server) at an intended rate, measures latency without coordinated omission,
//! gates on an SLO and verifies the ledger afterwards.
//!
//! It is a client: it speaks HTTP/JSON (over TLS for `https://` targets) and must never
//! depend on a server crate. It depends on `crypto` only, a crate of pure primitives that
//! does no I/O, to sign requests ([`auth`]): what a tenant's own client would use.
//! Flow: [`config`] validates flags; [`run`] does pre-flight, setup
//! ([`runner::setup`]), the load ([`runner::open_loop`] or [`runner::closed_loop`]),
//! verification ([`verify`]) and builds the [`report::Report`].

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod engine;
pub mod http1;
pub mod model;
pub mod plot;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod slo;
pub mod stats;
pub mod tls;
pub mod transport;
pub mod verify;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::client::{Client, Settings};
use crate::config::{Config, Load, Progress, Verify};
use crate::engine::{Engine, Workload, lock};
use crate::report::Report;
use crate::tls::{Tls, TlsError};
use crate::workload::{Ids, Picker};

/// Exit code: the target cannot be reached or refused the key.
pub const EXIT_UNREACHABLE: u8 = 2;
/// Exit code: an SLO objective was missed.
pub const EXIT_SLO: u8 = 3;
/// Exit code: verification found a violation.
pub const EXIT_VERIFICATION: u8 = 4;
/// Exit code: a flag is invalid (also a TLS flag's unreadable or malformed file).
pub const EXIT_FLAGS: u8 = 64;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target does not answer.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The target.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Setup got a 401.
    #[error("the key was refused (401)")]
    KeyRefused,
    /// Setup got an answer other than `ok`/`exists`.
    #[error("setup failed: {0}")]
    Setup(String),
    /// A TLS flag's file is unreadable or malformed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A report or plot file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Connect { .. } | Error::KeyRefused => EXIT_UNREACHABLE,
            Error::Tls(_) => EXIT_FLAGS,
            Error::Setup(_) | Error::Write { .. } => 1,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Open-loop starts missed (backlog full).
    pub missed: u64,
    /// The overall percentile spectrum, for the plot.
    pub spectrum: Vec<plot::SpectrumPoint>,
    /// 0, [`EXIT_SLO`] or [`EXIT_VERIFICATION`] (verification wins).
    pub exit_code: u8,
}

/// Runs the load and verification described by `config`.
pub async fn run(config: &Config) -> Result<Outcome, Error> {
    let client = Client::new(client_settings(config)?);
    runner::preflight(&client).await?;
    let threads = config.threads.min(config.connections);
    let mut engine = runner::engine(client, workload(config), config.timeout, threads);
    if !config.mix.livez_only() {
        runner::setup(&engine).await?;
    }
    engine.start = Instant::now();
    let engine = Arc::new(engine);
    let interrupt = (config.progress == Progress::Stderr)
        .then(|| tokio::spawn(runner::interrupt(engine.clone())));
    let elapsed = load(&engine, config).await;
    let verification = match config.verify {
        Verify::On => {
            announce_verification(config, &engine);
            Some(verify::verify(engine.clone(), config.connections).await)
        }
        Verify::Off => None,
    };
    interrupt.inspect(tokio::task::JoinHandle::abort);
    Ok(outcome(config, &engine, elapsed, verification))
}

/// The client of the run: its credentials (the signing key made once), and TLS for an
/// `https://` target, whose files are read here.
fn client_settings(config: &Config) -> Result<Settings, Error> {
    let tls = match &config.tls {
        Some(files) => Some(Tls::new(files, &target_host(&config.target), config.http2)?),
        None => None,
    };
    Ok(Settings {
        base: config.target.clone(),
        credentials: config.credentials.clone(),
        timeout: config.timeout,
        connections: config.connections,
        http2: config.http2,
        tls,
    })
}

fn target_host(target: &str) -> String {
    let uri: Option<http::Uri> = target.parse().ok();
    uri.as_ref().and_then(http::Uri::host).unwrap_or_default().to_owned()
}

fn announce_verification(config: &Config, engine: &Engine) {
    if config.progress == Progress::Stderr {
        let model = lock(&engine.model);
        eprintln!(
            "verifying: {} unknown outcomes to resolve, {} of {} acknowledged transfers to read back, {} accounts",
            model.unknown.len(),
            model.reservoir.len(),
            model.acknowledged(),
            engine.workload.accounts.len()
        );
    }
}

fn workload(config: &Config) -> Workload {
    let ids = Ids::new(config.seed, run_nonce());
    Workload {
        mix: config.mix.clone(),
        seed: config.seed,
        ledger: config.ledger,
        batch_size: config.batch_size,
        ids,
        accounts: runner::account_ids(config.accounts, &ids),
        picker: Picker::new(config.accounts, config.zipf),
    }
}

/// Different for every run, so repeated runs against one gateway never share ids.
fn run_nonce() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(40)
}

async fn load(engine: &Arc<Engine>, config: &Config) -> std::time::Duration {
    let schedule = match &config.load {
        Load::Open(schedule) => Some(schedule.clone()),
        Load::Closed => None,
    };
    let ticker = (config.progress == Progress::Stderr)
        .then(|| tokio::spawn(runner::progress(engine.clone(), schedule.clone())));
    match &schedule {
        Some(schedule) => runner::open_loop(engine.clone(), schedule, config.connections).await,
        None => runner::closed_loop(engine.clone(), config.duration, config.connections).await,
    }
    let elapsed = engine.start.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    engine.collect(elapsed).close_window();
    elapsed
}

fn outcome(
    config: &Config,
    engine: &Engine,
    elapsed: std::time::Duration,
    verification: Option<verify::Verification>,
) -> Outcome {
    let recorder = lock(&engine.recorder);
    let report = report::build(config, &recorder, elapsed, verification);
    let failed = report.verification.as_ref().is_some_and(|v| !v.passed);
    let missed_slo = report.slo.as_ref().is_some_and(|s| !s.passed);
    let exit_code = match (failed, missed_slo) {
        (true, _) => EXIT_VERIFICATION,
        (false, true) => EXIT_SLO,
        (false, false) => 0,
    };
    let spectrum = plot::spectrum(&recorder.overall.histogram);
    Outcome { report, missed: recorder.missed, spectrum, exit_code }
}

/// Runs, prints the table on stdout, writes `--report` and `--plot`; returns the exit code.
pub async fn run_cli(config: &Config) -> Result<u8, Error> {
    let outcome = run(config).await?;
    print!("{}", report::table(&outcome.report, outcome.missed));
    if let Some(path) = &config.report {
        write_report(path, &outcome.report)?;
    }
    if let Some(path) = &config.plot {
        plot::write_png(path, &outcome.report.windows, &outcome.spectrum)
            .map_err(|reason| Error::Write { path: path.clone(), reason })?;
    }
    Ok(outcome.exit_code)
}

fn write_report(path: &PathBuf, report: &Report) -> Result<(), Error> {
    let fail = |reason: String| Error::Write { path: path.clone(), reason };
    let json = serde_json::to_vec_pretty(report).map_err(|e| fail(e.to_string()))?;
    std::fs::write(path, json).map_err(|e| fail(e.to_string()))
}
