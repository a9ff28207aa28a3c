//! The redb tables of the embedded store. Keys are `(tenant, id)` tuples so that every
//! lookup is scoped to its tenant; values are the fixed-layout records of [`super::codec`].

use redb::TableDefinition;

/// `(tenant, account id)` -> account record.
pub const ACCOUNTS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("accounts");
/// `(tenant, transfer id)` -> transfer record. Immutable once written.
pub const TRANSFERS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("transfers");
/// `(tenant, transfer id)` -> result code of a stored rejection.
pub const FAILURES: TableDefinition<(u64, u128), u8> = TableDefinition::new("failures");
/// `(tenant, pending transfer id)` -> what became of it (posted, voided, expired).
pub const PENDING_STATUSES: TableDefinition<(u64, u128), u8> =
    TableDefinition::new("pending_statuses");
/// `(expires_at ns, tenant, pending transfer id)` for pending transfers still open.
pub const PENDING_EXPIRIES: TableDefinition<(u64, u64, u128), ()> =
    TableDefinition::new("pending_expiries");
/// `(tenant, account id, timestamp)` -> transfer id: an account's history, in order.
pub const ACCOUNT_TRANSFERS: TableDefinition<(u64, u128, u64), u128> =
    TableDefinition::new("account_transfers");
/// Tenant id -> name.
pub const TENANTS: TableDefinition<u64, &str> = TableDefinition::new("tenants");
/// Tenant name -> id, to keep names unique.
pub const TENANT_NAMES: TableDefinition<&str, u64> = TableDefinition::new("tenant_names");
/// Key id -> API key record (`codec::encode_api_key`: tenant, digest, sealed secret,
/// created and revoked times). Format 1 stored `tenant (8 LE) ++ digest (32)` instead;
/// opening a format-1 store rewrites those rows (`super::tenants::upgrade_from_format_1`).
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// `(tenant, key id)` for every key of a tenant, active or revoked (format 2).
pub const TENANT_KEYS: TableDefinition<(u64, &str), ()> = TableDefinition::new("tenant_keys");
/// Operator id -> operator record (`codec::encode_operator`).
pub const OPERATORS: TableDefinition<u64, &[u8]> = TableDefinition::new("operators");
/// Username -> operator id, to keep usernames unique.
pub const OPERATOR_NAMES: TableDefinition<&str, u64> = TableDefinition::new("operator_names");
/// Session id -> session record (`codec::encode_session`).
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// `(expires_at_s, session id)` of every stored session, to purge dead ones in order.
pub const SESSION_EXPIRIES: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("session_expiries");
/// `(operator id, session id)` of every stored session, to revoke an operator's sessions.
pub const OPERATOR_SESSIONS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("operator_sessions");
/// Named counters: [`META_TIMESTAMP_LAST`], [`META_TENANT_LAST`], [`META_OPERATOR_LAST`],
/// [`META_FORMAT`].
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The newest ledger timestamp committed.
pub const META_TIMESTAMP_LAST: &str = "timestamp_last";
/// The newest tenant id assigned.
pub const META_TENANT_LAST: &str = "tenant_last";
/// The newest operator id assigned.
pub const META_OPERATOR_LAST: &str = "operator_last";
/// The on-disk format version.
pub const META_FORMAT: &str = "format_version";
/// The format this build writes and reads. Version 2 (sealed signing secrets, key
/// revocation, operators, sessions) upgrades a version-1 store in place when it opens;
/// an older build refuses a version-2 store.
pub const FORMAT_VERSION: u64 = 2;
/// The format before sealed secrets: API key rows of 40 bytes, no `TENANT_KEYS`.
pub const FORMAT_VERSION_1: u64 = 1;
