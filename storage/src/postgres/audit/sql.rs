//! The SQL of the audit trail and the compliance registers (migration 5), prepared once per
//! pooled connection. Register times go in as whole Unix seconds (`to_timestamp($n::bigint)`)
//! and come out as `floor(extract(epoch FROM ...))::bigint`.

use std::sync::LazyLock;

/// The trail's columns, in the order `rows::audit_row` reads them.
const AUDIT_COLUMNS: &str = "seq, at_ns, actor_kind, actor_id, role, action, tenant_id, \
    subject_id, purpose, outcome, refusal, request_id, origin, detail, prev_hash, hash";

/// The head, locked until COMMIT: appenders take turns here.
pub const LOCK_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";

/// The head, unlocked.
pub const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// A chained batch, one array per column.
pub static INSERT_RECORDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO audit_records ({AUDIT_COLUMNS})
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                              $6::text[], $7::bigint[], $8::uuid[], $9::text[], $10::text[],
                              $11::text[], $12::text[], $13::text[], $14::bytea[], $15::bytea[],
                              $16::bytea[])"
    )
});

/// Moves the head to the batch's last record.
pub const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// Records after a seq, ascending.
pub static RECORDS_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {AUDIT_COLUMNS} FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2")
});

/// Records about one subject after a seq, ascending (by `audit_records_about`).
pub static RECORDS_ABOUT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_records
         WHERE tenant_id = $1 AND subject_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
    )
});

const DSAR_COLUMNS: &str = "id, tenant_id, subject_id, kind, \
    floor(extract(epoch FROM received_at))::bigint, \
    floor(extract(epoch FROM completed_at))::bigint, outcome";

/// A new request, open.
pub const INSERT_DSAR: &str = "INSERT INTO dsars (tenant_id, subject_id, kind, received_at)
VALUES ($1, $2, $3, to_timestamp($4::bigint)) RETURNING id";

/// Completes an open request (no row when it is missing or completed).
pub const COMPLETE_DSAR: &str = "UPDATE dsars
SET completed_at = to_timestamp($2::bigint), outcome = $3 WHERE id = $1 AND completed_at IS NULL";

/// Every request, newest first.
pub static DSARS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {DSAR_COLUMNS} FROM dsars ORDER BY id DESC LIMIT $1"));

/// Open requests, newest first (by `dsars_open`).
pub static OPEN_DSARS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {DSAR_COLUMNS} FROM dsars WHERE completed_at IS NULL ORDER BY id DESC LIMIT $1")
});

/// Per kind: requests, open, completed, median and longest turnaround in seconds.
pub const DSAR_STATS: &str = "
SELECT kind, count(*), count(*) FILTER (WHERE turnaround IS NULL), count(turnaround),
       floor(percentile_cont(0.5) WITHIN GROUP (ORDER BY turnaround))::bigint,
       max(turnaround)
FROM (SELECT kind, floor(extract(epoch FROM completed_at))::bigint
                   - floor(extract(epoch FROM received_at))::bigint AS turnaround
      FROM dsars) requests
GROUP BY kind";

/// A retention run.
pub const INSERT_RUN: &str = "
INSERT INTO retention_runs (started_at, finished_at, fields_purged, subjects_erased, outcome)
VALUES (to_timestamp($1::bigint), to_timestamp($2::bigint), $3, $4, $5) RETURNING id";

/// Retention runs, newest first.
pub const RUNS: &str = "
SELECT floor(extract(epoch FROM started_at))::bigint, floor(extract(epoch FROM finished_at))::bigint,
       fields_purged, subjects_erased, outcome
FROM retention_runs ORDER BY id DESC LIMIT $1";

/// A key rotation run.
pub const INSERT_ROTATION: &str = "
INSERT INTO key_rotations (rotated_at, kek_id, from_version, to_version, rewrapped, remaining)
VALUES (to_timestamp($1::bigint), $2, $3, $4, $5, $6) RETURNING id";

/// Key rotation runs, newest first.
pub const ROTATIONS: &str = "
SELECT floor(extract(epoch FROM rotated_at))::bigint, kek_id, from_version, to_version,
       rewrapped, remaining
FROM key_rotations ORDER BY id DESC LIMIT $1";

const BREACH_COLUMNS: &str = "id, floor(extract(epoch FROM detected_at))::bigint, reported_by, \
    description, categories, subjects_affected, tenant_id, \
    floor(extract(epoch FROM regulator_notified_at))::bigint, \
    floor(extract(epoch FROM subjects_notified_at))::bigint";

/// A new breach.
pub const INSERT_BREACH: &str = "
INSERT INTO breaches (detected_at, reported_by, description, categories, subjects_affected,
                      tenant_id)
VALUES (to_timestamp($1::bigint), $2, $3, $4, $5, $6) RETURNING id";

/// One breach by id.
pub static BREACH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {BREACH_COLUMNS} FROM breaches WHERE id = $1"));

/// Breaches, newest first.
pub static BREACHES: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {BREACH_COLUMNS} FROM breaches ORDER BY id DESC LIMIT $1"));

/// Records the regulator's notification once.
pub const NOTIFY_REGULATOR: &str = "UPDATE breaches SET regulator_notified_at = \
    to_timestamp($2::bigint) WHERE id = $1 AND regulator_notified_at IS NULL";

/// Records the subjects' notification once.
pub const NOTIFY_SUBJECTS: &str = "UPDATE breaches SET subjects_notified_at = \
    to_timestamp($2::bigint) WHERE id = $1 AND subjects_notified_at IS NULL";
