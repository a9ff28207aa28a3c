//! Tenants (payment networks) and their API keys, as stored. Only digests of secrets are
//! stored; this module never sees a secret in clear.

use crate::ledger::TenantId;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// The store-assigned id.
    pub id: TenantId,
    /// A unique human-readable name.
    pub name: String,
}

/// An API key of a tenant: its public id and the SHA-256 digest of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public key id (`pk_...`).
    pub key_id: String,
    /// The tenant the key authenticates.
    pub tenant: TenantId,
    /// SHA-256 of the secret.
    pub secret_digest: [u8; 32],
}

/// A tenant to create, with its first API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenant {
    /// The unique name (see [`valid_tenant_name`]).
    pub name: String,
    /// The first key's public id.
    pub key_id: String,
    /// SHA-256 of the first key's secret.
    pub secret_digest: [u8; 32],
}

/// Tenant names: 1 to 64 characters of `[a-z0-9_-]`, starting with a letter or digit.
pub fn valid_tenant_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    (1..=64).contains(&name.len())
        && name.bytes().all(allowed)
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}
