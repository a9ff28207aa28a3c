//! The vault in the embedded store: subjects, their field values and blind indexes, and
//! the ledger accounts a subject owns (through `ACCOUNT_OWNERS`, which the writer fills
//! when an owned account is created and the format-3 upgrade backfills).
//!
//! Writes are control jobs on the writer thread, each one write transaction, so a create,
//! update or erasure is whole or not at all; reads run on the caller's thread. The
//! retention and KEK-rotation queries are range scans of their own index tables
//! (`FIELD_AGES`, `KEY_VERSIONS`), and the subject counts are counters in `META`.
//!
//! Erasure removes the subject's key, field and index rows, and rewrites its record as a
//! tombstone. redb never overwrites a freed page, so the old bytes stay in the file until
//! the page is reused; each erasure counts in `META_ERASURES_UNCOMPACTED`, and the next
//! open compacts the file ([`compact_after_erasures`]), which in practice rewrites or cuts
//! off the freed pages (the erasure dump test checks the file's bytes; redb does not
//! promise it). Copies of the file taken before keep the bytes until they are destroyed.
//!
//! Never logs or puts in an error a sealed value, a wrapped key, a blind index or a
//! subject id.

use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use super::Embedded;
use super::codec::{
    SubjectRecord, decode_account, decode_field, decode_subject, encode_field, encode_subject,
};
use super::tables::{
    ACCOUNT_OWNERS, ACCOUNTS, BLIND_INDEXES, CONSENTS, FIELD_AGES, KEY_VERSIONS, META,
    META_ERASURES_UNCOMPACTED, META_SUBJECTS_ERASED, META_SUBJECTS_LIVE, SUBJECT_FIELDS,
    SUBJECT_INDEXES, SUBJECTS, TENANTS,
};
use crate::error::StoreError;
use crate::ledger::{Account, TenantId};
use crate::tenants::check_time;
use crate::vault::{
    BlindIndex, FIELDS_MAX, FieldValue, IndexEntry, NewSubject, Subject, SubjectCounts,
    SubjectUpdate, check_cutoffs, check_limit, check_wrapped_key, index_without_field,
    too_many_fields,
};

impl Embedded {
    /// Stores a new subject with its blind-index rows, in one write transaction.
    pub async fn create_subject(
        &self,
        new: NewSubject,
        indexes: Vec<IndexEntry>,
    ) -> Result<(), StoreError> {
        new.check(&indexes)?;
        self.write(move |txn| create_subject(txn, new, &indexes)).await
    }

    /// The subject `(tenant, id)`, if stored (a tombstone once erased).
    pub fn subject(&self, tenant: TenantId, id: u128) -> Result<Option<Subject>, StoreError> {
        self.read(|txn| {
            let Some(bytes) = txn.open_table(SUBJECTS)?.get((tenant, id))? else {
                return Ok(None);
            };
            let record = decode_subject(bytes.value())?;
            let fields = fields_of(&txn.open_table(SUBJECT_FIELDS)?, (tenant, id))?;
            Ok(Some(record.into_subject(tenant, id, fields)))
        })
    }

    /// Applies `update` to the live subject at `now_s`; `false` when there is none.
    pub async fn update_subject_fields(
        &self,
        tenant: TenantId,
        id: u128,
        update: SubjectUpdate,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        update.check()?;
        check_time(now_s)?;
        self.write(move |txn| update_subject(txn, (tenant, id), &update, now_s)).await
    }

    /// Crypto-shreds the live subject at `now_s`; `false` when there is none.
    pub async fn erase_subject(
        &self,
        tenant: TenantId,
        id: u128,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        check_time(now_s)?;
        self.write(move |txn| erase_subject(txn, (tenant, id), now_s)).await
    }

    /// Up to `limit` ids of `tenant`'s subjects whose `field` has the index `index`.
    pub fn subjects_by_index(
        &self,
        tenant: TenantId,
        field: &str,
        index: BlindIndex,
        limit: usize,
    ) -> Result<Vec<u128>, StoreError> {
        check_limit(limit)?;
        self.read(|txn| {
            let table = txn.open_table(BLIND_INDEXES)?;
            let range = (tenant, field, index, 0)..=(tenant, field, index, u128::MAX);
            let mut ids = Vec::new();
            for entry in table.range(range)?.take(limit) {
                ids.push(entry?.0.value().3);
            }
            Ok(ids)
        })
    }

    /// Up to `limit` field values older than their field's cutoff (see
    /// `CoreStore::expired_fields`).
    pub fn expired_fields(
        &self,
        cutoffs: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, String)>, StoreError> {
        check_cutoffs(cutoffs)?;
        check_limit(limit)?;
        let mut sorted: Vec<&(String, u64)> = cutoffs.iter().collect();
        sorted.sort_unstable();
        self.read(|txn| {
            let ages = txn.open_table(FIELD_AGES)?;
            let mut expired = Vec::new();
            for (name, cutoff_s) in sorted {
                let range = (name.as_str(), 0, 0, 0)..(name.as_str(), *cutoff_s, 0, 0);
                for entry in ages.range(range)?.take(limit - expired.len()) {
                    let (_, _, tenant, subject) = entry?.0.value();
                    expired.push((tenant, subject, name.clone()));
                }
            }
            Ok(expired)
        })
    }

    /// Up to `limit` live subjects whose key is wrapped by a KEK version below
    /// `kek_version`, with the wrapped key.
    pub fn subjects_wrapped_before(
        &self,
        kek_version: u32,
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, Vec<u8>)>, StoreError> {
        check_limit(limit)?;
        self.read(|txn| {
            let versions = txn.open_table(KEY_VERSIONS)?;
            let subjects = txn.open_table(SUBJECTS)?;
            let mut found = Vec::new();
            for entry in versions.range(..(kek_version, 0, 0))?.take(limit) {
                let (_, tenant, id) = entry?.0.value();
                let record = live_record(&subjects, (tenant, id))?.ok_or_else(|| {
                    StoreError::Corrupt("key version index names no live subject".into())
                })?;
                found.push((tenant, id, record.wrapped_key));
            }
            Ok(found)
        })
    }

    /// Replaces the live subject's wrapped key if it still equals `expected_old`.
    pub async fn rewrap_subject_key(
        &self,
        tenant: TenantId,
        id: u128,
        expected_old: Vec<u8>,
        new_wrapped: Vec<u8>,
        new_version: u32,
    ) -> Result<bool, StoreError> {
        check_wrapped_key(&new_wrapped)?;
        let rewrap = Rewrap { expected_old, new_wrapped, new_version };
        self.write(move |txn| rewrap_key(txn, (tenant, id), rewrap)).await
    }

    /// How many subjects are live and erased.
    pub fn subject_counts(&self) -> Result<SubjectCounts, StoreError> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            let live = meta.get(META_SUBJECTS_LIVE)?.map_or(0, |v| v.value());
            let erased = meta.get(META_SUBJECTS_ERASED)?.map_or(0, |v| v.value());
            Ok(SubjectCounts { live, erased })
        })
    }

    /// Up to `limit` of `tenant`'s accounts owned by `subject`, in id order.
    pub fn accounts_of_subject(
        &self,
        tenant: TenantId,
        subject: u128,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        check_limit(limit)?;
        self.read(|txn| {
            let owners = txn.open_table(ACCOUNT_OWNERS)?;
            let accounts = txn.open_table(ACCOUNTS)?;
            let mut owned = Vec::new();
            for entry in
                owners.range((tenant, subject, 0)..=(tenant, subject, u128::MAX))?.take(limit)
            {
                let (_, _, account_id) = entry?.0.value();
                let bytes = accounts.get((tenant, account_id))?.ok_or_else(|| {
                    StoreError::Corrupt("account owner index names no account".into())
                })?;
                owned.push(decode_account(bytes.value())?);
            }
            Ok(owned)
        })
    }
}

/// A subject's key: `(tenant, subject id)`.
type SubjectKey = (TenantId, u128);

/// A compare-and-set of a wrapped key.
struct Rewrap {
    expected_old: Vec<u8>,
    new_wrapped: Vec<u8>,
    new_version: u32,
}

fn create_subject(
    txn: &WriteTransaction,
    new: NewSubject,
    indexes: &[IndexEntry],
) -> Result<(), StoreError> {
    let key = (new.tenant, new.id);
    if txn.open_table(TENANTS)?.get(new.tenant)?.is_none() {
        return Err(StoreError::NotFound("tenant"));
    }
    let mut subjects = txn.open_table(SUBJECTS)?;
    if subjects.get(key)?.is_some() {
        return Err(StoreError::SubjectExists);
    }
    let NewSubject { wrapped_key, kek_version, fields, created_at_s, .. } = new;
    let updated_at_s = created_at_s;
    let record =
        SubjectRecord { created_at_s, updated_at_s, erased_at_s: None, kek_version, wrapped_key };
    subjects.insert(key, encode_subject(&record).as_slice())?;
    txn.open_table(KEY_VERSIONS)?.insert((kek_version, key.0, key.1), ())?;
    let mut values = FieldTables::open(txn)?;
    fields.iter().try_for_each(|value| values.set(key, value))?;
    let mut index_rows = IndexTables::open(txn)?;
    indexes.iter().try_for_each(|entry| index_rows.insert(key, entry))?;
    count_up(txn, META_SUBJECTS_LIVE)
}

fn update_subject(
    txn: &WriteTransaction,
    key: SubjectKey,
    update: &SubjectUpdate,
    now_s: u64,
) -> Result<bool, StoreError> {
    let mut subjects = txn.open_table(SUBJECTS)?;
    let Some(mut record) = live_record(&subjects, key)? else { return Ok(false) };
    let mut index_rows = IndexTables::open(txn)?;
    for field in update.reindexed_fields() {
        index_rows.remove_field(key, &field)?;
    }
    let mut values = FieldTables::open(txn)?;
    update.remove.iter().try_for_each(|name| values.remove(key, name))?;
    update.set.iter().try_for_each(|value| values.set(key, value))?;
    let held = values.names(key)?;
    if held.len() > FIELDS_MAX {
        return Err(too_many_fields());
    }
    if !update.indexes_set.iter().all(|entry| held.contains(&entry.field)) {
        return Err(index_without_field());
    }
    update.indexes_set.iter().try_for_each(|entry| index_rows.insert(key, entry))?;
    record.updated_at_s = now_s;
    subjects.insert(key, encode_subject(&record).as_slice())?;
    Ok(true)
}

fn erase_subject(txn: &WriteTransaction, key: SubjectKey, now_s: u64) -> Result<bool, StoreError> {
    let mut subjects = txn.open_table(SUBJECTS)?;
    let Some(record) = live_record(&subjects, key)? else { return Ok(false) };
    IndexTables::open(txn)?.remove_subject(key)?;
    let mut values = FieldTables::open(txn)?;
    for name in values.names(key)? {
        values.remove(key, &name)?;
    }
    txn.open_table(KEY_VERSIONS)?.remove((record.kek_version, key.0, key.1))?;
    let tombstone = SubjectRecord {
        created_at_s: record.created_at_s,
        updated_at_s: now_s,
        erased_at_s: Some(now_s),
        kek_version: 0,
        wrapped_key: Vec::new(),
    };
    subjects.insert(key, encode_subject(&tombstone).as_slice())?;
    count_down(txn, META_SUBJECTS_LIVE)?;
    count_up(txn, META_SUBJECTS_ERASED)?;
    count_up(txn, META_ERASURES_UNCOMPACTED)?;
    Ok(true)
}

fn rewrap_key(txn: &WriteTransaction, key: SubjectKey, rewrap: Rewrap) -> Result<bool, StoreError> {
    let mut subjects = txn.open_table(SUBJECTS)?;
    let Some(mut record) = live_record(&subjects, key)? else { return Ok(false) };
    if record.wrapped_key != rewrap.expected_old {
        return Ok(false);
    }
    let mut versions = txn.open_table(KEY_VERSIONS)?;
    versions.remove((record.kek_version, key.0, key.1))?;
    versions.insert((rewrap.new_version, key.0, key.1), ())?;
    record.kek_version = rewrap.new_version;
    record.wrapped_key = rewrap.new_wrapped;
    subjects.insert(key, encode_subject(&record).as_slice())?;
    Ok(true)
}

/// The record of the subject `key` if it is stored and not erased.
pub(super) fn live_record(
    subjects: &impl ReadableTable<(u64, u128), &'static [u8]>,
    key: SubjectKey,
) -> Result<Option<SubjectRecord>, StoreError> {
    let Some(bytes) = subjects.get(key)? else { return Ok(None) };
    let record = decode_subject(bytes.value())?;
    Ok(record.erased_at_s.is_none().then_some(record))
}

/// The field values of subject `key`, by name.
fn fields_of(
    table: &impl ReadableTable<(u64, u128, &'static str), &'static [u8]>,
    (tenant, id): SubjectKey,
) -> Result<Vec<FieldValue>, StoreError> {
    let mut fields = Vec::new();
    for entry in table.range((tenant, id, "")..)? {
        let (key, bytes) = entry?;
        let (owner, subject, name) = key.value();
        if (owner, subject) != (tenant, id) {
            break;
        }
        fields.push(decode_field(name, bytes.value())?);
    }
    Ok(fields)
}

/// The field values and their ages, kept together.
struct FieldTables<'txn> {
    fields: Table<'txn, (u64, u128, &'static str), &'static [u8]>,
    ages: Table<'txn, (&'static str, u64, u64, u128), ()>,
}

impl<'txn> FieldTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self { fields: txn.open_table(SUBJECT_FIELDS)?, ages: txn.open_table(FIELD_AGES)? })
    }

    /// Adds or replaces a value (and moves its age entry).
    fn set(&mut self, (tenant, id): SubjectKey, value: &FieldValue) -> Result<(), StoreError> {
        let name = value.name.as_str();
        let replaced = self.fields.insert((tenant, id, name), encode_field(value).as_slice())?;
        let previous = replaced.map(|bytes| decode_field(name, bytes.value())).transpose()?;
        if let Some(previous) = previous {
            self.ages.remove((name, previous.updated_at_s, tenant, id))?;
        }
        self.ages.insert((name, value.updated_at_s, tenant, id), ())?;
        Ok(())
    }

    /// Removes a value and its age entry, if stored.
    fn remove(&mut self, (tenant, id): SubjectKey, name: &str) -> Result<(), StoreError> {
        let removed = self.fields.remove((tenant, id, name))?;
        let previous = removed.map(|bytes| decode_field(name, bytes.value())).transpose()?;
        if let Some(previous) = previous {
            self.ages.remove((name, previous.updated_at_s, tenant, id))?;
        }
        Ok(())
    }

    /// The names of the subject's values, in order.
    fn names(&self, (tenant, id): SubjectKey) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for entry in self.fields.range((tenant, id, "")..)? {
            let (key, _) = entry?;
            let (owner, subject, name) = key.value();
            if (owner, subject) != (tenant, id) {
                break;
            }
            names.push(name.to_owned());
        }
        Ok(names)
    }
}

/// The blind-index rows, by value and by subject, kept together.
struct IndexTables<'txn> {
    by_value: Table<'txn, (u64, &'static str, BlindIndex, u128), ()>,
    by_subject: Table<'txn, (u64, u128, &'static str, BlindIndex), ()>,
}

impl<'txn> IndexTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            by_value: txn.open_table(BLIND_INDEXES)?,
            by_subject: txn.open_table(SUBJECT_INDEXES)?,
        })
    }

    fn insert(&mut self, (tenant, id): SubjectKey, entry: &IndexEntry) -> Result<(), StoreError> {
        let field = entry.field.as_str();
        self.by_value.insert((tenant, field, entry.index, id), ())?;
        self.by_subject.insert((tenant, id, field, entry.index), ())?;
        Ok(())
    }

    /// Removes the subject's rows of `field`.
    fn remove_field(&mut self, (tenant, id): SubjectKey, field: &str) -> Result<(), StoreError> {
        let range = (tenant, id, field, [0; 16])..=(tenant, id, field, [u8::MAX; 16]);
        let mut indexes = Vec::new();
        for entry in self.by_subject.range(range)? {
            indexes.push(entry?.0.value().3);
        }
        for index in indexes {
            self.remove_row((tenant, id), field, index)?;
        }
        Ok(())
    }

    /// Removes every row of the subject.
    fn remove_subject(&mut self, (tenant, id): SubjectKey) -> Result<(), StoreError> {
        let mut rows = Vec::new();
        for entry in self.by_subject.range((tenant, id, "", [0; 16])..)? {
            let (key, _) = entry?;
            let (owner, subject, field, index) = key.value();
            if (owner, subject) != (tenant, id) {
                break;
            }
            rows.push((field.to_owned(), index));
        }
        for (field, index) in rows {
            self.remove_row((tenant, id), &field, index)?;
        }
        Ok(())
    }

    fn remove_row(
        &mut self,
        (tenant, id): SubjectKey,
        field: &str,
        index: BlindIndex,
    ) -> Result<(), StoreError> {
        self.by_subject.remove((tenant, id, field, index))?;
        self.by_value.remove((tenant, field, index, id))?;
        Ok(())
    }
}

/// Adds one to the named counter in `META`.
fn count_up(txn: &WriteTransaction, counter: &str) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let value = meta.get(counter)?.map_or(0, |v| v.value());
    let next = value.checked_add(1).ok_or_else(|| counter_broken(counter))?;
    meta.insert(counter, next)?;
    Ok(())
}

/// Takes one from the named counter in `META`.
fn count_down(txn: &WriteTransaction, counter: &str) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let value = meta.get(counter)?.map_or(0, |v| v.value());
    let next = value.checked_sub(1).ok_or_else(|| counter_broken(counter))?;
    meta.insert(counter, next)?;
    Ok(())
}

fn counter_broken(counter: &str) -> StoreError {
    StoreError::Invariant(format!("the {counter} counter left its range"))
}

/// Creates the vault's tables and `ACCOUNT_OWNERS` (in the opening transaction).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ACCOUNT_OWNERS)?;
    txn.open_table(SUBJECTS)?;
    txn.open_table(SUBJECT_FIELDS)?;
    txn.open_table(FIELD_AGES)?;
    txn.open_table(KEY_VERSIONS)?;
    txn.open_table(BLIND_INDEXES)?;
    txn.open_table(SUBJECT_INDEXES)?;
    txn.open_table(CONSENTS)?;
    Ok(())
}

/// Fills `ACCOUNT_OWNERS` from every stored account with an owner (the format 2 -> 3
/// upgrade, in the opening transaction). Returns how many it indexed.
pub(super) fn backfill_account_owners(txn: &WriteTransaction) -> Result<usize, StoreError> {
    let mut owned = Vec::new();
    for entry in txn.open_table(ACCOUNTS)?.iter()? {
        let (key, bytes) = entry?;
        let (tenant, id) = key.value();
        let account = decode_account(bytes.value())?;
        if account.subject_id != 0 {
            owned.push((tenant, account.subject_id, id));
        }
    }
    let mut owners = txn.open_table(ACCOUNT_OWNERS)?;
    for row in &owned {
        owners.insert(*row, ())?;
    }
    Ok(owned.len())
}

/// Compacts the file when subjects were erased since it last was, so that the pages their
/// bytes were freed from are rewritten or cut off; then clears the count. Runs at open,
/// before any other transaction (compaction needs the database to itself).
pub(super) fn compact_after_erasures(db: &mut Database) -> Result<(), StoreError> {
    let erasures = {
        let txn = db.begin_read().map_err(StoreError::from)?;
        txn.open_table(META)?.get(META_ERASURES_UNCOMPACTED)?.map_or(0, |v| v.value())
    };
    if erasures == 0 {
        return Ok(());
    }
    let compacting = |e: redb::CompactionError| StoreError::Io(format!("compacting: {e}"));
    while db.compact().map_err(compacting)? {}
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(META_ERASURES_UNCOMPACTED, 0)?;
    txn.commit()?;
    tracing::info!(erasures, "embedded store compacted after erasures");
    Ok(())
}
