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
/// Key id -> tenant id (8 bytes LE) followed by the secret's SHA-256 (32 bytes).
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// Named counters: [`META_TIMESTAMP_LAST`], [`META_TENANT_LAST`], [`META_FORMAT`].
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The newest ledger timestamp committed.
pub const META_TIMESTAMP_LAST: &str = "timestamp_last";
/// The newest tenant id assigned.
pub const META_TENANT_LAST: &str = "tenant_last";
/// The on-disk format version.
pub const META_FORMAT: &str = "format_version";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
