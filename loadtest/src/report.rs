//! The run's report: the JSON document the benchmark harness reads (`--report`) and the
//! table printed on stdout.
//!
//! The JSON top-level keys are a contract with the harness: exactly `target`, `mode`,
//! `connections`, `rate`, `duration_s`, `requests`, `throughput_rps`, `errors`,
//! `overall`, `kinds`, `statuses`, `results`, `windows`, `slo`, `verification`. This
//! module must never add, rename or drop one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Load};
use crate::stats::{Recorder, Series, Window, quantile_ms};
use crate::verify::Verification;
use crate::workload::Kind;

/// Figures of one request kind (or of all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second over the load.
    pub rps: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Errors.
    pub errors: u64,
}

/// The SLO verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloVerdict {
    /// No violation.
    pub passed: bool,
    /// Each objective missed, with the measured value.
    pub violations: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Base URL.
    pub target: String,
    /// `open` or `closed`.
    pub mode: &'static str,
    /// Concurrent requests at most.
    pub connections: usize,
    /// Requests per second asked for (the last step's), null in closed loop.
    pub rate: Option<u64>,
    /// Seconds of load, measured.
    pub duration_s: f64,
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub throughput_rps: f64,
    /// Errors plus missed open-loop starts.
    pub errors: u64,
    /// All kinds together.
    pub overall: Figures,
    /// Per kind (only kinds that ran).
    pub kinds: BTreeMap<String, Figures>,
    /// Requests by HTTP status (0: transport error or timeout).
    pub statuses: BTreeMap<String, u64>,
    /// Events by ledger result code.
    pub results: BTreeMap<String, u64>,
    /// One entry per second.
    pub windows: Vec<Window>,
    /// SLO verdict, null without `--slo`.
    pub slo: Option<SloVerdict>,
    /// Verification verdict, null when skipped.
    pub verification: Option<Verification>,
}

fn figures(series: &Series, seconds: f64) -> Figures {
    let h = &series.histogram;
    Figures {
        requests: series.requests(),
        rps: if seconds > 0.0 { series.requests() as f64 / seconds } else { 0.0 },
        p50_ms: quantile_ms(h, 0.5),
        p90_ms: quantile_ms(h, 0.9),
        p99_ms: quantile_ms(h, 0.99),
        p999_ms: quantile_ms(h, 0.999),
        max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        errors: series.errors,
    }
}

/// Builds the report of a finished run.
pub fn build(
    config: &Config,
    recorder: &Recorder,
    elapsed: Duration,
    verification: Option<Verification>,
) -> Report {
    let seconds = elapsed.as_secs_f64();
    let kinds = Kind::ALL
        .iter()
        .map(|kind| (kind.name().to_owned(), figures(&recorder.kinds[kind.index()], seconds)))
        .filter(|(_, figures)| figures.requests > 0)
        .collect();
    let (mode, rate) = match &config.load {
        Load::Open(schedule) => ("open", schedule.rates().last().copied()),
        Load::Closed => ("closed", None),
    };
    let overall = figures(&recorder.overall, seconds);
    let slo = config.slo.as_ref().map(|slo| {
        let requests = recorder.overall.requests() + recorder.missed;
        let violations =
            slo.evaluate(&recorder.overall.histogram, requests, recorder.errors_total());
        SloVerdict { passed: violations.is_empty(), violations }
    });
    Report {
        target: config.target.clone(),
        mode,
        connections: config.connections,
        rate,
        duration_s: seconds,
        requests: overall.requests,
        throughput_rps: overall.rps,
        errors: recorder.errors_total(),
        overall,
        kinds,
        statuses: recorder.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        results: recorder.results.clone(),
        windows: recorder.windows.clone(),
        slo,
        verification,
    }
}

/// The human-readable table.
pub fn table(report: &Report, missed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} loop against {}: {} requests in {:.1} s = {:.0} req/s, {} errors, {missed} missed starts",
        report.mode,
        report.target,
        report.requests,
        report.duration_s,
        report.throughput_rps,
        report.errors
    );
    let _ = writeln!(
        out,
        "\n{:<14} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "kind", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    for (name, figures) in report.kinds.iter().chain([(&"overall".to_owned(), &report.overall)]) {
        let _ = writeln!(out, "{}", row(name, figures));
    }
    let _ = writeln!(out, "\nstatuses: {}", counts(&report.statuses));
    let _ = writeln!(out, "results:  {}", counts(&report.results));
    out.push_str(&verdicts(report));
    out
}

fn row(name: &str, f: &Figures) -> String {
    format!(
        "{name:<14} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
        f.requests, f.rps, f.p50_ms, f.p90_ms, f.p99_ms, f.p999_ms, f.max_ms, f.errors
    )
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn verdicts(report: &Report) -> String {
    let mut out = String::new();
    if let Some(slo) = &report.slo {
        let verdict = if slo.passed { "PASSED" } else { "VIOLATED" };
        let _ = writeln!(out, "\nSLO {verdict}");
        slo.violations.iter().for_each(|v| _ = writeln!(out, "  SLO violation: {v}"));
    }
    if let Some(verification) = &report.verification {
        let verdict = if verification.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(out, "\nverification {verdict} ({} checks)", verification.checked);
        verification.violations.iter().for_each(|v| _ = writeln!(out, "  violation: {v}"));
    }
    out
}
