//! Tenants and their API keys in the embedded store.
//!
//! Writes run as control jobs on the writer thread, each in one write transaction, so that
//! counting a tenant's active keys and adding one is atomic; reads run on the caller's
//! thread. A tenant's keys are found through `TENANT_KEYS`; a revoked key keeps its row,
//! with its revocation time. Also the in-place upgrade of format-1 key rows.
//!
//! Never stores or formats a secret in clear: keys arrive as digests and sealed secrets.

use redb::{ReadableTable, WriteTransaction};

use super::codec::{StoredApiKey, decode_api_key, decode_api_key_v0, encode_api_key};
use super::tables::{API_KEYS, META_TENANT_LAST, TENANT_KEYS, TENANT_NAMES, TENANTS};
use super::{Embedded, next_id};
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::{
    ACTIVE_KEYS_MAX, ApiKeyInfo, ApiKeyRecord, NewApiKey, NewTenant, Tenant, check_time,
};

impl Embedded {
    /// Creates a tenant with its first API key, in one write transaction.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
        new.check()?;
        self.write(move |txn| create_tenant(txn, new)).await
    }

    /// Every tenant, by id.
    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(TENANTS)?;
            let mut tenants = Vec::new();
            for entry in table.iter()? {
                let (id, name) = entry?;
                tenants.push(Tenant { id: id.value(), name: name.value().to_owned() });
            }
            Ok(tenants)
        })
    }

    /// The tenant `id`, if it exists.
    pub fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        self.read(|txn| {
            let name = txn.open_table(TENANTS)?.get(id)?.map(|name| name.value().to_owned());
            Ok(name.map(|name| Tenant { id, name }))
        })
    }

    /// The tenant named `name`, if it exists.
    pub fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        self.read(|txn| {
            let id = txn.open_table(TENANT_NAMES)?.get(name)?.map(|id| id.value());
            Ok(id.map(|id| Tenant { id, name: name.to_owned() }))
        })
    }

    /// Every active (not revoked) API key, to fill the gateway's key cache.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(API_KEYS)?;
            let mut keys = Vec::new();
            for entry in table.iter()? {
                let (key_id, value) = entry?;
                let key = decode_api_key(key_id.value(), value.value())?;
                if key.revoked_at_s.is_none() {
                    keys.push(key.record);
                }
            }
            Ok(keys)
        })
    }

    /// Every key of `tenant`, active and revoked, oldest first (ties by key id).
    pub fn api_key_infos(&self, tenant: TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.read(|txn| {
            let index = txn.open_table(TENANT_KEYS)?;
            let keys = txn.open_table(API_KEYS)?;
            let mut infos: Vec<ApiKeyInfo> =
                keys_of(&index, &keys, tenant)?.iter().map(StoredApiKey::info).collect();
            infos.sort_by(|a, b| (a.created_at_s, &a.key_id).cmp(&(b.created_at_s, &b.key_id)));
            Ok(infos)
        })
    }

    /// Adds an API key to `tenant`: [`StoreError::NotFound`] for an unknown tenant,
    /// [`StoreError::TooManyKeys`] when it has [`ACTIVE_KEYS_MAX`] active keys already,
    /// [`StoreError::KeyExists`] when the key id is taken. Counting and inserting are one
    /// write transaction.
    pub async fn add_api_key(&self, tenant: TenantId, key: NewApiKey) -> Result<(), StoreError> {
        key.check()?;
        self.write(move |txn| add_api_key(txn, tenant, key)).await
    }

    /// Revokes the active key `key_id` of `tenant` at `now_s`: `true` when it did, `false`
    /// when `tenant` has no such active key (another tenant's key is left alone).
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        check_time(now_s)?;
        let key_id = key_id.to_owned();
        self.write(move |txn| revoke_api_key(txn, tenant, &key_id, now_s)).await
    }
}

fn create_tenant(txn: &WriteTransaction, new: NewTenant) -> Result<Tenant, StoreError> {
    let mut names = txn.open_table(TENANT_NAMES)?;
    if names.get(new.name.as_str())?.is_some() {
        return Err(StoreError::TenantExists(new.name));
    }
    let id = next_id(txn, META_TENANT_LAST)?;
    names.insert(new.name.as_str(), id)?;
    txn.open_table(TENANTS)?.insert(id, new.name.as_str())?;
    insert_key(txn, id, new.key)?;
    Ok(Tenant { id, name: new.name })
}

fn add_api_key(txn: &WriteTransaction, tenant: TenantId, key: NewApiKey) -> Result<(), StoreError> {
    if txn.open_table(TENANTS)?.get(tenant)?.is_none() {
        return Err(StoreError::NotFound("tenant"));
    }
    let index = txn.open_table(TENANT_KEYS)?;
    let keys = txn.open_table(API_KEYS)?;
    let active =
        keys_of(&index, &keys, tenant)?.iter().filter(|k| k.revoked_at_s.is_none()).count();
    if active >= ACTIVE_KEYS_MAX {
        return Err(StoreError::TooManyKeys);
    }
    drop((index, keys));
    insert_key(txn, tenant, key)
}

fn insert_key(txn: &WriteTransaction, tenant: TenantId, key: NewApiKey) -> Result<(), StoreError> {
    let mut keys = txn.open_table(API_KEYS)?;
    if keys.get(key.key_id.as_str())?.is_some() {
        return Err(StoreError::KeyExists);
    }
    let NewApiKey { key_id, secret_digest, sealed_secret, created_at_s } = key;
    let record = ApiKeyRecord { key_id, tenant, secret_digest, sealed_secret };
    let stored = StoredApiKey { record, created_at_s, revoked_at_s: None };
    let key_id = stored.record.key_id.as_str();
    keys.insert(key_id, encode_api_key(&stored).as_slice())?;
    txn.open_table(TENANT_KEYS)?.insert((tenant, key_id), ())?;
    Ok(())
}

fn revoke_api_key(
    txn: &WriteTransaction,
    tenant: TenantId,
    key_id: &str,
    now_s: u64,
) -> Result<bool, StoreError> {
    let mut keys = txn.open_table(API_KEYS)?;
    let stored = keys.get(key_id)?.map(|value| decode_api_key(key_id, value.value()));
    let Some(mut key) = stored.transpose()? else { return Ok(false) };
    if key.record.tenant != tenant || key.revoked_at_s.is_some() {
        return Ok(false);
    }
    key.revoked_at_s = Some(now_s);
    keys.insert(key_id, encode_api_key(&key).as_slice())?;
    Ok(true)
}

/// Every key of `tenant`, through the `TENANT_KEYS` index.
fn keys_of(
    index: &impl ReadableTable<(u64, &'static str), ()>,
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: TenantId,
) -> Result<Vec<StoredApiKey>, StoreError> {
    let mut found = Vec::new();
    for entry in index.range((tenant, "")..)? {
        let (key, _) = entry?;
        let (owner, key_id) = key.value();
        if owner != tenant {
            break;
        }
        let value = keys
            .get(key_id)?
            .ok_or_else(|| StoreError::Corrupt("key index names no key".into()))?;
        found.push(decode_api_key(key_id, value.value())?);
    }
    Ok(found)
}

/// Rewrites every format-1 API key row (`tenant ++ digest`, 40 bytes) in the format-2
/// layout, as an active key without a sealed secret made at an unknown time (0), and
/// fills `TENANT_KEYS`. Returns how many keys it rewrote.
pub(super) fn upgrade_from_format_1(txn: &WriteTransaction) -> Result<usize, StoreError> {
    let mut keys = txn.open_table(API_KEYS)?;
    let mut upgraded = Vec::new();
    for entry in keys.iter()? {
        let (key_id, value) = entry?;
        upgraded.push(decode_api_key_v0(key_id.value(), value.value())?);
    }
    let mut index = txn.open_table(TENANT_KEYS)?;
    for key in &upgraded {
        let key_id = key.record.key_id.as_str();
        keys.insert(key_id, encode_api_key(key).as_slice())?;
        index.insert((key.record.tenant, key_id), ())?;
    }
    Ok(upgraded.len())
}
