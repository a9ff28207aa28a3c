//! Integration tests of the load tester: the scheduler on a paused clock, the SLO gate,
//! workload determinism, verification against an in-process fake with faults, signed
//! and bearer credentials checked by the fake, and TLS (both ALPN protocols, mTLS)
//! with certificates made at test time.

mod auth;
mod fake;
mod pki;
mod schedule;
mod slo;
mod tls;
mod verification;
mod workload;

use clap::Parser;
use loadtest::config::{Args, Config, Progress};

/// A quiet config from command-line words (after `loadtest`).
pub fn config(words: &[&str]) -> Config {
    let args = Args::try_parse_from(std::iter::once("loadtest").chain(words.iter().copied()))
        .expect("test flags parse");
    let mut config = Config::from_args(args).expect("test flags are valid");
    config.progress = Progress::Quiet;
    config
}
