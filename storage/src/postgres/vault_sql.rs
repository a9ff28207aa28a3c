//! The SQL of the vault and consent (migration 0004), prepared once per pooled
//! connection. Times go in as whole Unix seconds (`to_timestamp($n::bigint)`) and come
//! out as `floor(extract(epoch FROM ...))::bigint`; names are `COLLATE "C"` columns, so
//! every `ORDER BY` on them is byte order.

use std::sync::LazyLock;

use super::sql::ACCOUNT_COLUMNS;

/// A new subject; no row when `(tenant, id)` is taken.
pub const INSERT_SUBJECT: &str = "
INSERT INTO subjects (tenant_id, id, created_at, updated_at)
VALUES ($1, $2, to_timestamp($3::bigint), to_timestamp($3::bigint))
ON CONFLICT (tenant_id, id) DO NOTHING";

/// A live subject's wrapped key.
pub const INSERT_SUBJECT_KEY: &str = "
INSERT INTO subject_keys (tenant_id, subject_id, kek_version, wrapped_key) VALUES ($1, $2, $3, $4)";

/// Adds or replaces field values.
pub const UPSERT_FIELDS: &str = "
INSERT INTO subject_fields (tenant_id, subject_id, name, sealed, updated_at)
SELECT $1::bigint, $2::uuid, f.name, f.sealed, to_timestamp(f.at)
FROM unnest($3::text[], $4::bytea[], $5::bigint[]) AS f(name, sealed, at)
ON CONFLICT (tenant_id, subject_id, name)
DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";

/// Blind-index rows (each must name a stored field: `subject_indexes_field_fkey`).
pub const INSERT_INDEXES: &str = "
INSERT INTO subject_indexes (tenant_id, subject_id, field, hmac)
SELECT $1::bigint, $2::uuid, i.field, i.hmac
FROM unnest($3::text[], $4::bytea[]) AS i(field, hmac)";

/// Locks a live subject's row until COMMIT (no row when it is missing or erased).
pub const LOCK_LIVE_SUBJECT: &str = "
SELECT 1 FROM subjects WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL
FOR NO KEY UPDATE";

/// Deletes a subject's blind-index rows of the named fields.
pub const DELETE_FIELD_INDEXES: &str = "
DELETE FROM subject_indexes WHERE tenant_id = $1 AND subject_id = $2 AND field = ANY($3::text[])";

/// Deletes a subject's named field values (their index rows cascade).
pub const DELETE_FIELDS: &str = "
DELETE FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2 AND name = ANY($3::text[])";

/// How many field values a subject holds.
pub const COUNT_FIELDS: &str =
    "SELECT count(*) FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2";

/// Moves a subject's `updated_at`.
pub const TOUCH_SUBJECT: &str =
    "UPDATE subjects SET updated_at = to_timestamp($3::bigint) WHERE tenant_id = $1 AND id = $2";

/// Marks a live subject erased (no row when it is missing or erased already). The row
/// holds no key or value, so its dead tuple holds none either.
pub const MARK_ERASED: &str = "
UPDATE subjects SET erased_at = to_timestamp($3::bigint), updated_at = to_timestamp($3::bigint)
WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL";

/// Deletes every blind-index row of a subject.
pub const DELETE_SUBJECT_INDEXES: &str =
    "DELETE FROM subject_indexes WHERE tenant_id = $1 AND subject_id = $2";

/// Deletes every field value of a subject.
pub const DELETE_SUBJECT_FIELDS: &str =
    "DELETE FROM subject_fields WHERE tenant_id = $1 AND subject_id = $2";

/// Deletes a subject's wrapped key.
pub const DELETE_SUBJECT_KEY: &str =
    "DELETE FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2";

/// A subject with its key and field values, one row per value (one row with NULL field
/// columns when there is none), in one snapshot.
pub const SUBJECT_ROWS: &str = "
SELECT k.kek_version, k.wrapped_key,
       floor(extract(epoch FROM s.created_at))::bigint,
       floor(extract(epoch FROM s.updated_at))::bigint,
       floor(extract(epoch FROM s.erased_at))::bigint,
       f.name, f.sealed, floor(extract(epoch FROM f.updated_at))::bigint
FROM subjects s
LEFT JOIN subject_keys k ON k.tenant_id = s.tenant_id AND k.subject_id = s.id
LEFT JOIN subject_fields f ON f.tenant_id = s.tenant_id AND f.subject_id = s.id
WHERE s.tenant_id = $1 AND s.id = $2
ORDER BY f.name";

/// Subjects by blind index, in id order.
pub const SUBJECTS_BY_INDEX: &str = "
SELECT subject_id FROM subject_indexes WHERE tenant_id = $1 AND field = $2 AND hmac = $3
ORDER BY subject_id LIMIT $4";

/// Field values older than their field's cutoff: one range scan of
/// `subject_fields_by_age` per field, merged in (field, age, tenant, subject) order.
pub const EXPIRED_FIELDS: &str = "
SELECT f.tenant_id, f.subject_id, f.name
FROM unnest($1::text[], $2::bigint[]) AS c(name, cutoff)
CROSS JOIN LATERAL (
    SELECT tenant_id, subject_id, name, updated_at FROM subject_fields
    WHERE name = c.name AND updated_at < to_timestamp(c.cutoff)
    ORDER BY updated_at, tenant_id, subject_id LIMIT $3) f
ORDER BY f.name, f.updated_at, f.tenant_id, f.subject_id
LIMIT $3";

/// Live subjects' keys wrapped by a KEK version below `$1`.
pub const KEYS_WRAPPED_BEFORE: &str = "
SELECT tenant_id, subject_id, wrapped_key FROM subject_keys WHERE kek_version < $1
ORDER BY kek_version, tenant_id, subject_id LIMIT $2";

/// Replaces a wrapped key if it still equals `$3` (compare-and-set).
pub const REWRAP_KEY: &str = "
UPDATE subject_keys SET wrapped_key = $4, kek_version = $5
WHERE tenant_id = $1 AND subject_id = $2 AND wrapped_key = $3";

/// Live and erased subjects (a scan: the report is rare).
pub const SUBJECT_COUNTS: &str = "
SELECT count(*) FILTER (WHERE erased_at IS NULL), count(*) FILTER (WHERE erased_at IS NOT NULL)
FROM subjects";

/// A subject's accounts, in id order (by the partial index `accounts_by_subject`).
pub static ACCOUNTS_OF_SUBJECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a
         WHERE a.tenant_id = $1 AND a.subject_id = $2 ORDER BY a.id LIMIT $3"
    )
});

const CONSENT_COLUMNS: &str = "tenant_id, subject_id, purpose, version, granted, channel, \
    evidence, floor(extract(epoch FROM at))::bigint";

/// A subject's record count, the newest version of purpose `$3` (0 when none) and its
/// state (NULL when none).
pub const CONSENT_TALLY: &str = "
SELECT count(*), coalesce(max(version) FILTER (WHERE purpose = $3), 0),
       (SELECT granted FROM consents
        WHERE tenant_id = $1 AND subject_id = $2 AND purpose = $3
        ORDER BY version DESC LIMIT 1)
FROM consents WHERE tenant_id = $1 AND subject_id = $2";

/// A new consent record.
pub const INSERT_CONSENT: &str = "
INSERT INTO consents (tenant_id, subject_id, purpose, version, granted, channel, evidence, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint))";

/// A subject's records, oldest first.
pub static CONSENT_HISTORY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONSENT_COLUMNS} FROM consents WHERE tenant_id = $1 AND subject_id = $2
         ORDER BY at, purpose, version"
    )
});

/// A subject's newest record per purpose, by purpose.
pub static CURRENT_CONSENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT DISTINCT ON (purpose) {CONSENT_COLUMNS} FROM consents
         WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose, version DESC"
    )
});

/// Current states per purpose: granted, withdrawn (a scan: the report is rare).
pub const CONSENT_COUNTS: &str = "
SELECT purpose, count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted)
FROM (SELECT DISTINCT ON (tenant_id, subject_id, purpose) purpose, granted FROM consents
      ORDER BY tenant_id, subject_id, purpose, version DESC) current
GROUP BY purpose ORDER BY purpose";
