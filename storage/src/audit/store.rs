//! The audit trail and the compliance registers on [`CoreStore`], the face the gateway
//! uses: each call goes to the backend (`embedded::audit`, `postgres::audit`), which
//! checks the rules of [`super`] first. Nothing here adds a rule, a cache or a log line.

use crypto::chain::Hash;

use super::{
    AuditRecord, AuditVerification, Breach, Dsar, DsarFilter, DsarStats, KeyRotation,
    NewAuditRecord, NewBreach, NewDsar, Notified, RetentionRun,
};
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::store::CoreStore;

/// The audit trail.
impl CoreStore {
    /// Appends `records` after the head, in order, in one transaction: contiguous seqs,
    /// each hash linked to the one before; the seqs given. At most
    /// [`super::AUDIT_APPEND_MAX`] records; one breaking a rule refuses them all
    /// ([`StoreError::Invalid`]), and nothing is written. Concurrent appends, from any
    /// number of processes on PostgreSQL, never fork the chain. An error after the commit
    /// was sent (a lost connection) leaves it unknown whether the records were appended: a
    /// retry may record them twice, never lose them.
    pub async fn append_audit(&self, records: Vec<NewAuditRecord>) -> Result<Vec<u64>, StoreError> {
        match self {
            Self::Embedded(store) => store.append_audit(records).await,
            Self::Postgres(core) => core.append_audit(records).await,
        }
    }

    /// Up to `limit` records (at most [`super::PAGE_MAX`]) with a seq after `after_seq`,
    /// in ascending order.
    pub async fn audit_records(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            Self::Embedded(store) => store.audit_records(after_seq, limit),
            Self::Postgres(core) => core.audit_records(after_seq, limit).await,
        }
    }

    /// The last record's seq and hash; `None` for an empty trail.
    pub async fn audit_head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        match self {
            Self::Embedded(store) => store.audit_head(),
            Self::Postgres(core) => core.audit_head().await,
        }
    }

    /// Up to `limit` records (at most [`super::PAGE_MAX`]) about `subject` of `tenant`
    /// with a seq after `after_seq`, in ascending order: what a data subject's access
    /// request exports.
    pub async fn audit_records_about(
        &self,
        tenant: TenantId,
        subject: u128,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            Self::Embedded(store) => store.audit_records_about(tenant, subject, after_seq, limit),
            Self::Postgres(core) => {
                core.audit_records_about(tenant, subject, after_seq, limit).await
            }
        }
    }

    /// Verifies the whole trail in one consistent snapshot, reading `batch` records at a
    /// time (1 to [`super::VERIFY_BATCH_MAX`]): seqs contiguous from 1, every link and hash
    /// right, the stored head the last record. [`AuditVerification::Broken`] names the
    /// first record that is not; a record that cannot be decoded at all is
    /// [`StoreError::Corrupt`].
    pub async fn verify_audit(&self, batch: usize) -> Result<AuditVerification, StoreError> {
        match self {
            Self::Embedded(store) => store.verify_audit(batch),
            Self::Postgres(core) => core.verify_audit(batch).await,
        }
    }
}

/// Data-subject requests.
impl CoreStore {
    /// Records a request, open: [`StoreError::NotFound`] (`"tenant"`) for an unknown
    /// tenant, [`StoreError::Invalid`] for a field breaking a rule.
    pub async fn create_dsar(&self, new: NewDsar) -> Result<Dsar, StoreError> {
        match self {
            Self::Embedded(store) => store.create_dsar(new).await,
            Self::Postgres(core) => core.create_dsar(new).await,
        }
    }

    /// Completes request `id` at `at_s` with `outcome` (a code): `true` when it did,
    /// `false` when there is no such request or it was completed already (a request
    /// completes once). [`StoreError::Invalid`] for a time before its receipt.
    pub async fn complete_dsar(
        &self,
        id: u64,
        at_s: u64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.complete_dsar(id, at_s, outcome).await,
            Self::Postgres(core) => core.complete_dsar(id, at_s, outcome).await,
        }
    }

    /// Up to `limit` requests (at most [`super::PAGE_MAX`]), newest first: only the open
    /// ones, or all.
    pub async fn dsars(&self, filter: DsarFilter, limit: usize) -> Result<Vec<Dsar>, StoreError> {
        match self {
            Self::Embedded(store) => store.dsars(filter, limit),
            Self::Postgres(core) => core.dsars(filter, limit).await,
        }
    }

    /// Counts and turnaround per kind, one entry per [`super::DsarKind::ALL`] in that
    /// order (on the embedded store, of the newest [`super::DSAR_STATS_SCAN_MAX`]
    /// requests).
    pub async fn dsar_stats(&self) -> Result<Vec<DsarStats>, StoreError> {
        match self {
            Self::Embedded(store) => store.dsar_stats(),
            Self::Postgres(core) => core.dsar_stats().await,
        }
    }
}

/// Evidence: retention runs and key rotations.
impl CoreStore {
    /// Records a retention run; its store-assigned id.
    pub async fn record_retention_run(&self, run: RetentionRun) -> Result<u64, StoreError> {
        match self {
            Self::Embedded(store) => store.record_retention_run(run).await,
            Self::Postgres(core) => core.record_retention_run(run).await,
        }
    }

    /// Up to `limit` retention runs (at most [`super::PAGE_MAX`]), newest first.
    pub async fn retention_runs(&self, limit: usize) -> Result<Vec<RetentionRun>, StoreError> {
        match self {
            Self::Embedded(store) => store.retention_runs(limit),
            Self::Postgres(core) => core.retention_runs(limit).await,
        }
    }

    /// Records a key rotation run; its store-assigned id.
    pub async fn record_key_rotation(&self, rotation: KeyRotation) -> Result<u64, StoreError> {
        match self {
            Self::Embedded(store) => store.record_key_rotation(rotation).await,
            Self::Postgres(core) => core.record_key_rotation(rotation).await,
        }
    }

    /// Up to `limit` key rotation runs (at most [`super::PAGE_MAX`]), newest first.
    pub async fn key_rotations(&self, limit: usize) -> Result<Vec<KeyRotation>, StoreError> {
        match self {
            Self::Embedded(store) => store.key_rotations(limit),
            Self::Postgres(core) => core.key_rotations(limit).await,
        }
    }
}

/// The breach register (POPIA s.22).
impl CoreStore {
    /// Records a breach: [`StoreError::NotFound`] (`"operator"` or `"tenant"`) when its
    /// reporter or tenant does not exist, [`StoreError::Invalid`] for a field breaking a
    /// rule.
    pub async fn create_breach(&self, new: NewBreach) -> Result<Breach, StoreError> {
        match self {
            Self::Embedded(store) => store.create_breach(new).await,
            Self::Postgres(core) => core.create_breach(new).await,
        }
    }

    /// The breach `id`, if it exists.
    pub async fn breach(&self, id: u64) -> Result<Option<Breach>, StoreError> {
        match self {
            Self::Embedded(store) => store.breach(id),
            Self::Postgres(core) => core.breach(id).await,
        }
    }

    /// Up to `limit` breaches (at most [`super::PAGE_MAX`]), newest first.
    pub async fn breaches(&self, limit: usize) -> Result<Vec<Breach>, StoreError> {
        match self {
            Self::Embedded(store) => store.breaches(limit),
            Self::Postgres(core) => core.breaches(limit).await,
        }
    }

    /// Records that `who` was notified of breach `id` at `at_s`: `true` when it did,
    /// `false` when there is no such breach or that notification was recorded already.
    /// [`StoreError::Invalid`] for a time before the detection.
    pub async fn record_breach_notification(
        &self,
        id: u64,
        who: Notified,
        at_s: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.record_breach_notification(id, who, at_s).await,
            Self::Postgres(core) => core.record_breach_notification(id, who, at_s).await,
        }
    }
}
