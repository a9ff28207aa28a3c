//! The audit trail and the compliance registers in PostgreSQL (migration 5,
//! `0005_audit.sql`), on a core's pooled connection.
//!
//! An append locks the one-row `audit_head` (`FOR UPDATE`), chains its batch after it
//! (`audit::chain`), inserts the batch with one `UNNEST` and moves the head, in one
//! transaction: appenders in any number of processes take turns at the head, so the chain
//! never forks and its seqs have no gap. Verification reads the head and then the trail in
//! batches inside one `REPEATABLE READ READ ONLY` transaction (one snapshot), so records
//! appended meanwhile are neither half-seen nor mistaken for tampering. A register write is
//! one statement; completing a request or recording a notification is a conditional
//! `UPDATE`, so it happens once. Nothing here logs, updates or deletes an audit record.

mod rows;
mod sql;

use crypto::chain::{GENESIS, Hash};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel, Statement};
use uuid::Uuid;

use super::codec::{db, i64_of, u64_at};
use super::conn::Db;
use super::store::PgCore;
use crate::audit::{
    AuditRecord, AuditVerification, BIGINT_MAX, Breach, ChainCheck, Dsar, DsarFilter, DsarKind,
    DsarStats, KeyRotation, NewAuditRecord, NewBreach, NewDsar, Notified, RetentionRun, chain,
    check_batch, check_completion, page_limit, verify_batch,
};
use crate::audit::{COMPLETED_BEFORE_RECEIPT, NOTIFIED_BEFORE_DETECTION};
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::check_time;
use rows::{
    AuditColumns, audit_row, breach_row, dsar_row, head_row, rotation_row, run_row, stats_row,
};

/// The audit trail.
impl PgCore {
    /// Appends `records` after the head, under its row lock, in one transaction.
    pub async fn append_audit(&self, records: Vec<NewAuditRecord>) -> Result<Vec<u64>, StoreError> {
        append(&mut *self.read_client().await?, records).await
    }

    /// Up to `limit` records after `after_seq`, ascending.
    pub async fn audit_records(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(&sql::RECORDS_AFTER).await?;
        page_after(conn.client(), &statement, after_seq, page_limit(limit)).await
    }

    /// The last record's seq and hash; `None` for an empty trail.
    pub async fn audit_head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::HEAD).await?;
        let row = conn.client().query_opt(&statement, &[]).await.map_err(db)?;
        let row = row.ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
        Ok(Some(head_row(&row)?).filter(|(seq, _)| *seq > 0))
    }

    /// Up to `limit` records about `subject` of `tenant` after `after_seq`, ascending.
    pub async fn audit_records_about(
        &self,
        tenant: TenantId,
        subject: u128,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let Ok(tenant) = i64::try_from(tenant) else { return Ok(Vec::new()) };
        let conn = self.read_client().await?;
        let statement = conn.statement(&sql::RECORDS_ABOUT).await?;
        let (after, limit) = (seq_param(after_seq)?, limit_param(limit));
        let params: [&(dyn ToSql + Sync); 4] = [&tenant, &Uuid::from_u128(subject), &after, &limit];
        let rows = conn.client().query(&statement, &params).await.map_err(db)?;
        rows.iter().map(audit_row).collect()
    }

    /// Verifies the trail in one snapshot, `batch` records at a time.
    pub async fn verify_audit(&self, batch: usize) -> Result<AuditVerification, StoreError> {
        verify(&mut *self.read_client().await?, verify_batch(batch)).await
    }
}

/// Data-subject requests.
impl PgCore {
    /// Records a request, open; [`StoreError::NotFound`] for an unknown tenant.
    pub async fn create_dsar(&self, new: NewDsar) -> Result<Dsar, StoreError> {
        new.check()?;
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::INSERT_DSAR).await?;
        let params: [&(dyn ToSql + Sync); 4] = [
            &i64_of(new.tenant)?,
            &Uuid::from_u128(new.subject),
            &new.kind.as_str(),
            &i64_of(new.received_at_s)?,
        ];
        let row = conn.client().query_one(&statement, &params).await.map_err(refusal)?;
        Ok(Dsar::open(u64_at(&row, 0, "request id")?, new))
    }

    /// Completes request `id` once; `false` when there is none or it is completed.
    pub async fn complete_dsar(
        &self,
        id: u64,
        at_s: u64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        check_completion(0, at_s, outcome)?;
        let Ok(id) = i64::try_from(id) else { return Ok(false) };
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::COMPLETE_DSAR).await?;
        let params: [&(dyn ToSql + Sync); 3] = [&id, &i64_of(at_s)?, &outcome];
        match conn.client().execute(&statement, &params).await {
            Err(error) if error.code() == Some(&SqlState::CHECK_VIOLATION) => {
                Err(StoreError::Invalid(COMPLETED_BEFORE_RECEIPT))
            }
            other => Ok(other.map_err(db)? == 1),
        }
    }

    /// Up to `limit` requests, newest first.
    pub async fn dsars(&self, filter: DsarFilter, limit: usize) -> Result<Vec<Dsar>, StoreError> {
        let conn = self.read_client().await?;
        let sql: &str = match filter {
            DsarFilter::Open => &sql::OPEN_DSARS,
            DsarFilter::All => &sql::DSARS,
        };
        let statement = conn.statement(sql).await?;
        let rows = conn.client().query(&statement, &[&limit_param(limit)]).await.map_err(db)?;
        rows.iter().map(dsar_row).collect()
    }

    /// Counts and turnaround per kind, aggregated in SQL over every request.
    pub async fn dsar_stats(&self) -> Result<Vec<DsarStats>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::DSAR_STATS).await?;
        let rows = conn.client().query(&statement, &[]).await.map_err(db)?;
        let found = rows.iter().map(stats_row).collect::<Result<Vec<_>, _>>()?;
        let of_kind = |kind| found.iter().copied().find(|stats: &DsarStats| stats.kind == kind);
        let none = |kind| DsarStats::of(kind, Vec::new(), 0);
        Ok(DsarKind::ALL
            .into_iter()
            .map(|kind| of_kind(kind).unwrap_or_else(|| none(kind)))
            .collect())
    }
}

/// Retention runs and key rotations.
impl PgCore {
    /// Records a retention run; its id.
    pub async fn record_retention_run(&self, run: RetentionRun) -> Result<u64, StoreError> {
        run.check()?;
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::INSERT_RUN).await?;
        let params: [&(dyn ToSql + Sync); 5] = [
            &i64_of(run.started_at_s)?,
            &i64_of(run.finished_at_s)?,
            &i64_of(run.fields_purged)?,
            &i64_of(run.subjects_erased)?,
            &run.outcome,
        ];
        let row = conn.client().query_one(&statement, &params).await.map_err(db)?;
        u64_at(&row, 0, "run id")
    }

    /// Up to `limit` retention runs, newest first.
    pub async fn retention_runs(&self, limit: usize) -> Result<Vec<RetentionRun>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::RUNS).await?;
        let rows = conn.client().query(&statement, &[&limit_param(limit)]).await.map_err(db)?;
        rows.iter().map(run_row).collect()
    }

    /// Records a key rotation run; its id.
    pub async fn record_key_rotation(&self, rotation: KeyRotation) -> Result<u64, StoreError> {
        rotation.check()?;
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::INSERT_ROTATION).await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &i64_of(rotation.at_s)?,
            &rotation.kek_id,
            &i64::from(rotation.from_version),
            &i64::from(rotation.to_version),
            &i64_of(rotation.rewrapped)?,
            &i64_of(rotation.remaining)?,
        ];
        let row = conn.client().query_one(&statement, &params).await.map_err(db)?;
        u64_at(&row, 0, "rotation id")
    }

    /// Up to `limit` key rotation runs, newest first.
    pub async fn key_rotations(&self, limit: usize) -> Result<Vec<KeyRotation>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::ROTATIONS).await?;
        let rows = conn.client().query(&statement, &[&limit_param(limit)]).await.map_err(db)?;
        rows.iter().map(rotation_row).collect()
    }
}

/// The breach register.
impl PgCore {
    /// Records a breach; [`StoreError::NotFound`] for an unknown reporter or tenant.
    pub async fn create_breach(&self, new: NewBreach) -> Result<Breach, StoreError> {
        new.check()?;
        let conn = self.read_client().await?;
        let statement = conn.statement(sql::INSERT_BREACH).await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &i64_of(new.detected_at_s)?,
            &i64_of(new.reported_by)?,
            &new.description,
            &new.categories,
            &i64_of(new.subjects_affected)?,
            &new.tenant.map(i64_of).transpose()?,
        ];
        let row = conn.client().query_one(&statement, &params).await.map_err(refusal)?;
        Ok(Breach::recorded(u64_at(&row, 0, "breach id")?, new))
    }

    /// The breach `id`, if it exists.
    pub async fn breach(&self, id: u64) -> Result<Option<Breach>, StoreError> {
        let Ok(id) = i64::try_from(id) else { return Ok(None) };
        let conn = self.read_client().await?;
        let statement = conn.statement(&sql::BREACH).await?;
        let row = conn.client().query_opt(&statement, &[&id]).await.map_err(db)?;
        row.as_ref().map(breach_row).transpose()
    }

    /// Up to `limit` breaches, newest first.
    pub async fn breaches(&self, limit: usize) -> Result<Vec<Breach>, StoreError> {
        let conn = self.read_client().await?;
        let statement = conn.statement(&sql::BREACHES).await?;
        let rows = conn.client().query(&statement, &[&limit_param(limit)]).await.map_err(db)?;
        rows.iter().map(breach_row).collect()
    }

    /// Records that `who` was notified of breach `id` at `at_s`, once.
    pub async fn record_breach_notification(
        &self,
        id: u64,
        who: Notified,
        at_s: u64,
    ) -> Result<bool, StoreError> {
        check_time(at_s)?;
        let Ok(id) = i64::try_from(id) else { return Ok(false) };
        let conn = self.read_client().await?;
        let sql = match who {
            Notified::Regulator => sql::NOTIFY_REGULATOR,
            Notified::Subjects => sql::NOTIFY_SUBJECTS,
        };
        let statement = conn.statement(sql).await?;
        let params: [&(dyn ToSql + Sync); 2] = [&id, &i64_of(at_s)?];
        match conn.client().execute(&statement, &params).await {
            Err(error) if error.code() == Some(&SqlState::CHECK_VIOLATION) => {
                Err(StoreError::Invalid(NOTIFIED_BEFORE_DETECTION))
            }
            other => Ok(other.map_err(db)? == 1),
        }
    }
}

async fn append(conn: &mut impl Db, entries: Vec<NewAuditRecord>) -> Result<Vec<u64>, StoreError> {
    check_batch(&entries)?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let (lock, insert, move_head) = tokio::try_join!(
        conn.statement(sql::LOCK_HEAD),
        conn.statement(&sql::INSERT_RECORDS),
        conn.statement(sql::MOVE_HEAD),
    )?;
    let txn = conn.transaction().await?;
    let head = txn.query_opt(&lock, &[]).await.map_err(db)?;
    let head = head.ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
    let records = chain(head_row(&head)?, entries)?;
    let Some(last) = records.last() else { return Ok(Vec::new()) };
    let columns = AuditColumns::of(&records)?;
    let (insert_params, last_seq) = (columns.params(), i64_of(last.seq)?);
    let head_params: [&(dyn ToSql + Sync); 2] = [&last_seq, &last.hash.as_slice()];
    let written = tokio::try_join!(
        txn.execute(&insert, &insert_params),
        txn.execute(&move_head, &head_params),
    );
    match written {
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::Corrupt(
                "an audit seq after the head is stored already: the head is behind the trail"
                    .into(),
            ));
        }
        other => other.map_err(db)?,
    };
    txn.commit().await.map_err(db)?;
    Ok(records.iter().map(|record| record.seq).collect())
}

async fn verify(conn: &mut impl Db, batch: usize) -> Result<AuditVerification, StoreError> {
    let (head, page) =
        tokio::try_join!(conn.statement(sql::HEAD), conn.statement(&sql::RECORDS_AFTER))?;
    let snapshot = conn.client_mut().build_transaction();
    let snapshot = snapshot.isolation_level(IsolationLevel::RepeatableRead).read_only(true);
    let txn = snapshot.start().await.map_err(db)?;
    let head = txn.query_opt(&head, &[]).await.map_err(db)?;
    let head = head.as_ref().map(head_row).transpose()?.unwrap_or((0, GENESIS));
    let mut check = ChainCheck::new();
    loop {
        let records = page_after(&txn, &page, check.last_seq(), batch).await?;
        for record in &records {
            if let Err(broken) = check.check(record) {
                return Ok(broken);
            }
        }
        if records.len() < batch {
            break;
        }
    }
    txn.commit().await.map_err(db)?;
    Ok(check.finish(head))
}

/// Up to `limit` records after `after_seq` with `statement` ([`sql::RECORDS_AFTER`]).
async fn page_after(
    client: &impl GenericClient,
    statement: &Statement,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let params: [&(dyn ToSql + Sync); 2] = [&seq_param(after_seq)?, &limit_param(limit)];
    let rows = client.query(statement, &params).await.map_err(db)?;
    rows.iter().map(audit_row).collect()
}

/// A seq as bigint; past the largest one there is nothing to find.
fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64_of(seq.min(BIGINT_MAX))
}

/// A limit cut to [`crate::audit::PAGE_MAX`], as bigint.
fn limit_param(limit: usize) -> i64 {
    i64::try_from(page_limit(limit)).unwrap_or(0)
}

/// An insert's error: a missing tenant or reporter is [`StoreError::NotFound`].
fn refusal(error: tokio_postgres::Error) -> StoreError {
    if error.code() != Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        return db(error);
    }
    match error.as_db_error().and_then(|error| error.constraint()) {
        Some("breaches_reporter_exists") => StoreError::NotFound("operator"),
        _ => StoreError::NotFound("tenant"),
    }
}
