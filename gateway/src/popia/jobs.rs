//! The vault's background jobs, on the main runtime (never on a core):
//!
//! - **Retention** (POPIA s.14), every `--retention-interval-seconds`: field values older
//!   than their field's retention period are purged, at most `--retention-batch-max` a
//!   run; a subject left with no field is erased. Each purge or erasure leaves an audit
//!   record (actor `system`), and each run a retention-run row.
//! - **Key-encryption key rotation**, every `--rewrap-interval-seconds`: subjects' data
//!   keys still wrapped with an older KEK version are re-wrapped with the current one, at
//!   most [`REWRAP_BATCH_MAX`] a run, compare-and-set (a key changed meanwhile is left for
//!   the next run); each run that re-wraps records a key rotation and an audit record.
//! - **Audit-chain verification**, every `--audit-verify-interval-seconds`: the whole
//!   trail is read in pages of [`VERIFY_PAGE_RECORDS`] (memory bounded by one page; one
//!   run at a time, a slow run delays the next) and its hash chain checked; the result
//!   sets `protea_audit_chain_ok` and `protea_audit_chain_verified_timestamp_seconds`
//!   (the alerts in `dashboards/prometheus/alerts.yml` watch both). It writes nothing:
//!   no audit record (the verify route records the operator's verifications), no repair.
//!
//! Several gateway processes may run them at once: every change is atomic and idempotent
//! (a purge of a field already gone changes nothing, a re-wrap is compare-and-set).
//! Nothing here logs personal information: logs and records name fields and counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use storage::audit::{AuditVerification, KeyRotation, RetentionRun};
use storage::ledger::TenantId;
use storage::vault::SubjectUpdate;
use storage::{CoreStore, StoreError};

use crate::app::App;
use crate::audit::{Actor, AuditOutcome, Event};
use crate::popia::seal::subject_aad;
use crate::request::unix_now_s;

/// Records one read of the audit chain holds in memory during a verification.
pub const VERIFY_PAGE_RECORDS: usize = 1000;
/// Most data keys one rotation run re-wraps.
pub const REWRAP_BATCH_MAX: usize = 500;
/// Seconds in a day.
const DAY_S: u64 = 86_400;

/// Runs the retention job every `interval` until the runtime stops.
pub async fn retention(app: Arc<App>, store: CoreStore, interval: Duration, batch_max: usize) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = retention_run(&app, &store, batch_max).await {
            tracing::error!(%error, "retention run failed; the next run retries");
        }
    }
}

/// One retention run: returns (fields purged, subjects erased).
pub async fn retention_run(
    app: &App,
    store: &CoreStore,
    batch_max: usize,
) -> Result<(u64, u64), RunError> {
    let started = unix_now_s();
    let cutoffs: Vec<(String, u64)> = app
        .inventory
        .fields()
        .iter()
        .map(|field| {
            (field.name.clone(), started.saturating_sub(u64::from(field.retention_days) * DAY_S))
        })
        .collect();
    let expired = store.expired_fields(&cutoffs, batch_max).await?;
    let mut by_subject: BTreeMap<(TenantId, u128), Vec<String>> = BTreeMap::new();
    for (tenant, subject, field) in expired {
        by_subject.entry((tenant, subject)).or_default().push(field);
    }
    let (mut purged, mut erased) = (0u64, 0u64);
    for ((tenant, subject), fields) in by_subject {
        let (fields_purged, was_erased) =
            purge(app, store, tenant, subject, fields, started).await?;
        purged += fields_purged;
        erased += u64::from(was_erased);
    }
    let run = RetentionRun {
        started_at_s: started,
        finished_at_s: unix_now_s().max(started),
        fields_purged: purged,
        subjects_erased: erased,
        outcome: "completed".into(),
    };
    store.record_retention_run(run).await?;
    if purged > 0 {
        tracing::info!(fields_purged = purged, subjects_erased = erased, "retention run");
    }
    Ok((purged, erased))
}

/// Purges `fields` of one subject; erases it when none is left.
async fn purge(
    app: &App,
    store: &CoreStore,
    tenant: TenantId,
    subject: u128,
    fields: Vec<String>,
    now: u64,
) -> Result<(u64, bool), RunError> {
    let Some(current) = store.subject(tenant, subject).await? else { return Ok((0, false)) };
    let held: Vec<String> =
        fields.into_iter().filter(|name| current.fields.iter().any(|f| &f.name == name)).collect();
    if held.is_empty() || current.erased_at_s.is_some() {
        return Ok((0, false));
    }
    let count = held.len() as u64;
    if held.len() == current.fields.len() {
        let erased = store.erase_subject(tenant, subject, now).await?;
        record(app, "retention.erase", tenant, subject, held.join(",")).await?;
        return Ok((count, erased));
    }
    let update = SubjectUpdate { remove: held.clone(), ..SubjectUpdate::default() };
    store.update_subject_fields(tenant, subject, update, now).await?;
    record(app, "retention.purge", tenant, subject, held.join(",")).await?;
    Ok((count, false))
}

async fn record(
    app: &App,
    action: &'static str,
    tenant: TenantId,
    subject: u128,
    fields: String,
) -> Result<(), RunError> {
    let mut event = Event::new(Actor::System, action, AuditOutcome::Success);
    event.tenant = Some(tenant);
    event.subject = Some(subject);
    event.detail = fields.into_bytes();
    app.audit.record(event).await?;
    Ok(())
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The audit trail failed.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// Runs the re-wrap job every `interval` until the runtime stops.
pub async fn rewrap(app: Arc<App>, store: CoreStore, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = rewrap_run(&app, &store).await {
            tracing::error!(%error, "data-key re-wrap failed; the next run retries");
        }
    }
}

/// One re-wrap run: returns how many data keys moved to the current KEK version.
pub async fn rewrap_run(app: &App, store: &CoreStore) -> Result<u64, RunError> {
    let keys = app.keys.load();
    let current = keys.kek.current_version();
    let stale = store.subjects_wrapped_before(current, REWRAP_BATCH_MAX).await?;
    if stale.is_empty() {
        return Ok(0);
    }
    let mut rewrapped = 0u64;
    let mut from_version = current;
    for (tenant, subject, wrapped) in stale {
        let aad = subject_aad(tenant, subject);
        let Ok((_, version)) = crypto::envelope::sealed_by(&wrapped) else { continue };
        from_version = from_version.min(version);
        let Ok(new_wrapped) = keys.kek.reseal(&wrapped, &aad) else {
            tracing::warn!(tenant, "a data key does not open with the KEK ring; left as it is");
            continue;
        };
        if store.rewrap_subject_key(tenant, subject, &wrapped, new_wrapped, current).await? {
            rewrapped += 1;
        }
    }
    let remaining = store.subjects_wrapped_before(current, REWRAP_BATCH_MAX).await?.len() as u64;
    if rewrapped > 0 && from_version < current {
        let rotation = KeyRotation {
            at_s: unix_now_s(),
            kek_id: keys.kek.id().to_owned(),
            from_version,
            to_version: current,
            rewrapped,
            remaining,
        };
        store.record_key_rotation(rotation).await?;
        let mut event = Event::new(Actor::System, "key.rewrap", AuditOutcome::Success);
        event.detail =
            format!("{}:{from_version}->{current}:{rewrapped}", keys.kek.id()).into_bytes();
        app.audit.record(event).await?;
        tracing::info!(rewrapped, remaining, to_version = current, "data keys re-wrapped");
    }
    Ok(rewrapped)
}

/// Runs the audit-chain verification every `interval` until the runtime stops.
pub async fn verify_audit_chain(app: Arc<App>, store: CoreStore, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let verified = verify_audit_chain_run(&store).await;
        let intact = match verified {
            Ok(AuditVerification::Intact { .. }) => Some(true),
            Ok(AuditVerification::Broken { seq, reason }) => {
                tracing::error!(first_broken_seq = seq, %reason, "the audit chain is broken");
                Some(false)
            }
            Err(error) => {
                tracing::error!(%error, "verifying the audit chain failed; the next run retries");
                None
            }
        };
        app.metrics.observe_chain_verification(intact, unix_now_s());
    }
}

/// One verification of the whole chain. The embedded store reads its file synchronously,
/// so that read runs on a blocking thread, never on the runtime's workers.
pub async fn verify_audit_chain_run(store: &CoreStore) -> Result<AuditVerification, StoreError> {
    match store {
        CoreStore::Embedded(embedded) => {
            let embedded = embedded.clone();
            tokio::task::spawn_blocking(move || embedded.verify_audit(VERIFY_PAGE_RECORDS))
                .await
                .map_err(|error| {
                    StoreError::Invariant(format!("audit verification task: {error}"))
                })?
        }
        CoreStore::Postgres(_) => store.verify_audit(VERIFY_PAGE_RECORDS).await,
    }
}
