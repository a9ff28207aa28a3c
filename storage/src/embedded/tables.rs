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
/// `(tenant, subject id, account id)` of every account with an owner (format 3): a
/// subject's accounts, for access requests. Written once, when an owned account is
/// created (owners never change); a format-2 store is backfilled when it opens.
pub const ACCOUNT_OWNERS: TableDefinition<(u64, u128, u128), ()> =
    TableDefinition::new("account_owners");
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
/// `(tenant, subject id)` -> subject record (`codec::encode_subject`): times, KEK version
/// and wrapped data key; a tombstone without a key once erased.
pub const SUBJECTS: TableDefinition<(u64, u128), &[u8]> = TableDefinition::new("subjects");
/// `(tenant, subject id, field name)` -> field record (`codec::encode_field`): the sealed
/// value and when it was set.
pub const SUBJECT_FIELDS: TableDefinition<(u64, u128, &str), &[u8]> =
    TableDefinition::new("subject_fields");
/// `(field name, updated_at_s, tenant, subject id)` of every stored field value: the
/// retention job's scan, oldest first per field.
pub const FIELD_AGES: TableDefinition<(&str, u64, u64, u128), ()> =
    TableDefinition::new("field_ages");
/// `(KEK version, tenant, subject id)` of every live subject: the KEK rotation's scan.
pub const KEY_VERSIONS: TableDefinition<(u32, u64, u128), ()> =
    TableDefinition::new("key_versions");
/// `(tenant, field name, blind index, subject id)`: look-ups by blind index.
pub const BLIND_INDEXES: TableDefinition<(u64, &str, [u8; 16], u128), ()> =
    TableDefinition::new("blind_indexes");
/// `(tenant, subject id, field name, blind index)`: a subject's blind-index rows, to
/// delete them with its values.
pub const SUBJECT_INDEXES: TableDefinition<(u64, u128, &str, [u8; 16]), ()> =
    TableDefinition::new("subject_indexes");
/// `(tenant, subject id, purpose, version)` -> consent record (`codec::encode_consent`).
/// Append-only: nothing removes or rewrites a row.
pub const CONSENTS: TableDefinition<(u64, u128, &str, u32), &[u8]> =
    TableDefinition::new("consents");
/// Named counters: [`META_TIMESTAMP_LAST`], [`META_TENANT_LAST`], [`META_OPERATOR_LAST`],
/// [`META_FORMAT`], [`META_SUBJECTS_LIVE`], [`META_SUBJECTS_ERASED`],
/// [`META_ERASURES_UNCOMPACTED`].
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The newest ledger timestamp committed.
pub const META_TIMESTAMP_LAST: &str = "timestamp_last";
/// The newest tenant id assigned.
pub const META_TENANT_LAST: &str = "tenant_last";
/// The newest operator id assigned.
pub const META_OPERATOR_LAST: &str = "operator_last";
/// The on-disk format version.
pub const META_FORMAT: &str = "format_version";
/// Subjects not erased.
pub const META_SUBJECTS_LIVE: &str = "subjects_live";
/// Tombstones of erased subjects.
pub const META_SUBJECTS_ERASED: &str = "subjects_erased";
/// Subjects erased since the file was last compacted (the next open compacts it).
pub const META_ERASURES_UNCOMPACTED: &str = "erasures_uncompacted";
/// The format this build writes and reads. Version 3 (the vault, and `ACCOUNT_OWNERS`)
/// upgrades a version-2 store in place when it opens, and a version-1 store through
/// version 2; an older build refuses a version-3 store.
pub const FORMAT_VERSION: u64 = 3;
/// The format before sealed secrets: API key rows of 40 bytes, no `TENANT_KEYS`.
pub const FORMAT_VERSION_1: u64 = 1;
/// The format before the vault: no `ACCOUNT_OWNERS`.
pub const FORMAT_VERSION_2: u64 = 2;
