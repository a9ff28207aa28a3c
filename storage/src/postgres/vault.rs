//! The vault in PostgreSQL (migration 0004): subjects, their wrapped keys, sealed field
//! values and blind indexes, and the accounts a subject owns, on a core's pooled
//! connection ([`Db`]).
//!
//! Every change is one transaction. A create inserts the subject row first (`ON CONFLICT
//! DO NOTHING`: a taken id is [`StoreError::SubjectExists`]); an update or erasure first
//! locks the live subject's row (`FOR NO KEY UPDATE`, or the conditional `UPDATE` that
//! marks it erased), so changes to one subject from any number of gateway processes apply
//! one at a time and none lands after an erasure. A blind index must name a stored field
//! (a foreign key, `ON DELETE CASCADE`), so an index never outlives its value.
//!
//! Erasure DELETEs the key, value and index rows rather than updating them to empty, and
//! the `subjects` row it updates holds no key or value. Deleted tuples stay in the table
//! files until a `VACUUM` (autovacuum, or `VACUUM FULL` to rewrite the files) reclaims
//! them, and backups and WAL archives keep them until they expire (Aurora's point-in-time
//! recovery: 35 days at most; ADR 0008).
//!
//! Never logs or puts in an error a sealed value, a wrapped key, a blind index or a
//! subject id.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement, Transaction};
use uuid::Uuid;

use super::codec::{account_row, bytes_at, db, get, i64_of, id_at, optional_u64_at, u64_at, uuid};
use super::conn::Db;
use super::store::PgCore;
use super::vault_sql as sql;
use crate::error::StoreError;
use crate::ledger::{Account, TenantId};
use crate::tenants::check_time;
use crate::vault::{
    BlindIndex, FIELDS_MAX, FieldValue, IndexEntry, NewSubject, SEALED_FIELD_BYTES_MAX, Subject,
    SubjectCounts, SubjectUpdate, WRAPPED_KEY_BYTES_MAX, check_cutoffs, check_limit,
    check_wrapped_key, index_without_field, too_many_fields, valid_name,
};

/// A subject's key as parameters: `(tenant_id, id)`.
type SubjectParams = (i64, Uuid);

fn params_of(tenant: TenantId, id: u128) -> Result<SubjectParams, StoreError> {
    Ok((i64_of(tenant)?, uuid(id)))
}

/// Stores a new subject with its blind-index rows, in one transaction.
pub async fn create_subject(
    conn: &mut impl Db,
    new: &NewSubject,
    indexes: &[IndexEntry],
) -> Result<(), StoreError> {
    new.check(indexes)?;
    let (insert_subject, insert_key, upsert, insert_indexes) = tokio::try_join!(
        conn.statement(sql::INSERT_SUBJECT),
        conn.statement(sql::INSERT_SUBJECT_KEY),
        conn.statement(sql::UPSERT_FIELDS),
        conn.statement(sql::INSERT_INDEXES),
    )?;
    let (tenant, id) = params_of(new.tenant, new.id)?;
    let txn = conn.transaction().await?;
    let created = [&tenant as &(dyn ToSql + Sync), &id, &i64_of(new.created_at_s)?];
    if txn.execute(&insert_subject, &created).await.map_err(refusal)? == 0 {
        return Err(StoreError::SubjectExists);
    }
    let key = [&tenant as &(dyn ToSql + Sync), &id, &i64::from(new.kek_version), &new.wrapped_key];
    txn.execute(&insert_key, &key).await.map_err(db)?;
    write_fields(&txn, &upsert, (tenant, id), &new.fields).await?;
    write_indexes(&txn, &insert_indexes, (tenant, id), indexes).await?;
    txn.commit().await.map_err(db)
}

/// The subject `(tenant, id)`, if stored.
pub async fn subject(
    conn: &impl Db,
    tenant: TenantId,
    id: u128,
) -> Result<Option<Subject>, StoreError> {
    let statement = conn.statement(sql::SUBJECT_ROWS).await?;
    let (tenant_param, id_param) = params_of(tenant, id)?;
    let rows = conn.client().query(&statement, &[&tenant_param, &id_param]).await.map_err(db)?;
    subject_of_rows(tenant, id, &rows)
}

/// Applies `update` to the live subject under its row lock; `false` when there is none.
pub async fn update_subject_fields(
    conn: &mut impl Db,
    (tenant, id): (TenantId, u128),
    update: &SubjectUpdate,
    now_s: u64,
) -> Result<bool, StoreError> {
    update.check()?;
    check_time(now_s)?;
    let (lock, delete_indexes, delete_fields, upsert, count, insert_indexes, touch) =
        prepare_update(conn).await?;
    let (tenant, id) = params_of(tenant, id)?;
    let txn = conn.transaction().await?;
    if txn.query_opt(&lock, &[&tenant, &id]).await.map_err(db)?.is_none() {
        return Ok(false);
    }
    let reindexed = update.reindexed_fields();
    txn.execute(&delete_indexes, &[&tenant, &id, &reindexed]).await.map_err(db)?;
    if !update.remove.is_empty() {
        txn.execute(&delete_fields, &[&tenant, &id, &update.remove]).await.map_err(db)?;
    }
    write_fields(&txn, &upsert, (tenant, id), &update.set).await?;
    let held = txn.query_one(&count, &[&tenant, &id]).await.map_err(db)?;
    if u64_at(&held, 0, "field count")? > FIELDS_MAX as u64 {
        return Err(too_many_fields());
    }
    write_indexes(&txn, &insert_indexes, (tenant, id), &update.indexes_set).await?;
    let now = i64_of(now_s)?;
    txn.execute(&touch, &[&tenant, &id, &now]).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(true)
}

/// The statements of an update, in the order it runs them.
type UpdateStatements =
    (Statement, Statement, Statement, Statement, Statement, Statement, Statement);

async fn prepare_update(conn: &impl Db) -> Result<UpdateStatements, StoreError> {
    tokio::try_join!(
        conn.statement(sql::LOCK_LIVE_SUBJECT),
        conn.statement(sql::DELETE_FIELD_INDEXES),
        conn.statement(sql::DELETE_FIELDS),
        conn.statement(sql::UPSERT_FIELDS),
        conn.statement(sql::COUNT_FIELDS),
        conn.statement(sql::INSERT_INDEXES),
        conn.statement(sql::TOUCH_SUBJECT),
    )
}

/// Crypto-shreds the live subject at `now_s`; `false` when there is none.
pub async fn erase_subject(
    conn: &mut impl Db,
    (tenant, id): (TenantId, u128),
    now_s: u64,
) -> Result<bool, StoreError> {
    check_time(now_s)?;
    let (mark, delete_indexes, delete_fields, delete_key) = tokio::try_join!(
        conn.statement(sql::MARK_ERASED),
        conn.statement(sql::DELETE_SUBJECT_INDEXES),
        conn.statement(sql::DELETE_SUBJECT_FIELDS),
        conn.statement(sql::DELETE_SUBJECT_KEY),
    )?;
    let (tenant, id) = params_of(tenant, id)?;
    let now = i64_of(now_s)?;
    let txn = conn.transaction().await?;
    if txn.execute(&mark, &[&tenant, &id, &now]).await.map_err(db)? == 0 {
        return Ok(false);
    }
    for delete in [&delete_indexes, &delete_fields, &delete_key] {
        txn.execute(delete, &[&tenant, &id]).await.map_err(db)?;
    }
    txn.commit().await.map_err(db)?;
    Ok(true)
}

/// Up to `limit` ids of `tenant`'s subjects whose `field` has the index `index`.
pub async fn subjects_by_index(
    conn: &impl Db,
    tenant: TenantId,
    field: &str,
    index: BlindIndex,
    limit: usize,
) -> Result<Vec<u128>, StoreError> {
    check_limit(limit)?;
    if !valid_name(field) {
        return Ok(Vec::new());
    }
    let statement = conn.statement(sql::SUBJECTS_BY_INDEX).await?;
    let params: [&(dyn ToSql + Sync); 4] =
        [&i64_of(tenant)?, &field, &index.as_slice(), &limit_param(limit)?];
    let rows = conn.client().query(&statement, &params).await.map_err(db)?;
    rows.iter().map(|row| id_at(row, 0)).collect()
}

/// Up to `limit` field values older than their field's cutoff.
pub async fn expired_fields(
    conn: &impl Db,
    cutoffs: &[(String, u64)],
    limit: usize,
) -> Result<Vec<(TenantId, u128, String)>, StoreError> {
    check_cutoffs(cutoffs)?;
    check_limit(limit)?;
    let statement = conn.statement(sql::EXPIRED_FIELDS).await?;
    let names: Vec<&str> = cutoffs.iter().map(|(name, _)| name.as_str()).collect();
    let times = cutoffs.iter().map(|(_, at)| i64_of(*at)).collect::<Result<Vec<_>, _>>()?;
    let params: [&(dyn ToSql + Sync); 3] = [&names, &times, &limit_param(limit)?];
    let rows = conn.client().query(&statement, &params).await.map_err(db)?;
    rows.iter().map(expired_row).collect()
}

/// Up to `limit` live subjects whose key is wrapped by a KEK version below `kek_version`.
pub async fn subjects_wrapped_before(
    conn: &impl Db,
    kek_version: u32,
    limit: usize,
) -> Result<Vec<(TenantId, u128, Vec<u8>)>, StoreError> {
    check_limit(limit)?;
    let statement = conn.statement(sql::KEYS_WRAPPED_BEFORE).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&i64::from(kek_version), &limit_param(limit)?];
    let rows = conn.client().query(&statement, &params).await.map_err(db)?;
    rows.iter().map(wrapped_row).collect()
}

/// Replaces the live subject's wrapped key if it still equals `expected_old`.
pub async fn rewrap_subject_key(
    conn: &impl Db,
    (tenant, id): (TenantId, u128),
    expected_old: &[u8],
    (new_wrapped, new_version): (&[u8], u32),
) -> Result<bool, StoreError> {
    check_wrapped_key(new_wrapped)?;
    let statement = conn.statement(sql::REWRAP_KEY).await?;
    let (tenant, id) = params_of(tenant, id)?;
    let params: [&(dyn ToSql + Sync); 5] =
        [&tenant, &id, &expected_old, &new_wrapped, &i64::from(new_version)];
    Ok(conn.client().execute(&statement, &params).await.map_err(db)? == 1)
}

/// How many subjects are live and erased.
pub async fn subject_counts(conn: &impl Db) -> Result<SubjectCounts, StoreError> {
    let statement = conn.statement(sql::SUBJECT_COUNTS).await?;
    let row = conn.client().query_one(&statement, &[]).await.map_err(db)?;
    Ok(SubjectCounts { live: u64_at(&row, 0, "live count")?, erased: u64_at(&row, 1, "erased")? })
}

/// Up to `limit` of `tenant`'s accounts owned by `subject`, in id order.
pub async fn accounts_of_subject(
    conn: &impl Db,
    tenant: TenantId,
    subject: u128,
    limit: usize,
) -> Result<Vec<Account>, StoreError> {
    check_limit(limit)?;
    let statement = conn.statement(&sql::ACCOUNTS_OF_SUBJECT).await?;
    let (tenant, subject) = params_of(tenant, subject)?;
    let params: [&(dyn ToSql + Sync); 3] = [&tenant, &subject, &limit_param(limit)?];
    let rows = conn.client().query(&statement, &params).await.map_err(db)?;
    rows.iter().map(|row| account_row(row).map(|(_, account)| account)).collect()
}

/// A listing's limit as bigint.
fn limit_param(limit: usize) -> Result<i64, StoreError> {
    i64::try_from(limit).map_err(|_| StoreError::Invalid("a listing answers at most 10000 rows"))
}

async fn write_fields(
    txn: &Transaction<'_>,
    upsert: &Statement,
    (tenant, id): SubjectParams,
    values: &[FieldValue],
) -> Result<(), StoreError> {
    if values.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    let sealed: Vec<&[u8]> = values.iter().map(|v| v.sealed.as_slice()).collect();
    let times = values.iter().map(|v| i64_of(v.updated_at_s)).collect::<Result<Vec<_>, _>>()?;
    let params: [&(dyn ToSql + Sync); 5] = [&tenant, &id, &names, &sealed, &times];
    txn.execute(upsert, &params).await.map_err(db)?;
    Ok(())
}

async fn write_indexes(
    txn: &Transaction<'_>,
    insert: &Statement,
    (tenant, id): SubjectParams,
    indexes: &[IndexEntry],
) -> Result<(), StoreError> {
    if indexes.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = indexes.iter().map(|e| e.field.as_str()).collect();
    let hmacs: Vec<&[u8]> = indexes.iter().map(|e| e.index.as_slice()).collect();
    let params: [&(dyn ToSql + Sync); 4] = [&tenant, &id, &fields, &hmacs];
    txn.execute(insert, &params).await.map_err(refusal)?;
    Ok(())
}

/// A driver error, with the refusals a client caused named: an unknown tenant, a blind
/// index on a field the subject does not hold.
fn refusal(error: tokio_postgres::Error) -> StoreError {
    let constraint = error.as_db_error().and_then(|e| e.constraint());
    match (error.code(), constraint) {
        (Some(&SqlState::FOREIGN_KEY_VIOLATION), Some("subjects_tenant_fkey")) => {
            StoreError::NotFound("tenant")
        }
        (Some(&SqlState::FOREIGN_KEY_VIOLATION), Some("subject_indexes_field_fkey")) => {
            index_without_field()
        }
        _ => db(error),
    }
}

/// The subject in `rows` (columns of `sql::SUBJECT_ROWS`), if any: a live one has a key,
/// an erased one none.
fn subject_of_rows(
    tenant: TenantId,
    id: u128,
    rows: &[Row],
) -> Result<Option<Subject>, StoreError> {
    let Some(first) = rows.first() else { return Ok(None) };
    let kek_version = optional_u64_at(first, 0, "kek_version")?;
    let wrapped_key = bytes_at(first, 1, WRAPPED_KEY_BYTES_MAX, "wrapped key length")?;
    let erased_at_s = optional_u64_at(first, 4, "subject erased_at")?;
    let kek_version = match (erased_at_s, kek_version) {
        (None, Some(version)) if !wrapped_key.is_empty() => version,
        (Some(_), None) => 0,
        _ => return Err(StoreError::Corrupt("postgres row: subject key for its state".into())),
    };
    let kek_version = u32::try_from(kek_version)
        .map_err(|_| StoreError::Corrupt("postgres row: kek_version out of range".into()))?;
    let mut fields = Vec::new();
    for row in rows {
        fields.extend(field_of_row(row)?);
    }
    Ok(Some(Subject {
        tenant,
        id,
        wrapped_key,
        kek_version,
        fields,
        created_at_s: u64_at(first, 2, "subject created_at")?,
        updated_at_s: u64_at(first, 3, "subject updated_at")?,
        erased_at_s,
    }))
}

/// The field value of one `sql::SUBJECT_ROWS` row; `None` when the subject has none.
fn field_of_row(row: &Row) -> Result<Option<FieldValue>, StoreError> {
    let Some(name) = get::<Option<String>>(row, 5)? else { return Ok(None) };
    let sealed = bytes_at(row, 6, SEALED_FIELD_BYTES_MAX, "sealed value length")?;
    if !valid_name(&name) || sealed.is_empty() {
        return Err(StoreError::Corrupt("postgres row: field value".into()));
    }
    Ok(Some(FieldValue { name, sealed, updated_at_s: u64_at(row, 7, "field updated_at")? }))
}

fn expired_row(row: &Row) -> Result<(TenantId, u128, String), StoreError> {
    Ok((u64_at(row, 0, "tenant id")?, id_at(row, 1)?, get(row, 2)?))
}

fn wrapped_row(row: &Row) -> Result<(TenantId, u128, Vec<u8>), StoreError> {
    let wrapped = bytes_at(row, 2, WRAPPED_KEY_BYTES_MAX, "wrapped key length")?;
    Ok((u64_at(row, 0, "tenant id")?, id_at(row, 1)?, wrapped))
}

/// The vault on this core's read pool.
impl PgCore {
    /// Stores a new subject with its blind-index rows, in one transaction.
    pub async fn create_subject(
        &self,
        new: NewSubject,
        indexes: Vec<IndexEntry>,
    ) -> Result<(), StoreError> {
        create_subject(&mut *self.read_client().await?, &new, &indexes).await
    }

    /// The subject `(tenant, id)`, if stored.
    pub async fn subject(&self, tenant: TenantId, id: u128) -> Result<Option<Subject>, StoreError> {
        subject(&*self.read_client().await?, tenant, id).await
    }

    /// Applies `update` to the live subject at `now_s`; `false` when there is none.
    pub async fn update_subject_fields(
        &self,
        tenant: TenantId,
        id: u128,
        update: SubjectUpdate,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        let conn = &mut *self.read_client().await?;
        update_subject_fields(conn, (tenant, id), &update, now_s).await
    }

    /// Crypto-shreds the live subject at `now_s`; `false` when there is none.
    pub async fn erase_subject(
        &self,
        tenant: TenantId,
        id: u128,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        erase_subject(&mut *self.read_client().await?, (tenant, id), now_s).await
    }

    /// Up to `limit` ids of `tenant`'s subjects whose `field` has the index `index`.
    pub async fn subjects_by_index(
        &self,
        tenant: TenantId,
        field: &str,
        index: BlindIndex,
        limit: usize,
    ) -> Result<Vec<u128>, StoreError> {
        subjects_by_index(&*self.read_client().await?, tenant, field, index, limit).await
    }

    /// Up to `limit` field values older than their field's cutoff.
    pub async fn expired_fields(
        &self,
        cutoffs: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, String)>, StoreError> {
        expired_fields(&*self.read_client().await?, cutoffs, limit).await
    }

    /// Up to `limit` live subjects whose key is wrapped by a KEK version below
    /// `kek_version`.
    pub async fn subjects_wrapped_before(
        &self,
        kek_version: u32,
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, Vec<u8>)>, StoreError> {
        subjects_wrapped_before(&*self.read_client().await?, kek_version, limit).await
    }

    /// Replaces the live subject's wrapped key if it still equals `expected_old`.
    pub async fn rewrap_subject_key(
        &self,
        tenant: TenantId,
        id: u128,
        expected_old: &[u8],
        new_wrapped: &[u8],
        new_version: u32,
    ) -> Result<bool, StoreError> {
        let conn = &*self.read_client().await?;
        rewrap_subject_key(conn, (tenant, id), expected_old, (new_wrapped, new_version)).await
    }

    /// How many subjects are live and erased.
    pub async fn subject_counts(&self) -> Result<SubjectCounts, StoreError> {
        subject_counts(&*self.read_client().await?).await
    }

    /// Up to `limit` of `tenant`'s accounts owned by `subject`, in id order.
    pub async fn accounts_of_subject(
        &self,
        tenant: TenantId,
        subject: u128,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        accounts_of_subject(&*self.read_client().await?, tenant, subject, limit).await
    }
}
