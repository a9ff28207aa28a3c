//! Process-wide state shared by every core ([`App`]) and what each core owns ([`Core`]).
//!
//! `App` is read-mostly: config, the store, tenant credentials, the gateway's keys, the
//! replay cache, the rate limiter, operator sessions and metrics. `Core` holds
//! the core's own batcher and store handle (its own database connections on PostgreSQL),
//! so a request never hands work to another core. Nothing here parses requests or
//! formats responses.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use pool::batcher::{BatcherHandle, Flusher};
use storage::ledger::{Event, Outcome};
use storage::ratelimit::RateLimiter;
use storage::{CoreStore, Store, StoreError};

use crate::audit::AuditTrail;
use crate::auth::Credentials;
use crate::config::Config;
use crate::keys::Keys;
use crate::metrics::{CoreLabels, Metrics};
use crate::operator_auth::SessionStore;
use crate::replay::ReplayCache;

/// State shared by every core.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// The ledger store.
    pub store: Store,
    /// Each running core's store handle, for the pool gauges at scrape time (never
    /// touched on the request path).
    pub core_stores: Mutex<Vec<(CoreLabels, Arc<CoreStore>)>>,
    /// Tenants' active keys and names.
    pub credentials: Arc<Credentials>,
    /// The key-encryption key and the token keys (swapped whole when they rotate).
    pub keys: Arc<ArcSwap<Keys>>,
    /// Signature nonces seen within the window.
    pub replay: ReplayCache,
    /// Per-tenant (and per-address sign-in) rate limits.
    pub limiter: RateLimiter,
    /// Operator sessions.
    pub sessions: SessionStore,
    /// The audit trail's queue and writer.
    pub audit: AuditTrail,
    /// The data inventory (what personal information the vault accepts).
    pub inventory: crate::popia::inventory::Inventory,
    /// TLS, when the listener speaks it.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Bounds concurrent password hashing (argon2id is deliberately slow).
    pub password_slots: tokio::sync::Semaphore,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether requests are traced (`--otlp-endpoint` set): each then runs in a span.
    pub tracing: bool,
    /// Open client connections.
    pub connections: AtomicUsize,
    /// Set once shutdown begins: `/readyz` then answers 503.
    pub draining: AtomicBool,
    /// The process's monotonic clock origin (rate limits count from it).
    pub started: Instant,
}

impl App {
    /// Nanoseconds since the process started: the rate limiter's local clock.
    pub fn clock_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether `/readyz` answers 200: not draining, and the store answers.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.store.is_ready()
    }

    /// Refreshes the gauges sampled at scrape time: pools, rate-limit fallback, replay
    /// cache, audit queue and lag, readiness.
    pub fn observe(&self) {
        self.observe_pools();
        let metrics = &self.metrics;
        metrics.rate_limit_degraded.set(i64::from(self.limiter.is_degraded()));
        let fallback = self.limiter.fallback_decisions_total();
        let counted = metrics.rate_limit_fallback_decisions.get();
        metrics.rate_limit_fallback_decisions.inc_by(fallback.saturating_sub(counted));
        metrics.replay_cache_entries.set(i64::try_from(self.replay.len()).unwrap_or(i64::MAX));
        metrics.audit_queue_depth.set(i64::try_from(self.audit.depth()).unwrap_or(i64::MAX));
        metrics.audit_queue_lag_seconds.set(self.audit.lag().as_secs_f64());
        metrics.ready.set(i64::from(self.is_ready()));
    }

    /// Refreshes the per-core database pool gauges.
    fn observe_pools(&self) {
        let Ok(cores) = self.core_stores.lock() else { return };
        for (labels, store) in cores.iter() {
            if let CoreStore::Postgres(core) = &**store {
                let pool = core.pool_status();
                let in_use = pool.size.saturating_sub(pool.available);
                self.metrics.observe_pool(labels, in_use, pool.waiting, core.reconnects_total());
            }
        }
    }
}

/// Commits a core's batches through its store, recording rows written per flush.
pub struct StoreFlusher {
    /// This core's store.
    pub store: Arc<CoreStore>,
    /// The shared metrics.
    pub metrics: Arc<Metrics>,
    /// This core's labels.
    pub core: CoreLabels,
}

impl Flusher for StoreFlusher {
    type Event = Event;
    type Outcome = Outcome;
    type Error = StoreError;

    fn flush(&self, events: Vec<Event>) -> impl Future<Output = Result<Vec<Outcome>, StoreError>> {
        let (store, metrics, core) = (self.store.clone(), self.metrics.clone(), self.core.clone());
        async move {
            let submitted = store.submit(events).await?;
            if let Some(rows) = submitted.rows_written {
                metrics.flush_rows.get_or_create(&core).observe(rows as f64);
                // The batcher's `flush` span when the batch is traced; a no-op otherwise.
                tracing::Span::current().record("rows", rows);
            }
            Ok(submitted.outcomes)
        }
    }
}

/// What one core owns.
pub struct Core {
    /// Shared state.
    pub app: Arc<App>,
    /// This core's index.
    pub index: usize,
    /// This core's group-commit batcher.
    pub batcher: BatcherHandle<StoreFlusher>,
    /// This core's store handle (reads go through it).
    pub store: Arc<CoreStore>,
    request_seq: AtomicU64,
}

impl Core {
    /// A core with its batcher and store handle.
    pub fn new(
        app: Arc<App>,
        index: usize,
        batcher: BatcherHandle<StoreFlusher>,
        store: Arc<CoreStore>,
    ) -> Self {
        Self { app, index, batcher, store, request_seq: AtomicU64::new(0) }
    }

    /// Submits `events` to this core's batcher, recording the queue depth it found.
    pub async fn submit(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<Outcome>, pool::batcher::SubmitError<StoreError>> {
        let labels = CoreLabels { core: u32::try_from(self.index).unwrap_or(u32::MAX) };
        let depth = i64::try_from(self.batcher.queue_depth()).unwrap_or(i64::MAX);
        self.app.metrics.queue_depth.get_or_create(&labels).set(depth);
        self.batcher.submit(events).await
    }

    /// A request id unique in this process: the core index and a per-core sequence.
    pub fn next_request_id(&self) -> String {
        let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("req_{:02x}{seq:014x}", self.index)
    }
}
