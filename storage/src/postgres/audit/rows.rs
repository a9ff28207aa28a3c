//! Conversions between PostgreSQL rows and the audit trail's and registers' types, and the
//! column arrays a chained batch is inserted with (`UNNEST`). Every value read is
//! range-checked and every record's rules re-checked: a row that does not fit is
//! [`StoreError::Corrupt`], never truncated or unwrapped. Nothing here formats a record.

use crypto::chain::Hash;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};
use uuid::Uuid;

use super::super::codec::{i64_of, u64_at};
use crate::audit::{
    ActorKind, AuditRecord, Breach, Dsar, DsarKind, DsarStats, KeyRotation, NewAuditRecord,
    Outcome, RetentionRun,
};
use crate::error::StoreError;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("postgres row: invalid {what}"))
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| StoreError::Corrupt(format!("postgres row: {e}")))
}

fn optional_u64_at(row: &Row, index: usize, what: &str) -> Result<Option<u64>, StoreError> {
    let value = get::<Option<i64>>(row, index)?;
    value.map(|v| u64::try_from(v).map_err(|_| corrupt(what))).transpose()
}

fn hash_at(row: &Row, index: usize) -> Result<Hash, StoreError> {
    get::<&[u8]>(row, index)?.try_into().map_err(|_| corrupt("hash length"))
}

/// A head row: seq, hash.
pub(super) fn head_row(row: &Row) -> Result<(u64, Hash), StoreError> {
    Ok((u64_at(row, 0, "audit head seq")?, hash_at(row, 1)?))
}

/// An `audit_records` row (columns in `sql::AUDIT_COLUMNS` order), its rules checked.
pub(super) fn audit_row(row: &Row) -> Result<AuditRecord, StoreError> {
    let seq = u64_at(row, 0, "audit seq")?;
    let actor_kind = ActorKind::parse(get(row, 2)?).ok_or_else(|| corrupt("actor kind"))?;
    let outcome = match (get::<&str>(row, 9)?, get::<Option<String>>(row, 10)?) {
        ("success", None) => Outcome::Success,
        ("refused", Some(code)) => Outcome::Refused(code),
        _ => return Err(corrupt("audit outcome")),
    };
    let entry = NewAuditRecord {
        at_ns: u64_at(row, 1, "audit time")?,
        actor_kind,
        actor_id: optional_u64_at(row, 3, "actor id")?,
        role: get(row, 4)?,
        action: get(row, 5)?,
        tenant: optional_u64_at(row, 6, "audit tenant")?,
        subject: get::<Option<Uuid>>(row, 7)?.map(|id| id.as_u128()),
        purpose: get(row, 8)?,
        outcome,
        request_id: get(row, 11)?,
        origin: get(row, 12)?,
        detail: get(row, 13)?,
    };
    entry.check().map_err(|_| StoreError::Corrupt(format!("audit seq {seq}: invalid field")))?;
    Ok(AuditRecord { seq, entry, prev_hash: hash_at(row, 14)?, hash: hash_at(row, 15)? })
}

/// A chained batch as one array per column of `sql::INSERT_RECORDS`.
pub(super) struct AuditColumns<'a> {
    seq: Vec<i64>,
    at_ns: Vec<i64>,
    actor_kind: Vec<&'static str>,
    actor_id: Vec<Option<i64>>,
    role: Vec<Option<&'a str>>,
    action: Vec<&'a str>,
    tenant: Vec<Option<i64>>,
    subject: Vec<Option<Uuid>>,
    purpose: Vec<Option<&'a str>>,
    outcome: Vec<&'static str>,
    refusal: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    origin: Vec<Option<&'a str>>,
    detail: Vec<&'a [u8]>,
    prev_hash: Vec<&'a [u8]>,
    hash: Vec<&'a [u8]>,
}

impl<'a> AuditColumns<'a> {
    /// The columns of `records`.
    pub(super) fn of(records: &'a [AuditRecord]) -> Result<Self, StoreError> {
        let mut columns = Self::with_capacity(records.len());
        for record in records {
            columns.push(record)?;
        }
        Ok(columns)
    }

    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            at_ns: Vec::with_capacity(n),
            actor_kind: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            subject: Vec::with_capacity(n),
            purpose: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            refusal: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            origin: Vec::with_capacity(n),
            detail: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, record: &'a AuditRecord) -> Result<(), StoreError> {
        let entry = &record.entry;
        self.seq.push(i64_of(record.seq)?);
        self.at_ns.push(i64_of(entry.at_ns)?);
        self.actor_kind.push(entry.actor_kind.as_str());
        self.actor_id.push(entry.actor_id.map(i64_of).transpose()?);
        self.role.push(entry.role.as_deref());
        self.action.push(&entry.action);
        self.tenant.push(entry.tenant.map(i64_of).transpose()?);
        self.subject.push(entry.subject.map(Uuid::from_u128));
        self.purpose.push(entry.purpose.as_deref());
        let (outcome, refusal) = match &entry.outcome {
            Outcome::Success => ("success", None),
            Outcome::Refused(code) => ("refused", Some(code.as_str())),
        };
        self.outcome.push(outcome);
        self.refusal.push(refusal);
        self.request_id.push(entry.request_id.as_deref());
        self.origin.push(entry.origin.as_deref());
        self.detail.push(&entry.detail);
        self.prev_hash.push(&record.prev_hash);
        self.hash.push(&record.hash);
        Ok(())
    }

    /// The statement's parameters, `$1` to `$16`.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.seq,
            &self.at_ns,
            &self.actor_kind,
            &self.actor_id,
            &self.role,
            &self.action,
            &self.tenant,
            &self.subject,
            &self.purpose,
            &self.outcome,
            &self.refusal,
            &self.request_id,
            &self.origin,
            &self.detail,
            &self.prev_hash,
            &self.hash,
        ]
    }
}

/// A `dsars` row (columns in `sql::DSAR_COLUMNS` order), its rules checked.
pub(super) fn dsar_row(row: &Row) -> Result<Dsar, StoreError> {
    let kind = DsarKind::parse(get(row, 3)?).ok_or_else(|| corrupt("request kind"))?;
    let dsar = Dsar {
        id: u64_at(row, 0, "request id")?,
        tenant: u64_at(row, 1, "request tenant")?,
        subject: get::<Uuid>(row, 2)?.as_u128(),
        kind,
        received_at_s: u64_at(row, 4, "request received_at")?,
        completed_at_s: optional_u64_at(row, 5, "request completed_at")?,
        outcome: get(row, 6)?,
    };
    dsar.check().map_err(|_| corrupt("request field"))?;
    Ok(dsar)
}

/// A `sql::DSAR_STATS` row (a kind this build does not know is corrupt).
pub(super) fn stats_row(row: &Row) -> Result<DsarStats, StoreError> {
    let kind = DsarKind::parse(get(row, 0)?).ok_or_else(|| corrupt("request kind"))?;
    Ok(DsarStats {
        kind,
        count: u64_at(row, 1, "request count")?,
        open: u64_at(row, 2, "open count")?,
        completed: u64_at(row, 3, "completed count")?,
        median_turnaround_s: optional_u64_at(row, 4, "median turnaround")?,
        max_turnaround_s: optional_u64_at(row, 5, "longest turnaround")?,
    })
}

/// A `retention_runs` row (columns in `sql::RUNS` order), its rules checked.
pub(super) fn run_row(row: &Row) -> Result<RetentionRun, StoreError> {
    let run = RetentionRun {
        started_at_s: u64_at(row, 0, "run started_at")?,
        finished_at_s: u64_at(row, 1, "run finished_at")?,
        fields_purged: u64_at(row, 2, "fields purged")?,
        subjects_erased: u64_at(row, 3, "subjects erased")?,
        outcome: get(row, 4)?,
    };
    run.check().map_err(|_| corrupt("retention run field"))?;
    Ok(run)
}

/// A `key_rotations` row (columns in `sql::ROTATIONS` order), its rules checked.
pub(super) fn rotation_row(row: &Row) -> Result<KeyRotation, StoreError> {
    let version =
        |index, what| u32::try_from(u64_at(row, index, what)?).map_err(|_| corrupt("KEK version"));
    let rotation = KeyRotation {
        at_s: u64_at(row, 0, "rotated_at")?,
        kek_id: get(row, 1)?,
        from_version: version(2, "from_version")?,
        to_version: version(3, "to_version")?,
        rewrapped: u64_at(row, 4, "rewrapped")?,
        remaining: u64_at(row, 5, "remaining")?,
    };
    rotation.check().map_err(|_| corrupt("key rotation field"))?;
    Ok(rotation)
}

/// A `breaches` row (columns in `sql::BREACH_COLUMNS` order), its rules checked.
pub(super) fn breach_row(row: &Row) -> Result<Breach, StoreError> {
    let breach = Breach {
        id: u64_at(row, 0, "breach id")?,
        detected_at_s: u64_at(row, 1, "detected_at")?,
        reported_by: u64_at(row, 2, "reported_by")?,
        description: get(row, 3)?,
        categories: get(row, 4)?,
        subjects_affected: u64_at(row, 5, "subjects affected")?,
        tenant: optional_u64_at(row, 6, "breach tenant")?,
        regulator_notified_at_s: optional_u64_at(row, 7, "regulator_notified_at")?,
        subjects_notified_at_s: optional_u64_at(row, 8, "subjects_notified_at")?,
    };
    breach.check().map_err(|_| corrupt("breach field"))?;
    Ok(breach)
}
