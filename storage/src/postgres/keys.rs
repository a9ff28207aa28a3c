//! Tenants and their API keys in PostgreSQL, on a core's pooled connection or the
//! administrative one ([`Db`]).
//!
//! Adding a key locks the tenant's row (`FOR UPDATE`) and counts its active keys in the
//! same transaction, so any number of gateway processes adding keys at once never leave a
//! tenant with more than [`ACTIVE_KEYS_MAX`]. A revoke is one conditional `UPDATE` scoped
//! to the tenant. Keys arrive as digests and sealed secrets: nothing here sees a secret in
//! clear or logs a key.

use tokio_postgres::Transaction;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::codec::{api_key_info_row, api_key_row, db, i64_of, tenant_row, u64_at};
use super::conn::Db;
use super::sql;
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::{
    ACTIVE_KEYS_MAX, ApiKeyInfo, ApiKeyRecord, NewApiKey, NewTenant, Tenant, check_time,
};

/// Creates a tenant with its first key, in one transaction.
pub async fn create_tenant(conn: &mut impl Db, new: NewTenant) -> Result<Tenant, StoreError> {
    new.check()?;
    let (insert_tenant, insert_key) =
        tokio::try_join!(conn.statement(sql::INSERT_TENANT), conn.statement(sql::INSERT_API_KEY))?;
    let txn = conn.transaction().await?;
    let row = match txn.query_one(&insert_tenant, &[&new.name]).await {
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::TenantExists(new.name));
        }
        other => other.map_err(db)?,
    };
    let id = u64_at(&row, 0, "tenant id")?;
    insert(&txn, &insert_key, id, &new.key).await?;
    txn.commit().await.map_err(db)?;
    Ok(Tenant { id, name: new.name })
}

/// Every tenant, by id.
pub async fn tenants(conn: &impl Db) -> Result<Vec<Tenant>, StoreError> {
    let statement = conn.statement(sql::TENANTS).await?;
    let rows = conn.client().query(&statement, &[]).await.map_err(db)?;
    rows.iter().map(tenant_row).collect()
}

/// The tenant `id`, if it exists.
pub async fn tenant(conn: &impl Db, id: TenantId) -> Result<Option<Tenant>, StoreError> {
    let statement = conn.statement(sql::TENANT_BY_ID).await?;
    let row = conn.client().query_opt(&statement, &[&i64_of(id)?]).await.map_err(db)?;
    row.as_ref().map(tenant_row).transpose()
}

/// The tenant named `name`, if it exists.
pub async fn tenant_by_name(conn: &impl Db, name: &str) -> Result<Option<Tenant>, StoreError> {
    let statement = conn.statement(sql::TENANT_BY_NAME).await?;
    let row = conn.client().query_opt(&statement, &[&name]).await.map_err(db)?;
    row.as_ref().map(tenant_row).transpose()
}

/// Every active key (also the gateway's readiness probe: it answers only when the
/// database does).
pub async fn api_keys(conn: &impl Db) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let statement = conn.statement(sql::API_KEYS).await?;
    let rows = conn.client().query(&statement, &[]).await.map_err(db)?;
    rows.iter().map(api_key_row).collect()
}

/// Every key of `tenant`, active and revoked, oldest first (ties by key id).
pub async fn api_key_infos(
    conn: &impl Db,
    tenant: TenantId,
) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let statement = conn.statement(sql::API_KEY_INFOS).await?;
    let rows = conn.client().query(&statement, &[&i64_of(tenant)?]).await.map_err(db)?;
    rows.iter().map(api_key_info_row).collect()
}

/// Adds a key to `tenant` under the tenant row's lock (see the module's doc).
pub async fn add_api_key(
    conn: &mut impl Db,
    tenant: TenantId,
    key: &NewApiKey,
) -> Result<(), StoreError> {
    key.check()?;
    let (lock, count, insert_key) = tokio::try_join!(
        conn.statement(sql::LOCK_TENANT),
        conn.statement(sql::COUNT_ACTIVE_KEYS),
        conn.statement(sql::INSERT_API_KEY),
    )?;
    let tenant_param = i64_of(tenant)?;
    let txn = conn.transaction().await?;
    if txn.query_opt(&lock, &[&tenant_param]).await.map_err(db)?.is_none() {
        return Err(StoreError::NotFound("tenant"));
    }
    let active: i64 = txn.query_one(&count, &[&tenant_param]).await.map_err(db)?.get(0);
    if usize::try_from(active).map_or(true, |active| active >= ACTIVE_KEYS_MAX) {
        return Err(StoreError::TooManyKeys);
    }
    insert(&txn, &insert_key, tenant, key).await?;
    txn.commit().await.map_err(db)
}

/// Revokes `tenant`'s active key `key_id` at `now_s`: `true` when it did.
pub async fn revoke_api_key(
    conn: &impl Db,
    tenant: TenantId,
    key_id: &str,
    now_s: u64,
) -> Result<bool, StoreError> {
    check_time(now_s)?;
    let statement = conn.statement(sql::REVOKE_API_KEY).await?;
    let params: [&(dyn ToSql + Sync); 3] = [&i64_of(tenant)?, &key_id, &i64_of(now_s)?];
    let revoked = conn.client().execute(&statement, &params).await.map_err(db)?;
    Ok(revoked == 1)
}

async fn insert(
    txn: &Transaction<'_>,
    statement: &tokio_postgres::Statement,
    tenant: TenantId,
    key: &NewApiKey,
) -> Result<(), StoreError> {
    let params: [&(dyn ToSql + Sync); 5] = [
        &key.key_id,
        &i64_of(tenant)?,
        &key.secret_digest.as_slice(),
        &key.sealed_secret,
        &i64_of(key.created_at_s)?,
    ];
    match txn.execute(statement, &params).await {
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::KeyExists)
        }
        other => other.map(|_| ()).map_err(db),
    }
}
