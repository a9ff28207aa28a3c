//! Command-line flags (the raw clap struct) and their validation into a typed [`Config`].
//!
//! Everything the run needs is decided here, before any I/O (the signing key is made
//! here, once per run). This module must never open a connection, read a file or read a
//! clock: a bad flag is refused with a message naming it. The TLS flags' files are read
//! by [`crate::tls`] when the run starts, and refused there the same way.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::{AuthMode, Credentials};
use crate::schedule::Schedule;
use crate::slo::{Slo, SloError};
use crate::tls::TlsFiles;
use crate::workload::Mix;

/// The most events one create request may carry (the API's bound).
pub const BATCH_EVENTS_MAX: usize = 8190;

/// Load Protea (or any HTTP server, with `--mix livez=1`) and check latency and correctness.
///
/// Open loop by default: requests start at intended times at `--rate` per second and
/// latency counts from the intended start, so a slow server cannot hide its queueing
/// (no coordinated omission). After the run the tester verifies the ledger: sampled
/// acknowledged transfers read back, money is conserved, and no retried id was applied
/// twice.
///
/// An error is a request that timed out, failed in transport, or got a 5xx or a 4xx
/// before the ledger; a ledger result such as `exceeds_credits` is counted by code, not
/// as an error. An open-loop start that finds 16384 starts already waiting for a
/// connection is missed, and counted as an error too; one that waited longer than
/// --timeout for a connection is not sent and counts as a timeout (status 0).
///
/// Requests are signed (HMAC-SHA256 over method, path, query, body digest and the send
/// time) unless --auth bearer. An https:// target is verified against the webpki roots,
/// or only against --ca-file's CAs; a TLS handshake counts into the latency of the
/// request that opens its connection, and of no other.
///
/// Exit codes: 0 pass, 2 cannot connect (including a failed TLS handshake) or key
/// refused, 3 SLO violated, 4 verification failed, 64 invalid flags (also an unreadable
/// or malformed --ca-file, --client-cert or --client-key), 1 anything else.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, args_override_self = true)]
pub struct Args {
    /// Base URL of the gateway: `http://HOST[:PORT]` or `https://HOST[:PORT]` (TLS, port
    /// 443 by default).
    #[arg(long)]
    pub target: String,
    /// The tenant's credential KEYID.SECRET: the `key_id` and `secret` that `gateway
    /// tenant create` prints, joined by a dot. Required unless the mix is only `livez`.
    #[arg(long, env = "PROTEA_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// How requests authenticate: `signed` (an HMAC-SHA256 signature per request, keyed
    /// with the secret) or `bearer` (`Authorization: Bearer KEYID.SECRET`, accepted only
    /// by a gateway started with --allow-bearer-keys).
    #[arg(long, value_enum, default_value_t = AuthMode::Signed)]
    pub auth: AuthMode,
    /// https:// only: trust the CA certificates in this PEM file instead of the webpki
    /// (public) roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// https:// only: present this PEM certificate chain to the server (mTLS); needs
    /// --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// https:// only: the PEM private key (PKCS#8, PKCS#1 or SEC1) of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Open loop: requests started per second (constant rate). Ignored with --closed.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Open loop, stepped: ramp up to --rate in 5 equal steps (rate/5, 2·rate/5, .., rate).
    #[arg(long, conflicts_with_all = ["rate_steps", "closed"])]
    pub step: bool,
    /// Open loop, stepped: these rates in order, each for duration / number of steps.
    #[arg(long, value_delimiter = ',', conflicts_with = "closed")]
    pub rate_steps: Option<Vec<u64>>,
    /// Concurrent requests at most (HTTP/1.1: connections; HTTP/2: streams on one).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Generator threads (default: one per core), each with its own runtime and its share
    /// of the connections (at most --connections threads are used).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Closed loop: --connections workers send back to back, as fast as the server answers.
    #[arg(long)]
    pub closed: bool,
    /// How long to send load: a number with ms, s or m (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Per-request timeout (ms, s or m); a timed-out request counts as status 0.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Accounts the run creates and transfers between (plus one funding account).
    #[arg(long, default_value_t = 1000)]
    pub accounts: u32,
    /// Request kinds and weights: single, batch, authorise (pending then a later post or
    /// void), linked, read_account, read_transfer, retry (send twice; the second must
    /// answer `exists`), livez (GET /livez: no key, no setup, no verification).
    #[arg(
        long,
        default_value = "single=50,batch=10,authorise=10,linked=5,read_account=10,read_transfer=10,retry=5"
    )]
    pub mix: String,
    /// Transfers per `batch` request (1 to 8190).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Zipf exponent over accounts (hot accounts); 0 picks accounts uniformly.
    #[arg(long, default_value_t = 0.0)]
    pub zipf: f64,
    /// Seed of the workload: the same seed draws the same kinds, accounts and amounts.
    /// Ids also mix in a per-run nonce, so repeated runs never collide.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Service-level objectives, e.g. p99=10ms,p999=50ms,errors=0.1% (also p50, p90,
    /// max). A violation exits with code 3.
    #[arg(long, value_parser = Slo::parse)]
    pub slo: Option<Slo>,
    /// Write the report as JSON to this path.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a PNG of latency percentiles over time and the percentile spectrum.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Speak HTTP/2 instead of HTTP/1.1 keep-alive: with prior knowledge (h2c) on
    /// http://, by ALPN `h2` on https:// (otherwise ALPN offers `http/1.1`).
    #[arg(long)]
    pub http2: bool,
    /// Ledger number of the run's accounts and transfers.
    #[arg(long, default_value_t = 710)]
    pub ledger: u32,
    /// Skip the verification after the run.
    #[arg(long)]
    pub no_verify: bool,
}

/// Why the flags were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag's value is out of range or malformed.
    #[error("invalid --{flag}: {reason}")]
    Invalid {
        /// The flag, without dashes.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The SLO specification is malformed.
    #[error(transparent)]
    Slo(#[from] SloError),
}

/// How requests are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// At intended times from a schedule.
    Open(Schedule),
    /// Back to back on every connection until the duration ends.
    Closed,
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL without a trailing slash.
    pub target: String,
    /// The tenant's credentials (the signing key made once), when the mix needs them.
    pub credentials: Option<Credentials>,
    /// The TLS flags' files, for an `https://` target (`None` for `http://`).
    pub tls: Option<TlsFiles>,
    /// Open or closed loop.
    pub load: Load,
    /// Concurrent requests at most.
    pub connections: usize,
    /// Generator threads.
    pub threads: usize,
    /// Load duration.
    pub duration: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Accounts of the run (without the funding account).
    pub accounts: u32,
    /// Request kinds and weights.
    pub mix: Mix,
    /// Transfers per batch request.
    pub batch_size: usize,
    /// Zipf exponent; 0 is uniform.
    pub zipf: f64,
    /// Workload seed.
    pub seed: u64,
    /// Objectives, if any.
    pub slo: Option<Slo>,
    /// JSON report path.
    pub report: Option<PathBuf>,
    /// PNG plot path.
    pub plot: Option<PathBuf>,
    /// HTTP/2 (h2c, or ALPN `h2`).
    pub http2: bool,
    /// Ledger number.
    pub ledger: u32,
    /// Whether to verify after the run.
    pub verify: Verify,
    /// Whether to print live progress on stderr.
    pub progress: Progress,
}

/// Whether the run is verified afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Verify (the default unless the mix is only `livez`).
    On,
    /// Skip verification.
    Off,
}

/// Where live progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One line per second on stderr (refreshed in place on a terminal).
    Stderr,
    /// Nothing (library use, tests).
    Quiet,
}

impl Config {
    /// Validates raw flags.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let mix = Mix::parse(&args.mix).map_err(|reason| invalid("mix", reason))?;
        check_ranges(&args)?;
        let credentials = check_key(args.key.as_deref(), args.auth, &mix)?;
        let (target, https) = check_target(&args.target)?;
        Ok(Config {
            tls: tls_of(&args, https)?,
            target,
            credentials,
            load: load_of(&args)?,
            verify: if args.no_verify || mix.livez_only() { Verify::Off } else { Verify::On },
            mix,
            connections: args.connections,
            threads: threads_of(&args)?,
            duration: args.duration,
            timeout: args.timeout,
            accounts: args.accounts,
            batch_size: args.batch_size,
            zipf: args.zipf,
            seed: args.seed,
            slo: args.slo,
            report: args.report,
            plot: args.plot,
            http2: args.http2,
            ledger: args.ledger,
            progress: Progress::Stderr,
        })
    }
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { flag, reason: reason.into() }
}

fn check_key(
    key: Option<&str>,
    auth: AuthMode,
    mix: &Mix,
) -> Result<Option<Credentials>, ConfigError> {
    match key {
        Some(key) => {
            Credentials::new(key, auth).map(Some).map_err(|e| invalid("key", e.to_string()))
        }
        None if !mix.livez_only() => {
            Err(invalid("key", "required (or PROTEA_KEY) unless the mix is only livez"))
        }
        None => Ok(None),
    }
}

/// The target without a trailing slash, and whether it is `https://`.
fn check_target(target: &str) -> Result<(String, bool), ConfigError> {
    let trimmed = target.trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|e| invalid("target", format!("{e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("target", "expected http://HOST[:PORT] or https://HOST[:PORT]")),
    };
    if uri.host().is_none() {
        return Err(invalid("target", "expected http://HOST[:PORT] or https://HOST[:PORT]"));
    }
    Ok((trimmed.to_owned(), https))
}

/// The TLS flags' files for an `https://` target; on `http://` they are refused.
fn tls_of(args: &Args, https: bool) -> Result<Option<TlsFiles>, ConfigError> {
    let files = TlsFiles {
        ca_file: args.ca_file.clone(),
        client_identity: args.client_cert.clone().zip(args.client_key.clone()),
    };
    let given = [
        ("ca-file", args.ca_file.is_some()),
        ("client-cert", args.client_cert.is_some()),
        ("client-key", args.client_key.is_some()),
    ];
    match (https, given.iter().find(|(_, given)| *given)) {
        (true, _) => Ok(Some(files)),
        (false, None) => Ok(None),
        (false, Some((flag, _))) => Err(invalid(flag, "needs an https:// --target")),
    }
}

fn check_ranges(args: &Args) -> Result<(), ConfigError> {
    if args.connections == 0 {
        return Err(invalid("connections", "must be at least 1"));
    }
    if args.duration.is_zero() {
        return Err(invalid("duration", "must be more than zero"));
    }
    if args.timeout.is_zero() {
        return Err(invalid("timeout", "must be more than zero"));
    }
    if args.accounts < 2 {
        return Err(invalid("accounts", "must be at least 2"));
    }
    if !(1..=BATCH_EVENTS_MAX).contains(&args.batch_size) {
        return Err(invalid("batch-size", "must be 1 to 8190"));
    }
    if !(args.zipf.is_finite() && args.zipf >= 0.0) {
        return Err(invalid("zipf", "must be 0 or a positive exponent"));
    }
    if args.ledger == 0 {
        return Err(invalid("ledger", "must not be zero"));
    }
    Ok(())
}

fn threads_of(args: &Args) -> Result<usize, ConfigError> {
    let cores = || std::thread::available_parallelism().map_or(1, usize::from);
    match args.threads {
        Some(0) => Err(invalid("threads", "must be at least 1")),
        Some(threads) => Ok(threads),
        None => Ok(cores()),
    }
}

fn load_of(args: &Args) -> Result<Load, ConfigError> {
    if args.closed {
        return Ok(Load::Closed);
    }
    let rates = match (&args.rate_steps, args.step) {
        (Some(steps), _) => steps.clone(),
        (None, true) => (1..=5).map(|s| (args.rate * s / 5).max(1)).collect(),
        (None, false) => vec![args.rate],
    };
    if rates.is_empty() || rates.contains(&0) {
        return Err(invalid("rate", "rates must be at least 1 request per second"));
    }
    Ok(Load::Open(Schedule::stepped(rates, args.duration)))
}

/// Parses `250ms`, `30s`, `2m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        "us" | "µs" => number / 1_000_000.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("250ms", Some(250)),
            ("30s", Some(30_000)),
            ("2m", Some(120_000)),
            ("1.5s", Some(1500)),
            ("7", Some(7000)),
            ("5h", None),
            ("fast", None),
        ];
        for (text, millis) in cases {
            let parsed = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(parsed, millis, "{text}");
        }
    }

    #[test]
    fn livez_needs_no_key() {
        let args = Args::parse_from(["loadtest", "--target", "http://x:1", "--mix", "livez=1"]);
        let config = Config::from_args(args).unwrap();
        assert_eq!(config.verify, Verify::Off);
        let args = Args::parse_from(["loadtest", "--target", "http://x:1"]);
        assert!(Config::from_args(args).is_err());
    }

    fn parse(words: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("loadtest").chain(words.iter().copied());
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::from_args(args).map_err(|e| e.to_string())
    }

    const KEY: &str =
        "pk_0123456789abcdef.00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn auth_defaults_to_signed_and_checks_the_key_for_its_mode() {
        let config = parse(&["--target", "http://x:1", "--key", KEY]).unwrap();
        assert_eq!(config.credentials.map(|c| c.mode()), Some(AuthMode::Signed));
        let short = ["--target", "http://x:1", "--key", "pk_a.short"];
        assert!(parse(&short).unwrap_err().starts_with("invalid --key: signed requests need"));
        let bearer = parse(&[&short[..], &["--auth", "bearer"]].concat()).unwrap();
        assert_eq!(bearer.credentials.map(|c| c.mode()), Some(AuthMode::Bearer));
        assert!(parse(&["--target", "http://x:1", "--key", KEY, "--auth", "basic"]).is_err());
    }

    #[test]
    fn tls_flags_need_an_https_target() {
        let https = parse(&["--target", "https://x", "--mix", "livez=1", "--ca-file", "ca.pem"]);
        let files = https.unwrap().tls.unwrap();
        assert_eq!(files.ca_file, Some(PathBuf::from("ca.pem")));
        let plain = parse(&["--target", "http://x", "--mix", "livez=1", "--ca-file", "ca.pem"]);
        assert_eq!(plain.unwrap_err(), "invalid --ca-file: needs an https:// --target");
        assert!(parse(&["--target", "http://x", "--mix", "livez=1"]).unwrap().tls.is_none());
        let half = ["--target", "https://x", "--mix", "livez=1", "--client-cert", "c.pem"];
        assert!(parse(&half).unwrap_err().contains("--client-key"));
        assert!(parse(&["--target", "ftp://x", "--mix", "livez=1"]).is_err());
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        // Wrapper scripts pass defaults first and the user's flags after them.
        let argv = ["loadtest", "--target", "http://x:1", "--duration", "10s", "--duration", "6s"];
        assert_eq!(Args::parse_from(argv).duration, Duration::from_secs(6));
    }
}
