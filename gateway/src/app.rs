//! Process-wide state shared by every core ([`App`]) and what each core owns ([`Core`]).
//!
//! `App` is read-mostly: config, the store, the API-key cache and metrics. `Core` holds
//! the core's own batcher, so a request never hands work to another core. Nothing here
//! parses requests or formats responses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use pool::batcher::{BatcherHandle, Flusher};
use storage::StoreError;
use storage::embedded::Embedded;
use storage::ledger::{Event, Outcome};

use crate::auth::KeyCache;
use crate::config::Config;
use crate::metrics::{CoreLabels, Metrics};

/// State shared by every core.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// The ledger store.
    pub store: Arc<Embedded>,
    /// API keys by key id.
    pub keys: KeyCache,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Open client connections.
    pub connections: AtomicUsize,
    /// Set once shutdown begins: `/readyz` then answers 503.
    pub draining: AtomicBool,
}

/// Commits a core's batches through the store.
pub struct StoreFlusher(pub Arc<Embedded>);

impl Flusher for StoreFlusher {
    type Event = Event;
    type Outcome = Outcome;
    type Error = StoreError;

    fn flush(&self, events: Vec<Event>) -> impl Future<Output = Result<Vec<Outcome>, StoreError>> {
        let store = self.0.clone();
        async move { store.submit(events).await }
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
    request_seq: AtomicU64,
}

impl Core {
    /// A core with its batcher.
    pub fn new(app: Arc<App>, index: usize, batcher: BatcherHandle<StoreFlusher>) -> Self {
        Self { app, index, batcher, request_seq: AtomicU64::new(0) }
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
