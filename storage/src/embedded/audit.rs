//! The audit trail and the compliance registers in the embedded store.
//!
//! Appends and register writes are control jobs on the single writer, each one write
//! transaction: reading the head, chaining the batch after it, writing its rows and index
//! entries and moving the head are atomic, and no other write interleaves. Reads run on the
//! caller's thread; verification reads the whole trail in one read transaction (one
//! snapshot), a batch of rows at a time. Nothing here updates or deletes an audit row.
//!
//! The tables are created by their first write (no format change): a read finds a missing
//! table empty. Rows are `rows`' layouts. Never logs a record's contents.

mod rows;

use crypto::chain::{GENESIS, Hash};
use redb::{
    Key, ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, TableError, Value,
    WriteTransaction,
};

use super::Embedded;
use super::tables::{OPERATORS, TENANTS};
use crate::audit::{
    AuditRecord, AuditVerification, Breach, ChainCheck, DSAR_STATS_SCAN_MAX, Dsar, DsarFilter,
    DsarKind, DsarStats, KeyRotation, NewAuditRecord, NewBreach, NewDsar, Notified, RetentionRun,
    chain, check_batch, check_completion, check_notification, page_limit, verify_batch,
};
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::check_time;
use rows::{
    decode_breach, decode_dsar, decode_head, decode_record, decode_rotation, decode_run,
    encode_breach, encode_dsar, encode_head, encode_record, encode_rotation, encode_run,
};

/// Seq -> audit record row (`rows::encode_record`). Written once, never changed.
const AUDIT_RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_records");
/// `(tenant, subject, seq)` of every record about a subject.
const AUDIT_ABOUT: TableDefinition<(u64, u128, u64), ()> = TableDefinition::new("audit_about");
/// [`HEAD_KEY`] -> the last record's seq and hash (`rows::encode_head`).
const AUDIT_HEAD: TableDefinition<u8, &[u8]> = TableDefinition::new("audit_head");
/// The one key of [`AUDIT_HEAD`].
const HEAD_KEY: u8 = 0;
/// Request id -> data-subject request row.
const DSARS: TableDefinition<u64, &[u8]> = TableDefinition::new("dsars");
/// Ids of the requests not completed yet.
const DSARS_OPEN: TableDefinition<u64, ()> = TableDefinition::new("dsars_open");
/// Breach id -> breach row.
const BREACHES: TableDefinition<u64, &[u8]> = TableDefinition::new("breaches");
/// Run id -> retention run row.
const RETENTION_RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("retention_runs");
/// Run id -> key rotation row.
const KEY_ROTATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("key_rotations");

/// The audit trail.
impl Embedded {
    /// Appends `records` after the head in one write transaction; their seqs.
    pub async fn append_audit(&self, records: Vec<NewAuditRecord>) -> Result<Vec<u64>, StoreError> {
        check_batch(&records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |txn| append(txn, records)).await
    }

    /// Up to `limit` records after `after_seq`, ascending.
    pub fn audit_records(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|txn| match open(txn, AUDIT_RECORDS)? {
            Some(table) => records_after(&table, after_seq, page_limit(limit)),
            None => Ok(Vec::new()),
        })
    }

    /// The last record's seq and hash; `None` for an empty trail.
    pub fn audit_head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        let head = self.read(read_head)?;
        Ok(Some(head).filter(|(seq, _)| *seq > 0))
    }

    /// Up to `limit` records about `subject` of `tenant` after `after_seq`, ascending.
    pub fn audit_records_about(
        &self,
        tenant: TenantId,
        subject: u128,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = page_limit(limit);
        self.read(|txn| records_about(txn, (tenant, subject), after_seq, limit))
    }

    /// Verifies the trail in one read transaction, `batch` rows at a time.
    pub fn verify_audit(&self, batch: usize) -> Result<AuditVerification, StoreError> {
        let batch = verify_batch(batch);
        self.read(|txn| verify(txn, batch))
    }
}

/// Data-subject requests.
impl Embedded {
    /// Records a request, open; [`StoreError::NotFound`] for an unknown tenant.
    pub async fn create_dsar(&self, new: NewDsar) -> Result<Dsar, StoreError> {
        new.check()?;
        self.write(move |txn| create_dsar(txn, new)).await
    }

    /// Completes request `id` once; `false` when there is none or it is completed.
    pub async fn complete_dsar(
        &self,
        id: u64,
        at_s: u64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        check_completion(0, at_s, outcome)?;
        let outcome = outcome.to_owned();
        self.write(move |txn| complete_dsar(txn, id, at_s, outcome)).await
    }

    /// Up to `limit` requests, newest first.
    pub fn dsars(&self, filter: DsarFilter, limit: usize) -> Result<Vec<Dsar>, StoreError> {
        let limit = page_limit(limit);
        self.read(|txn| match filter {
            DsarFilter::All => newest(txn, DSARS, limit, decode_dsar),
            DsarFilter::Open => open_dsars(txn, limit),
        })
    }

    /// Counts and turnaround per kind, of the newest [`DSAR_STATS_SCAN_MAX`] requests.
    pub fn dsar_stats(&self) -> Result<Vec<DsarStats>, StoreError> {
        self.read(dsar_stats)
    }
}

/// Retention runs and key rotations.
impl Embedded {
    /// Records a retention run; its id.
    pub async fn record_retention_run(&self, run: RetentionRun) -> Result<u64, StoreError> {
        run.check()?;
        self.write(move |txn| insert_next(txn, RETENTION_RUNS, &encode_run(&run))).await
    }

    /// Up to `limit` retention runs, newest first.
    pub fn retention_runs(&self, limit: usize) -> Result<Vec<RetentionRun>, StoreError> {
        let limit = page_limit(limit);
        self.read(|txn| newest(txn, RETENTION_RUNS, limit, |_, bytes| decode_run(bytes)))
    }

    /// Records a key rotation run; its id.
    pub async fn record_key_rotation(&self, rotation: KeyRotation) -> Result<u64, StoreError> {
        rotation.check()?;
        self.write(move |txn| insert_next(txn, KEY_ROTATIONS, &encode_rotation(&rotation))).await
    }

    /// Up to `limit` key rotation runs, newest first.
    pub fn key_rotations(&self, limit: usize) -> Result<Vec<KeyRotation>, StoreError> {
        let limit = page_limit(limit);
        self.read(|txn| newest(txn, KEY_ROTATIONS, limit, |_, bytes| decode_rotation(bytes)))
    }
}

/// The breach register.
impl Embedded {
    /// Records a breach; [`StoreError::NotFound`] for an unknown reporter or tenant.
    pub async fn create_breach(&self, new: NewBreach) -> Result<Breach, StoreError> {
        new.check()?;
        self.write(move |txn| create_breach(txn, new)).await
    }

    /// The breach `id`, if it exists.
    pub fn breach(&self, id: u64) -> Result<Option<Breach>, StoreError> {
        self.read(|txn| {
            let Some(table) = open(txn, BREACHES)? else { return Ok(None) };
            let value = table.get(id)?;
            value.map(|bytes| decode_breach(id, bytes.value())).transpose()
        })
    }

    /// Up to `limit` breaches, newest first.
    pub fn breaches(&self, limit: usize) -> Result<Vec<Breach>, StoreError> {
        let limit = page_limit(limit);
        self.read(|txn| newest(txn, BREACHES, limit, decode_breach))
    }

    /// Records that `who` was notified of breach `id` at `at_s`, once.
    pub async fn record_breach_notification(
        &self,
        id: u64,
        who: Notified,
        at_s: u64,
    ) -> Result<bool, StoreError> {
        check_time(at_s)?;
        self.write(move |txn| notify(txn, id, who, at_s)).await
    }
}

/// Opens `table` for reading; `None` when no write has created it yet.
fn open<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The stored head; `(0, GENESIS)` when there is none.
fn stored_head(table: &impl ReadableTable<u8, &'static [u8]>) -> Result<(u64, Hash), StoreError> {
    let value = table.get(HEAD_KEY)?;
    value.map_or(Ok((0, GENESIS)), |bytes| decode_head(bytes.value()))
}

fn read_head(txn: &ReadTransaction) -> Result<(u64, Hash), StoreError> {
    match open(txn, AUDIT_HEAD)? {
        Some(table) => stored_head(&table),
        None => Ok((0, GENESIS)),
    }
}

fn append(txn: &WriteTransaction, entries: Vec<NewAuditRecord>) -> Result<Vec<u64>, StoreError> {
    let mut head = txn.open_table(AUDIT_HEAD)?;
    let records = chain(stored_head(&head)?, entries)?;
    let mut rows = txn.open_table(AUDIT_RECORDS)?;
    let mut about = txn.open_table(AUDIT_ABOUT)?;
    for record in &records {
        if rows.insert(record.seq, encode_record(record).as_slice())?.is_some() {
            return Err(StoreError::Corrupt(format!(
                "audit seq {} is stored already: the head is behind the trail",
                record.seq
            )));
        }
        if let (Some(tenant), Some(subject)) = (record.entry.tenant, record.entry.subject) {
            about.insert((tenant, subject, record.seq), ())?;
        }
    }
    if let Some(last) = records.last() {
        head.insert(HEAD_KEY, encode_head(last.seq, &last.hash).as_slice())?;
    }
    Ok(records.iter().map(|record| record.seq).collect())
}

/// Decodes the row at `seq`, naming the seq if it is corrupt.
fn decode_at(seq: u64, bytes: &[u8]) -> Result<AuditRecord, StoreError> {
    decode_record(bytes).map_err(|error| match error {
        StoreError::Corrupt(what) => StoreError::Corrupt(format!("audit seq {seq}: {what}")),
        other => other,
    })
}

fn records_after(
    table: &impl ReadableTable<u64, &'static [u8]>,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut page = Vec::with_capacity(limit);
    let Some(start) = after_seq.checked_add(1) else { return Ok(page) };
    for entry in table.range(start..)?.take(limit) {
        let (seq, bytes) = entry?;
        page.push(decode_at(seq.value(), bytes.value())?);
    }
    Ok(page)
}

fn records_about(
    txn: &ReadTransaction,
    (tenant, subject): (TenantId, u128),
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (Some(index), Some(rows)) = (open(txn, AUDIT_ABOUT)?, open(txn, AUDIT_RECORDS)?) else {
        return Ok(Vec::new());
    };
    let mut page = Vec::with_capacity(limit);
    let Some(start) = after_seq.checked_add(1) else { return Ok(page) };
    for entry in index.range((tenant, subject, start)..=(tenant, subject, u64::MAX))?.take(limit) {
        let seq = entry?.0.value().2;
        let bytes = rows.get(seq)?.ok_or_else(|| {
            StoreError::Corrupt(format!("the audit index names missing seq {seq}"))
        })?;
        page.push(decode_at(seq, bytes.value())?);
    }
    Ok(page)
}

fn verify(txn: &ReadTransaction, batch: usize) -> Result<AuditVerification, StoreError> {
    let head = read_head(txn)?;
    let mut check = ChainCheck::new();
    if let Some(rows) = open(txn, AUDIT_RECORDS)? {
        loop {
            let page = records_after(&rows, check.last_seq(), batch)?;
            for record in &page {
                if let Err(broken) = check.check(record) {
                    return Ok(broken);
                }
            }
            if page.len() < batch {
                break;
            }
        }
    }
    Ok(check.finish(head))
}

/// The key after `table`'s last (ids start at 1; nothing is ever deleted).
fn next_key(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    let last = table.last()?.map_or(0, |(key, _)| key.value());
    last.checked_add(1).ok_or_else(|| StoreError::Invariant("register id overflow".into()))
}

/// Inserts `row` under the next key of `table`; the key.
fn insert_next(
    txn: &WriteTransaction,
    table: TableDefinition<u64, &[u8]>,
    row: &[u8],
) -> Result<u64, StoreError> {
    let mut table = txn.open_table(table)?;
    let id = next_key(&table)?;
    table.insert(id, row)?;
    Ok(id)
}

/// Up to `limit` rows of `table`, newest (highest key) first, each decoded with its key.
fn newest<T>(
    txn: &ReadTransaction,
    table: TableDefinition<u64, &[u8]>,
    limit: usize,
    decode: impl Fn(u64, &[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let Some(table) = open(txn, table)? else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    for entry in table.iter()?.rev().take(limit) {
        let (id, bytes) = entry?;
        found.push(decode(id.value(), bytes.value())?);
    }
    Ok(found)
}

fn open_dsars(txn: &ReadTransaction, limit: usize) -> Result<Vec<Dsar>, StoreError> {
    let (Some(open_ids), Some(rows)) = (open(txn, DSARS_OPEN)?, open(txn, DSARS)?) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in open_ids.iter()?.rev().take(limit) {
        let id = entry?.0.value();
        let bytes = rows
            .get(id)?
            .ok_or_else(|| StoreError::Corrupt("open index names no request".into()))?;
        found.push(decode_dsar(id, bytes.value())?);
    }
    Ok(found)
}

/// Scans the newest [`DSAR_STATS_SCAN_MAX`] requests, keeping only each kind's
/// turnarounds and open count.
fn dsar_stats(txn: &ReadTransaction) -> Result<Vec<DsarStats>, StoreError> {
    let mut kinds: Vec<(DsarKind, Vec<u64>, u64)> =
        DsarKind::ALL.into_iter().map(|kind| (kind, Vec::new(), 0)).collect();
    if let Some(table) = open(txn, DSARS)? {
        for entry in table.iter()?.rev().take(DSAR_STATS_SCAN_MAX) {
            let (id, bytes) = entry?;
            let dsar = decode_dsar(id.value(), bytes.value())?;
            let Some((_, turnarounds, open)) = kinds.iter_mut().find(|k| k.0 == dsar.kind) else {
                continue;
            };
            match dsar.turnaround_s() {
                Some(turnaround) => turnarounds.push(turnaround),
                None => *open += 1,
            }
        }
    }
    Ok(kinds
        .into_iter()
        .map(|(kind, turnarounds, open)| DsarStats::of(kind, turnarounds, open))
        .collect())
}

fn create_dsar(txn: &WriteTransaction, new: NewDsar) -> Result<Dsar, StoreError> {
    if txn.open_table(TENANTS)?.get(new.tenant)?.is_none() {
        return Err(StoreError::NotFound("tenant"));
    }
    let mut table = txn.open_table(DSARS)?;
    let dsar = Dsar::open(next_key(&table)?, new);
    table.insert(dsar.id, encode_dsar(&dsar).as_slice())?;
    txn.open_table(DSARS_OPEN)?.insert(dsar.id, ())?;
    Ok(dsar)
}

fn complete_dsar(
    txn: &WriteTransaction,
    id: u64,
    at_s: u64,
    outcome: String,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(DSARS)?;
    let stored = table.get(id)?.map(|bytes| decode_dsar(id, bytes.value())).transpose()?;
    let Some(mut dsar) = stored.filter(Dsar::is_open) else { return Ok(false) };
    check_completion(dsar.received_at_s, at_s, &outcome)?;
    dsar.completed_at_s = Some(at_s);
    dsar.outcome = Some(outcome);
    table.insert(id, encode_dsar(&dsar).as_slice())?;
    txn.open_table(DSARS_OPEN)?.remove(id)?;
    Ok(true)
}

fn create_breach(txn: &WriteTransaction, new: NewBreach) -> Result<Breach, StoreError> {
    if txn.open_table(OPERATORS)?.get(new.reported_by)?.is_none() {
        return Err(StoreError::NotFound("operator"));
    }
    if let Some(tenant) = new.tenant
        && txn.open_table(TENANTS)?.get(tenant)?.is_none()
    {
        return Err(StoreError::NotFound("tenant"));
    }
    let mut table = txn.open_table(BREACHES)?;
    let breach = Breach::recorded(next_key(&table)?, new);
    table.insert(breach.id, encode_breach(&breach).as_slice())?;
    Ok(breach)
}

fn notify(txn: &WriteTransaction, id: u64, who: Notified, at_s: u64) -> Result<bool, StoreError> {
    let mut table = txn.open_table(BREACHES)?;
    let stored = table.get(id)?.map(|bytes| decode_breach(id, bytes.value())).transpose()?;
    let Some(mut breach) = stored.filter(|breach| breach.notified_at_s(who).is_none()) else {
        return Ok(false);
    };
    check_notification(breach.detected_at_s, at_s)?;
    breach.notify(who, at_s);
    table.insert(id, encode_breach(&breach).as_slice())?;
    Ok(true)
}
