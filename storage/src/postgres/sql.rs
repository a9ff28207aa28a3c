//! The SQL of the flush (ADR 0005), of the reads, and of tenants, API keys, operators and
//! sessions (migration 0003), prepared once per connection. Statements take and return
//! the security records' times as whole Unix seconds: `to_timestamp($n::bigint)` in,
//! `floor(extract(epoch FROM ...))::bigint` out.

use std::sync::LazyLock;

/// Claims due pending expiries without waiting on other processes' claims.
pub const CLAIM_EXPIRIES: &str = "
DELETE FROM pending_expiries
WHERE (expires_at, tenant_id, pending_id) IN (
    SELECT expires_at, tenant_id, pending_id FROM pending_expiries
    WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING tenant_id, pending_id";

/// The columns `codec::account_row` reads, of `accounts a`.
pub const ACCOUNT_COLUMNS: &str = "a.tenant_id, a.id, a.ledger, a.code, a.flags, a.user_data, \
    a.subject_id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, \
    a.timestamp";

/// Locks, in key order, the named accounts and the accounts of the named pending transfers.
pub fn lock_accounts() -> String {
    format!(
        "WITH wanted(tenant_id, id) AS (
            SELECT * FROM unnest($1::bigint[], $2::uuid[])
            UNION
            SELECT t.tenant_id, x.account_id
            FROM unnest($3::bigint[], $4::uuid[]) AS p(tenant_id, id)
            JOIN transfers t ON t.tenant_id = p.tenant_id AND t.id = p.id
            CROSS JOIN LATERAL (VALUES (t.debit_account_id), (t.credit_account_id)) AS x(account_id))
        SELECT {ACCOUNT_COLUMNS} FROM accounts a
        JOIN wanted w ON a.tenant_id = w.tenant_id AND a.id = w.id
        ORDER BY a.tenant_id, a.id
        FOR UPDATE OF a"
    )
}

/// One account by key.
pub static GET_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = $1 AND a.id = $2")
});

/// Transfers by key.
pub const READ_TRANSFERS: &str = "
SELECT t.tenant_id, t.id, t.debit_account_id, t.credit_account_id, t.amount, t.pending_id,
       t.user_data, t.ledger, t.code, t.flags, t.timeout_seconds, t.timestamp
FROM transfers t JOIN unnest($1::bigint[], $2::uuid[]) AS k(tenant_id, id)
  ON t.tenant_id = k.tenant_id AND t.id = k.id";

const TRANSFER_COLUMNS: &str = "tenant_id, id, debit_account_id, credit_account_id, amount, \
    pending_id, user_data, ledger, code, flags, timeout_seconds, timestamp";

/// One transfer by key.
pub static GET_TRANSFER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = $1 AND id = $2")
});

/// An account's transfers after a timestamp, oldest first: each side is one range scan
/// of its index (`transfers_by_debit_account`, `transfers_by_credit_account`).
pub static ACCOUNT_TRANSFERS: LazyLock<String> = LazyLock::new(|| {
    let side = |column: &str| {
        format!(
            "(SELECT {TRANSFER_COLUMNS} FROM transfers
              WHERE tenant_id = $1 AND {column} = $2 AND timestamp > $3
              ORDER BY timestamp LIMIT $4)"
        )
    };
    let (debits, credits) = (side("debit_account_id"), side("credit_account_id"));
    format!("SELECT * FROM ({debits} UNION ALL {credits}) page ORDER BY timestamp LIMIT $4")
});

/// Every tenant.
pub const TENANTS: &str = "SELECT id, name FROM tenants ORDER BY id";

/// One tenant by id.
pub const TENANT_BY_ID: &str = "SELECT id, name FROM tenants WHERE id = $1";

/// One tenant by name.
pub const TENANT_BY_NAME: &str = "SELECT id, name FROM tenants WHERE name = $1";

/// Locks a tenant's row until COMMIT, so that its active keys are counted and added by
/// one transaction at a time.
pub const LOCK_TENANT: &str = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE";

/// Every active API key (for the key cache).
pub const API_KEYS: &str = "SELECT key_id, tenant_id, secret_digest, sealed_secret FROM api_keys
WHERE revoked_at IS NULL ORDER BY key_id";

/// How many active keys a tenant has.
pub const COUNT_ACTIVE_KEYS: &str =
    "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL";

/// Every key of a tenant, active and revoked, oldest first.
pub const API_KEY_INFOS: &str = "
SELECT key_id, tenant_id, floor(extract(epoch FROM created_at))::bigint AS created_at_s,
       floor(extract(epoch FROM revoked_at))::bigint
FROM api_keys WHERE tenant_id = $1 ORDER BY created_at_s, key_id";

/// A new tenant.
pub const INSERT_TENANT: &str = "INSERT INTO tenants (name) VALUES ($1) RETURNING id";

/// A new API key.
pub const INSERT_API_KEY: &str = "
INSERT INTO api_keys (key_id, tenant_id, secret_digest, sealed_secret, created_at)
VALUES ($1, $2, $3, $4, to_timestamp($5::bigint))";

/// Revokes a tenant's active key.
pub const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = to_timestamp($3::bigint)
WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL";

const OPERATOR_COLUMNS: &str = "id, username, role, password_phc, totp_sealed, \
    failed_attempts, locked, disabled, totp_last_step, \
    floor(extract(epoch FROM created_at))::bigint";

/// A new operator; no row when the username is taken.
pub static INSERT_OPERATOR: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO operators (username, role, password_phc, totp_sealed, created_at)
         VALUES ($1, $2, $3, $4, to_timestamp($5::bigint))
         ON CONFLICT (username) DO NOTHING RETURNING {OPERATOR_COLUMNS}"
    )
});

/// One operator by id.
pub static OPERATOR_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1"));

/// One operator by id, its row locked until COMMIT.
pub static LOCK_OPERATOR: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1 FOR UPDATE"));

/// One operator by username.
pub static OPERATOR_BY_USERNAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE username = $1"));

/// Every operator, by id.
pub static OPERATORS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id"));

/// A failed sign-in, in one statement (`operators::record_failure`'s rule: one more
/// failure, never past `$2`, locked at `$2`).
pub static RECORD_SIGN_IN_FAILURE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE operators
         SET failed_attempts = least(failed_attempts + 1, $2),
             locked = locked OR failed_attempts + 1 >= $2
         WHERE id = $1 RETURNING {OPERATOR_COLUMNS}"
    )
});

/// A successful sign-in (under the row lock of [`LOCK_OPERATOR`]).
pub const RECORD_SIGN_IN_SUCCESS: &str =
    "UPDATE operators SET failed_attempts = 0, totp_last_step = $2 WHERE id = $1";

/// Clears an operator's lock and failures.
pub const UNLOCK_OPERATOR: &str =
    "UPDATE operators SET locked = false, failed_attempts = 0 WHERE id = $1";

/// Disables or enables an operator.
pub const SET_OPERATOR_DISABLED: &str = "UPDATE operators SET disabled = $2 WHERE id = $1";

/// Replaces an operator's password hash.
pub const SET_OPERATOR_PASSWORD: &str = "UPDATE operators SET password_phc = $2 WHERE id = $1";

const SESSION_COLUMNS: &str = "id, operator_id, role, \
    floor(extract(epoch FROM created_at))::bigint, floor(extract(epoch FROM last_seen))::bigint, \
    floor(extract(epoch FROM expires_at))::bigint, revoked";

/// Deletes up to `$2` sessions whose absolute expiry is at or before `$1`, oldest first
/// (by `operator_sessions_by_expiry`).
pub const PURGE_SESSIONS: &str = "
DELETE FROM operator_sessions WHERE ctid IN (
    SELECT ctid FROM operator_sessions WHERE expires_at <= to_timestamp($1::bigint)
    ORDER BY expires_at LIMIT $2)";

/// A new session; no row when the id is taken.
pub const INSERT_SESSION: &str = "
INSERT INTO operator_sessions (id, operator_id, role, created_at, last_seen, expires_at)
VALUES ($1, $2, $3, to_timestamp($4::bigint), to_timestamp($5::bigint), to_timestamp($6::bigint))
ON CONFLICT (id) DO NOTHING";

/// One session by id.
pub static SESSION_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE id = $1"));

/// Records activity at `$2` if the session is live then and was last seen before it
/// (`Session::touch_applies`; `$3` is `$2` less the idle timeout).
pub static TOUCH_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE operator_sessions SET last_seen = to_timestamp($2::bigint)
         WHERE id = $1 AND NOT revoked AND expires_at > to_timestamp($2::bigint)
           AND last_seen < to_timestamp($2::bigint) AND last_seen >= to_timestamp($3::bigint)
         RETURNING {SESSION_COLUMNS}"
    )
});

/// Revokes one session (a row already revoked counts: it is stored).
pub const REVOKE_SESSION: &str = "UPDATE operator_sessions SET revoked = true WHERE id = $1";

/// Revokes every stored session of an operator.
pub const REVOKE_SESSIONS_OF: &str =
    "UPDATE operator_sessions SET revoked = true WHERE operator_id = $1";

/// Stored rejections by key.
pub const READ_FAILURES: &str = "
SELECT f.tenant_id, f.id, f.result
FROM transfer_failures f JOIN unnest($1::bigint[], $2::uuid[]) AS k(tenant_id, id)
  ON f.tenant_id = k.tenant_id AND f.id = k.id";

/// Pending statuses by key.
pub const READ_STATUSES: &str = "
SELECT s.tenant_id, s.pending_id, s.status
FROM pending_statuses s JOIN unnest($1::bigint[], $2::uuid[]) AS k(tenant_id, id)
  ON s.tenant_id = k.tenant_id AND s.pending_id = k.id";

/// Reserves `$2` timestamps after `max(last, $1 - 1)` (migration 0002: no lock held until
/// COMMIT); returns the new last and the txid.
pub const RESERVE_TIMESTAMPS: &str =
    "SELECT protea_reserve_timestamps($1::bigint, $2::bigint), txid_current()";

/// New accounts.
pub const INSERT_ACCOUNTS: &str = "
INSERT INTO accounts (tenant_id, id, ledger, code, flags, user_data, subject_id,
                      debits_pending, debits_posted, credits_pending, credits_posted, timestamp)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::int[], $5::int[], $6::uuid[],
                     $7::uuid[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                     $12::bigint[])";

/// Changed balances of existing accounts.
pub const UPDATE_BALANCES: &str = "
UPDATE accounts a
SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo
FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
  AS u(tenant_id, id, dp, dpo, cp, cpo)
WHERE a.tenant_id = u.tenant_id AND a.id = u.id";

/// New transfers.
pub const INSERT_TRANSFERS: &str = "
INSERT INTO transfers (tenant_id, id, debit_account_id, credit_account_id, amount, pending_id,
                       user_data, ledger, code, flags, timeout_seconds, timestamp)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::uuid[],
                     $7::uuid[], $8::bigint[], $9::int[], $10::int[], $11::bigint[], $12::bigint[])";

/// Stored rejections (a concurrent identical rejection is already the answer).
pub const INSERT_FAILURES: &str = "
INSERT INTO transfer_failures (tenant_id, id, result)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::smallint[]) ON CONFLICT DO NOTHING";

/// Resolved pending transfers.
pub const INSERT_STATUSES: &str = "
INSERT INTO pending_statuses (tenant_id, pending_id, status)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::smallint[])";

/// Open pending transfers with a timeout.
pub const INSERT_EXPIRIES: &str = "
INSERT INTO pending_expiries (expires_at, tenant_id, pending_id)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::uuid[])";

/// Pending transfers no longer open.
pub const DELETE_EXPIRIES: &str = "
DELETE FROM pending_expiries e USING unnest($1::bigint[], $2::uuid[]) AS d(tenant_id, id)
WHERE e.tenant_id = d.tenant_id AND e.pending_id = d.id";
