//! Prometheus metrics (prometheus-client), shared by every core.
//!
//! Label values come from fixed sets (route templates, status codes, result codes, core
//! indexes), so cardinality is bounded. Metrics never carry ids, tenants' data or personal
//! information.
//!
//! Latency histograms share [`LATENCY_BUCKETS_S`]: fine steps around the 250 ms p99
//! objective of `dashboards/README.md` (an exact `le="0.25"` bucket, so the SLO's good
//! requests are counted exactly) and up to 10 s, so `histogram_quantile` gives a usable
//! p99.9. The dashboards and alert rules in `dashboards/` name these metrics; renaming
//! one breaks them (`gateway/tests/it/observability.rs` says which).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Upper bounds (seconds) of every latency histogram's buckets: 22 buckets, 100 µs to
/// 10 s, with 250 ms (the latency SLO's threshold) one of them.
pub const LATENCY_BUCKETS_S: [f64; 22] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
    0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template, e.g. `/v1/transfers`, or `unmatched`.
    pub route: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of a ledger result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `account` or `transfer`.
    pub event: &'static str,
    /// The result code.
    pub result: &'static str,
}

/// Labels naming a core.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CoreLabels {
    /// The core's index.
    pub core: u32,
}

/// Labels of a refused credential.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// `tenant` or `operator`.
    pub scheme: &'static str,
    /// The fixed reason code (`bad_signature`, `replayed`, `expired`, ...).
    pub reason: &'static str,
}

/// Labels of a rate-limited request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `tenant` or `sign_in`.
    pub kind: &'static str,
}

/// Labels of a TLS handshake that did not complete.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    /// `timeout` or `failed`.
    pub reason: &'static str,
}

/// Labels of an operator sign-in attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInLabels {
    /// `ok`, or the refusal's reason (`wrong_password`, `locked`, `code_reused`, ...).
    pub outcome: &'static str,
}

/// Labels of a background verification of the audit chain.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    /// `intact`, `broken`, or `failed` (the store could not be read).
    pub outcome: &'static str,
}

/// The configured bounds exported as gauges, so that alert rules compare usage to the
/// bound this process runs with rather than to a number copied into the rules.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--queue-depth-max`: requests one core's batcher queue holds.
    pub queue_depth_max: usize,
    /// `--connections-max`: open client connections of the process.
    pub connections_max: usize,
    /// `--audit-queue-max`: audit records waiting for the writer.
    pub audit_queue_max: usize,
    /// `--database-pool-size-max`: read connections per core (PostgreSQL only).
    pub db_pool_size_max: Option<usize>,
    /// `--audit-verify-interval-seconds`.
    pub audit_verify_interval_s: u64,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Request latency by route, method and status.
    pub request_duration_seconds: Family<RequestLabels, Histogram>,
    /// Ledger results by event kind and code.
    pub ledger_results: Family<ResultLabels, Counter>,
    /// Events per group commit.
    pub batch_events: Family<CoreLabels, Histogram>,
    /// Requests per group commit.
    pub batch_requests: Family<CoreLabels, Histogram>,
    /// Time from the start of a flush to its durable commit.
    pub flush_duration_seconds: Family<CoreLabels, Histogram>,
    /// Requests waiting in a core's batcher queue.
    pub queue_depth: Family<CoreLabels, Gauge>,
    /// Rows written per flush (PostgreSQL).
    pub flush_rows: Family<CoreLabels, Histogram>,
    /// Read-pool connections handed out, by core (PostgreSQL).
    pub db_pool_in_use: Family<CoreLabels, Gauge>,
    /// Reads waiting for a pooled connection, by core (PostgreSQL).
    pub db_pool_waiting: Family<CoreLabels, Gauge>,
    /// Times a core's flush connection broke and was replaced (PostgreSQL).
    pub db_reconnects: Family<CoreLabels, Counter>,
    /// Open client connections.
    pub connections_open: Gauge,
    /// Connections refused because `connections_max` was reached.
    pub connections_refused: Counter,
    /// Refused credentials by scheme and reason.
    pub auth_failures: Family<AuthLabels, Counter>,
    /// Requests answered 429, by kind of limit.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Whether rate limits are decided locally because Redis failed (0 or 1).
    pub rate_limit_degraded: Gauge,
    /// Rate-limit decisions made locally because Redis failed.
    pub rate_limit_fallback_decisions: Counter,
    /// TLS handshakes that did not complete, by reason.
    pub tls_handshake_failures: Family<TlsLabels, Counter>,
    /// Operator sign-in attempts by outcome.
    pub sign_ins: Family<SignInLabels, Counter>,
    /// Signature nonces remembered (the replay cache's size).
    pub replay_cache_entries: Gauge,
    /// Audit records appended to the trail.
    pub audit_records: Counter,
    /// Appends to the audit trail that failed after retries.
    pub audit_append_failures: Counter,
    /// Audit records waiting for the writer (sampled at scrape time).
    pub audit_queue_depth: Gauge,
    /// Time from queueing an audit record to its durable commit (the audit lag).
    pub audit_commit_seconds: Histogram,
    /// Age of the oldest audit record waiting for the writer (0 when none waits; sampled
    /// at scrape time).
    pub audit_queue_lag_seconds: Gauge<f64, AtomicU64>,
    /// 1 when the last background verification found the audit chain intact, 0 when it
    /// found it broken (0 also before the first verification: see the timestamp).
    pub audit_chain_ok: Gauge,
    /// Unix time (seconds) of the last background verification that read the whole chain
    /// (0 before the first).
    pub audit_chain_verified_timestamp_seconds: Gauge,
    /// Background verifications of the audit chain, by outcome.
    pub audit_chain_verifications: Family<VerificationLabels, Counter>,
    /// 1 when `/readyz` would answer 200 (sampled at scrape time).
    pub ready: Gauge,
    /// The bounds of [`Limits`], one gauge each (set once at start).
    limit_gauges: [Gauge; 5],
}

/// Names and help of the [`Limits`] gauges, in the order of `set_limits`.
const LIMIT_GAUGES: [(&str, &str); 5] = [
    ("queue_depth_max", "Most requests one core's batcher queue holds (--queue-depth-max)"),
    ("connections_max", "Most open client connections of the process (--connections-max)"),
    ("audit_queue_max", "Most audit records waiting for the writer (--audit-queue-max)"),
    ("db_pool_size_max", "Read connections per core, 0 without PostgreSQL"),
    ("audit_verify_interval_seconds", "Seconds between background audit-chain verifications"),
];

fn latency_buckets() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_S)
}

fn size_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("protea");
        let request_duration_seconds = Family::new_with_constructor(latency_buckets as fn() -> _);
        let ledger_results = Family::default();
        let batch_events = Family::new_with_constructor(size_buckets as fn() -> _);
        let batch_requests = Family::new_with_constructor(size_buckets as fn() -> _);
        let flush_duration_seconds = Family::new_with_constructor(latency_buckets as fn() -> _);
        let queue_depth = Family::default();
        let flush_rows = Family::new_with_constructor(size_buckets as fn() -> _);
        let db_pool_in_use = Family::default();
        let db_pool_waiting = Family::default();
        let db_reconnects = Family::default();
        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        let auth_failures = Family::default();
        let rate_limited = Family::default();
        let rate_limit_degraded = Gauge::default();
        let rate_limit_fallback_decisions = Counter::default();
        let tls_handshake_failures = Family::default();
        let sign_ins = Family::default();
        let replay_cache_entries = Gauge::default();
        let audit_records = Counter::default();
        let audit_append_failures = Counter::default();
        let audit_queue_depth = Gauge::default();
        let audit_commit_seconds = latency_buckets();
        let audit_queue_lag_seconds = Gauge::<f64, AtomicU64>::default();
        let audit_chain_ok = Gauge::default();
        let audit_chain_verified_timestamp_seconds = Gauge::default();
        let audit_chain_verifications = Family::default();
        let ready = Gauge::default();
        registry.register(
            "audit_queue_lag_seconds",
            "Age of the oldest audit record waiting for the writer, 0 when none waits",
            audit_queue_lag_seconds.clone(),
        );
        registry.register(
            "audit_chain_ok",
            "1 when the last background verification found the audit chain intact, else 0",
            audit_chain_ok.clone(),
        );
        registry.register(
            "audit_chain_verified_timestamp_seconds",
            "Unix time of the last background verification of the audit chain, 0 before it",
            audit_chain_verified_timestamp_seconds.clone(),
        );
        registry.register(
            "audit_chain_verifications",
            "Background verifications of the audit chain, by outcome",
            audit_chain_verifications.clone(),
        );
        registry.register("ready", "1 when /readyz would answer 200", ready.clone());
        let limit_gauges: [Gauge; 5] = Default::default();
        for (gauge, (name, help)) in limit_gauges.iter().zip(LIMIT_GAUGES) {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "audit_records",
            "Audit records appended to the trail",
            audit_records.clone(),
        );
        registry.register(
            "audit_append_failures",
            "Appends to the audit trail that failed after retries",
            audit_append_failures.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit records waiting for the writer",
            audit_queue_depth.clone(),
        );
        registry.register(
            "audit_commit_seconds",
            "Time from queueing an audit record to its durable commit",
            audit_commit_seconds.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused credentials by scheme and reason",
            auth_failures.clone(),
        );
        registry.register("rate_limited", "Requests answered 429, by limit", rate_limited.clone());
        registry.register(
            "rate_limit_degraded",
            "1 while rate limits are decided locally because Redis failed",
            rate_limit_degraded.clone(),
        );
        registry.register(
            "rate_limit_fallback_decisions",
            "Rate-limit decisions made locally because Redis failed",
            rate_limit_fallback_decisions.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that did not complete, by reason",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "operator_sign_ins",
            "Operator sign-in attempts by outcome",
            sign_ins.clone(),
        );
        registry.register(
            "replay_cache_entries",
            "Signature nonces remembered to refuse replays",
            replay_cache_entries.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            request_duration_seconds.clone(),
        );
        registry.register(
            "ledger_results",
            "Ledger event results by kind and code",
            ledger_results.clone(),
        );
        registry.register("batch_events", "Events per group commit, by core", batch_events.clone());
        registry.register(
            "batch_requests",
            "Requests per group commit, by core",
            batch_requests.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time from flush start to durable commit, by core",
            flush_duration_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a core's batcher",
            queue_depth.clone(),
        );
        registry.register(
            "flush_rows",
            "Rows written per flush, by core (PostgreSQL)",
            flush_rows.clone(),
        );
        registry.register(
            "db_pool_in_use",
            "Read-pool connections handed out, by core",
            db_pool_in_use.clone(),
        );
        registry.register(
            "db_pool_waiting",
            "Reads waiting for a pooled connection, by core",
            db_pool_waiting.clone(),
        );
        registry.register(
            "db_reconnects",
            "Times a core's flush connection broke and was replaced",
            db_reconnects.clone(),
        );
        registry.register("connections_open", "Open client connections", connections_open.clone());
        registry.register(
            "trace_spans_dropped",
            "Finished spans dropped because the export queue was full",
            crate::telemetry::SPANS_DROPPED.clone(),
        );
        registry.register(
            "trace_spans_exported",
            "Spans the OTLP collector accepted",
            crate::telemetry::SPANS_EXPORTED.clone(),
        );
        registry.register(
            "trace_export_failures",
            "OTLP export requests that failed (their spans are dropped)",
            crate::telemetry::EXPORT_FAILURES.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because connections_max was reached",
            connections_refused.clone(),
        );
        Self {
            registry,
            request_duration_seconds,
            ledger_results,
            batch_events,
            batch_requests,
            flush_duration_seconds,
            queue_depth,
            flush_rows,
            db_pool_in_use,
            db_pool_waiting,
            db_reconnects,
            connections_open,
            connections_refused,
            auth_failures,
            rate_limited,
            rate_limit_degraded,
            rate_limit_fallback_decisions,
            tls_handshake_failures,
            sign_ins,
            replay_cache_entries,
            audit_records,
            audit_append_failures,
            audit_queue_depth,
            audit_commit_seconds,
            audit_queue_lag_seconds,
            audit_chain_ok,
            audit_chain_verified_timestamp_seconds,
            audit_chain_verifications,
            ready,
            limit_gauges,
        }
    }

    /// Exports the configured bounds (the PostgreSQL pool's only when there is one).
    pub fn set_limits(&self, limits: &Limits) {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        let [queue, connections, audit, pool, verify] = &self.limit_gauges;
        queue.set(gauge(limits.queue_depth_max));
        connections.set(gauge(limits.connections_max));
        audit.set(gauge(limits.audit_queue_max));
        pool.set(limits.db_pool_size_max.map_or(0, gauge));
        verify.set(i64::try_from(limits.audit_verify_interval_s).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }

    /// Records a core's read-pool state and its flush reconnects so far.
    pub fn observe_pool(
        &self,
        core: &CoreLabels,
        in_use: usize,
        waiting: usize,
        reconnects_total: u64,
    ) {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.db_pool_in_use.get_or_create(core).set(gauge(in_use));
        self.db_pool_waiting.get_or_create(core).set(gauge(waiting));
        let counter = self.db_reconnects.get_or_create(core);
        counter.inc_by(reconnects_total.saturating_sub(counter.get()));
    }

    /// Records one background verification of the audit chain finished at `at_unix_s`:
    /// `Some(intact)` when it read the whole chain, `None` when the store failed (then
    /// only the `failed` count moves, so the timestamp goes stale).
    pub fn observe_chain_verification(&self, intact: Option<bool>, at_unix_s: u64) {
        let outcome = match intact {
            Some(true) => "intact",
            Some(false) => "broken",
            None => "failed",
        };
        self.audit_chain_verifications.get_or_create(&VerificationLabels { outcome }).inc();
        if let Some(intact) = intact {
            self.audit_chain_ok.set(i64::from(intact));
            self.audit_chain_verified_timestamp_seconds
                .set(i64::try_from(at_unix_s).unwrap_or(i64::MAX));
        }
    }

    /// Records a finished request.
    pub fn observe_request(&self, labels: &RequestLabels, elapsed: Duration) {
        self.request_duration_seconds.get_or_create(labels).observe(elapsed.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Feeds one core's flushes into [`Metrics`].
pub struct CoreFlushObserver {
    /// The shared metrics.
    pub metrics: Arc<Metrics>,
    /// The core's labels.
    pub core: CoreLabels,
}

impl pool::batcher::FlushObserver for CoreFlushObserver {
    fn flushed(&self, requests: usize, events: usize, latency: Duration) {
        self.metrics.batch_events.get_or_create(&self.core).observe(events as f64);
        self.metrics.batch_requests.get_or_create(&self.core).observe(requests as f64);
        self.metrics
            .flush_duration_seconds
            .get_or_create(&self.core)
            .observe(latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_rise_and_hold_the_slo_threshold() {
        assert!(LATENCY_BUCKETS_S.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(LATENCY_BUCKETS_S.contains(&0.25), "the 250 ms SLO threshold is a bucket");
        let text = {
            let metrics = Metrics::new();
            let labels = RequestLabels { route: "/v1/transfers", method: "POST", status: 200 };
            metrics.observe_request(&labels, Duration::from_millis(240));
            metrics.encode()
        };
        let le_250ms = "protea_http_request_duration_seconds_bucket{le=\"0.25\",route=\"/v1/transfers\",method=\"POST\",status=\"200\"} 1";
        assert!(text.contains(le_250ms), "{text}");
        let le_200ms = "protea_http_request_duration_seconds_bucket{le=\"0.2\",route=\"/v1/transfers\",method=\"POST\",status=\"200\"} 0";
        assert!(text.contains(le_200ms), "{text}");
    }

    #[test]
    fn limits_are_exported() {
        let metrics = Metrics::new();
        metrics.set_limits(&Limits {
            queue_depth_max: 1024,
            connections_max: 10_000,
            audit_queue_max: 5000,
            db_pool_size_max: None,
            audit_verify_interval_s: 300,
        });
        let text = metrics.encode();
        for line in [
            "protea_queue_depth_max 1024",
            "protea_connections_max 10000",
            "protea_audit_queue_max 5000",
            "protea_db_pool_size_max 0",
            "protea_audit_verify_interval_seconds 300",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn a_chain_verification_sets_ok_and_its_time_and_a_failure_only_counts() {
        let metrics = Metrics::new();
        assert_eq!(
            (metrics.audit_chain_ok.get(), metrics.audit_chain_verified_timestamp_seconds.get()),
            (0, 0)
        );
        metrics.observe_chain_verification(Some(true), 1_700_000_000);
        assert_eq!(metrics.audit_chain_ok.get(), 1);
        assert_eq!(metrics.audit_chain_verified_timestamp_seconds.get(), 1_700_000_000);
        metrics.observe_chain_verification(None, 1_700_000_300);
        assert_eq!(metrics.audit_chain_ok.get(), 1, "a failed read says nothing of the chain");
        assert_eq!(metrics.audit_chain_verified_timestamp_seconds.get(), 1_700_000_000);
        metrics.observe_chain_verification(Some(false), 1_700_000_600);
        assert_eq!(metrics.audit_chain_ok.get(), 0);
        let text = metrics.encode();
        for line in [
            "protea_audit_chain_ok 0",
            "protea_audit_chain_verified_timestamp_seconds 1700000600",
            "protea_audit_chain_verifications_total{outcome=\"intact\"} 1",
            "protea_audit_chain_verifications_total{outcome=\"failed\"} 1",
            "protea_audit_chain_verifications_total{outcome=\"broken\"} 1",
            "protea_audit_queue_lag_seconds 0.0",
            "protea_ready 0",
            "protea_queue_depth_max 0",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
