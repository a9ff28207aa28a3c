//! Tenants (payment networks) and their API keys, as stored.
//!
//! A key has a public id and two forms of its secret, neither in clear: the SHA-256
//! digest (to verify a Bearer key where a flag still allows them) and the HMAC signing
//! secret *sealed* by the gateway (AES-256-GCM under a key-encryption key), which storage
//! keeps as opaque bytes. A tenant has at most [`ACTIVE_KEYS_MAX`] active keys, so that a
//! key can be rotated without downtime; revoked keys stay listed with their revocation
//! time. This module never sees a secret in clear, and its `Debug` output shows neither
//! digests nor sealed secrets.

use std::fmt;

use crate::error::StoreError;
use crate::ledger::TenantId;

/// Most active (not revoked) API keys a tenant may hold at once: the current key and its
/// successor during a rotation.
pub const ACTIVE_KEYS_MAX: usize = 2;
/// Most bytes of a sealed signing secret.
pub const SEALED_SECRET_BYTES_MAX: usize = 1024;
/// Most characters of a key id.
pub const KEY_ID_LEN_MAX: usize = 64;
/// The latest time the stores accept, in Unix seconds (9999-12-31 23:59:59 UTC, within
/// PostgreSQL's `timestamptz`).
pub const TIME_S_MAX: u64 = 253_402_300_799;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// The store-assigned id.
    pub id: TenantId,
    /// A unique human-readable name.
    pub name: String,
}

/// An active API key of a tenant, as the gateway's key cache holds it. `Debug` shows the
/// key id and tenant only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public key id (`pk_...`).
    pub key_id: String,
    /// The tenant the key authenticates.
    pub tenant: TenantId,
    /// SHA-256 of the secret (verifies Bearer keys).
    pub secret_digest: [u8; 32],
    /// The HMAC signing secret, sealed by the gateway; opaque here. Empty for a key stored
    /// before sealed secrets existed (an embedded store of format 1, a PostgreSQL schema
    /// before version 3): such a legacy key can only be used as a Bearer key.
    pub sealed_secret: Vec<u8>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("key_id", &self.key_id)
            .field("tenant", &self.tenant)
            .field("secret_digest", &"[redacted]")
            .field("sealed_secret", &"[redacted]")
            .finish()
    }
}

/// An API key to store. `Debug` shows the key id and creation time only.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The public key id (see [`valid_key_id`]); unique across tenants.
    pub key_id: String,
    /// SHA-256 of the secret.
    pub secret_digest: [u8; 32],
    /// The signing secret sealed by the gateway: 1 to [`SEALED_SECRET_BYTES_MAX`] bytes.
    pub sealed_secret: Vec<u8>,
    /// When the key was made, in Unix seconds (at most [`TIME_S_MAX`]).
    pub created_at_s: u64,
}

impl NewApiKey {
    /// Checks the key's fields against the rules above (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if !valid_key_id(&self.key_id) {
            return Err(StoreError::Invalid(
                "key id must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        if !(1..=SEALED_SECRET_BYTES_MAX).contains(&self.sealed_secret.len()) {
            return Err(StoreError::Invalid("sealed secret must be 1 to 1024 bytes"));
        }
        check_time(self.created_at_s)
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key_id", &self.key_id)
            .field("created_at_s", &self.created_at_s)
            .finish_non_exhaustive()
    }
}

/// A key as an administrator lists it: no digest, no sealed secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The public key id.
    pub key_id: String,
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// When the key was made, in Unix seconds; 0 for a key the embedded store kept from
    /// before format 2 (it did not record the time).
    pub created_at_s: u64,
    /// When the key was revoked, in Unix seconds; `None` while it is active.
    pub revoked_at_s: Option<u64>,
}

/// A tenant to create, with its first API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenant {
    /// The unique name (see [`valid_tenant_name`]).
    pub name: String,
    /// The first key.
    pub key: NewApiKey,
}

impl NewTenant {
    /// Checks the name and the key (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if !valid_tenant_name(&self.name) {
            return Err(StoreError::Invalid(
                "tenant name must be 1-64 characters of a-z, 0-9, '_' and '-'",
            ));
        }
        self.key.check()
    }
}

/// Tenant names: 1 to 64 characters of `[a-z0-9_-]`, starting with a letter or digit.
pub fn valid_tenant_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    (1..=64).contains(&name.len())
        && name.bytes().all(allowed)
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Key ids: 1 to [`KEY_ID_LEN_MAX`] characters of `[A-Za-z0-9_-]` (`crypto::api_key`
/// makes `pk_` and 16 hex digits).
pub fn valid_key_id(key_id: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (1..=KEY_ID_LEN_MAX).contains(&key_id.len()) && key_id.bytes().all(allowed)
}

/// Refuses a time after [`TIME_S_MAX`].
pub(crate) fn check_time(time_s: u64) -> Result<(), StoreError> {
    if time_s <= TIME_S_MAX {
        Ok(())
    } else {
        Err(StoreError::Invalid("times must be at most 9999-12-31T23:59:59Z"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NewApiKey {
        NewApiKey {
            key_id: "pk_0123456789abcdef".into(),
            secret_digest: [1; 32],
            sealed_secret: vec![2; 60],
            created_at_s: 1_900_000_000,
        }
    }

    #[test]
    fn key_rules() {
        assert!(key().check().is_ok());
        let broken: [fn(&mut NewApiKey); 5] = [
            |k| k.key_id.clear(),
            |k| k.key_id = "pk with space".into(),
            |k| k.sealed_secret.clear(),
            |k| k.sealed_secret = vec![0; SEALED_SECRET_BYTES_MAX + 1],
            |k| k.created_at_s = TIME_S_MAX + 1,
        ];
        for breaks in broken {
            let mut bad = key();
            breaks(&mut bad);
            assert!(matches!(bad.check(), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        assert!(valid_key_id(&"k".repeat(KEY_ID_LEN_MAX)));
        assert!(!valid_key_id(&"k".repeat(KEY_ID_LEN_MAX + 1)));
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let record = ApiKeyRecord {
            key_id: "pk_a".into(),
            tenant: 1,
            secret_digest: [0xab; 32],
            sealed_secret: vec![0xcd; 8],
        };
        for text in [format!("{record:?}"), format!("{:?}", key())] {
            assert!(!text.contains("171") && !text.contains("205"), "{text}");
            assert!(!text.contains("[2, 2"), "{text}");
        }
    }
}
