//! The audit trail's front (ADR 0008): every administrative action, sign-in attempt, and
//! read or change of personal information becomes one record appended to the
//! hash-chained, append-only trail in the store.
//!
//! [`AuditTrail::record`] queues a record (the queue is bounded: `--audit-queue-max`; a
//! full queue waits at most [`ENQUEUE_WAIT`], then refuses) and waits until the writer
//! has committed it, so no answer that reads or changes personal information leaves
//! before its record is durable. One writer task per process, on the main runtime,
//! appends whatever is queued in one transaction (at most
//! [`storage::audit::AUDIT_APPEND_MAX`] records), retrying a failed append a few times;
//! at shutdown it drains the queue before the store closes. The transfer path never
//! records anything here. A record names people only by pseudonymous ids: its `detail`
//! holds key ids, operator ids, tenant names or sealed bytes, never plaintext personal
//! information, secrets or tokens.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use storage::audit::{AUDIT_APPEND_MAX, ActorKind, NewAuditRecord, Outcome};
use storage::ledger::TenantId;
use storage::{CoreStore, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// How long a record may wait for room in a full queue.
pub const ENQUEUE_WAIT: Duration = Duration::from_secs(2);
/// Attempts of one append before its records are answered with the error.
const APPEND_ATTEMPTS: u32 = 3;
/// Pause before the second attempt (doubling).
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An operator (by id), in the role of their session.
    Operator {
        /// The operator's id.
        id: u64,
        /// Their role.
        role: &'static str,
    },
    /// A tenant (a signed request, a certificate or a key).
    Tenant(TenantId),
    /// Someone not yet authenticated (a sign-in attempt).
    Anonymous,
    /// The gateway itself (retention, key rotation).
    System,
}

/// Whether the action happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It was done.
    Success,
    /// It was refused; the reason is a fixed code.
    Refused(&'static str),
}

/// One audited action, as the gateway describes it.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// Who.
    pub actor: Actor,
    /// What, as a fixed dotted name (`tenant.create`, `pi.read`).
    pub action: &'static str,
    /// Whose data, when a tenant's.
    pub tenant: Option<TenantId>,
    /// Which data subject, by pseudonymous id.
    pub subject: Option<u128>,
    /// For which declared purpose.
    pub purpose: Option<&'a str>,
    /// With what outcome.
    pub outcome: AuditOutcome,
    /// The request's id.
    pub request_id: Option<&'a str>,
    /// The client's address.
    pub origin: Option<IpAddr>,
    /// What the action was on (a key id, an operator id, a tenant name) or sealed bytes;
    /// never plaintext personal information.
    pub detail: Vec<u8>,
}

impl<'a> Event<'a> {
    /// An event of `actor` doing `action` with `outcome`, everything else empty.
    pub fn new(actor: Actor, action: &'static str, outcome: AuditOutcome) -> Self {
        Self {
            actor,
            action,
            tenant: None,
            subject: None,
            purpose: None,
            outcome,
            request_id: None,
            origin: None,
            detail: Vec::new(),
        }
    }

    fn into_record(self, at_ns: u64) -> NewAuditRecord {
        let (actor_kind, actor_id, role) = match self.actor {
            Actor::Operator { id, role } => (ActorKind::Operator, Some(id), Some(role.to_owned())),
            Actor::Tenant(id) => (ActorKind::Tenant, Some(id), None),
            Actor::Anonymous => (ActorKind::Anonymous, None, None),
            Actor::System => (ActorKind::System, None, None),
        };
        NewAuditRecord {
            at_ns,
            actor_kind,
            actor_id,
            role,
            action: self.action.to_owned(),
            tenant: self.tenant,
            subject: self.subject,
            purpose: self.purpose.map(str::to_owned),
            outcome: match self.outcome {
                AuditOutcome::Success => Outcome::Success,
                AuditOutcome::Refused(code) => Outcome::Refused(code.to_owned()),
            },
            request_id: self.request_id.map(str::to_owned),
            origin: self.origin.map(|ip| ip.to_string()),
            detail: self.detail,
        }
    }
}

/// Why a record is not in the trail.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    /// The queue stayed full for [`ENQUEUE_WAIT`].
    #[error("the audit queue is full")]
    QueueFull,
    /// The writer has stopped (the gateway is shutting down).
    #[error("the audit writer has stopped")]
    Stopped,
    /// The store refused the append (after retries).
    #[error("appending to the audit trail failed: {0}")]
    Storage(StoreError),
}

struct Pending {
    record: NewAuditRecord,
    queued: Instant,
    done: oneshot::Sender<Result<u64, AuditError>>,
}

/// The process's handle on the audit trail. Cheap to share; dropping every handle lets
/// the writer drain and stop.
#[derive(Clone)]
pub struct AuditTrail {
    queue: mpsc::Sender<Pending>,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Unix ns at which the oldest record not yet committed was queued; 0 when none is.
    oldest_waiting_ns: Arc<AtomicU64>,
}

impl AuditTrail {
    /// Starts the writer on the current runtime, appending through `store`, with a
    /// queue of `queue_max` records.
    pub fn start(
        store: CoreStore,
        queue_max: usize,
        metrics: std::sync::Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(queue_max);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let oldest_waiting_ns = Arc::new(AtomicU64::new(0));
        let writer =
            Writer { store, stopped, metrics, oldest_waiting_ns: oldest_waiting_ns.clone() };
        let writer = tokio::spawn(writer.run(receiver));
        (Self { queue, stop: std::sync::Arc::new(stop), oldest_waiting_ns }, writer)
    }

    /// Tells the writer to refuse new records, append what is queued and stop (await its
    /// join handle to know it has).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Appends `event` and waits until it is durable; returns its sequence number.
    pub async fn record(&self, event: Event<'_>) -> Result<u64, AuditError> {
        let (done, committed) = oneshot::channel();
        let pending = Pending { record: event.into_record(now_ns()), queued: Instant::now(), done };
        match tokio::time::timeout(ENQUEUE_WAIT, self.queue.send(pending)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(AuditError::Stopped),
            Err(_) => return Err(AuditError::QueueFull),
        }
        committed.await.map_err(|_| AuditError::Stopped)?
    }

    /// Records waiting for the writer.
    pub fn depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// How long the oldest record not yet committed has waited (zero when none waits).
    /// The queue is FIFO and the writer takes its oldest records first, so the oldest
    /// waiting record is the first of the batch the writer holds.
    pub fn lag(&self) -> Duration {
        match self.oldest_waiting_ns.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            queued_ns => Duration::from_nanos(now_ns().saturating_sub(queued_ns)),
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

/// The writer task's state.
struct Writer {
    store: CoreStore,
    stopped: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    oldest_waiting_ns: Arc<AtomicU64>,
}

impl Writer {
    /// Appends batches until [`AuditTrail::shutdown`] (then drains the queue) or until
    /// every handle is gone.
    async fn run(mut self, mut receiver: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(AUDIT_APPEND_MAX);
        loop {
            let received = tokio::select! {
                received = receiver.recv_many(&mut batch, AUDIT_APPEND_MAX) => received,
                _ = self.stopped.changed() => {
                    receiver.close();
                    receiver.recv_many(&mut batch, AUDIT_APPEND_MAX).await
                }
            };
            if received == 0 {
                self.oldest_waiting_ns.store(0, Ordering::Relaxed);
                return;
            }
            let oldest = batch.first().map_or(0, |pending| pending.record.at_ns.max(1));
            self.oldest_waiting_ns.store(oldest, Ordering::Relaxed);
            self.append(&mut batch).await;
            if receiver.is_empty() {
                // A record queued after this check has waited next to nothing; the next
                // batch sets the age again.
                self.oldest_waiting_ns.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Appends `batch` (emptying it) and answers each record's waiter.
    async fn append(&self, batch: &mut Vec<Pending>) {
        let records: Vec<NewAuditRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let appended = append_with_retries(&self.store, records).await;
        for (index, pending) in batch.drain(..).enumerate() {
            self.metrics.audit_commit_seconds.observe(pending.queued.elapsed().as_secs_f64());
            let result = match &appended {
                Ok(seqs) => seqs.get(index).copied().ok_or(AuditError::Stopped),
                Err(error) => Err(AuditError::Storage(error.clone())),
            };
            let _ = pending.done.send(result);
        }
        match appended {
            Ok(seqs) => self.metrics.audit_records.inc_by(seqs.len() as u64),
            Err(_) => self.metrics.audit_append_failures.inc(),
        };
    }
}

async fn append_with_retries(
    store: &CoreStore,
    records: Vec<NewAuditRecord>,
) -> Result<Vec<u64>, StoreError> {
    let mut delay = RETRY_DELAY;
    let mut attempt = 1;
    loop {
        match store.append_audit(records.clone()).await {
            Ok(seqs) => return Ok(seqs),
            Err(error) if error.is_retryable() && attempt < APPEND_ATTEMPTS => {
                tracing::warn!(%error, attempt, "appending to the audit trail failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) => {
                tracing::error!(%error, records = records.len(), "appending to the audit trail failed");
                return Err(error);
            }
        }
    }
}
