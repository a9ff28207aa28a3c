//! Conversions between PostgreSQL rows and the store's types (ledger records, tenants, API
//! keys, operators, sessions), and the column arrays the flush writes with `UNNEST`.
//! Every value read is range-checked: a row that does not fit the store's types is
//! reported as corrupt, never truncated or unwrapped. Nothing here formats a secret, a
//! username or a session id, not even in an error.

use std::collections::HashSet;

use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::error::StoreError;
use crate::ledger::{
    Account, AccountFlags, Changes, Key, PendingStatus, ResultCode, State, Transfer, TransferFlags,
};
use crate::operators::{
    FAILED_ATTEMPTS_MAX, Operator, PASSWORD_PHC_BYTES_MAX, Role, TOTP_SEALED_BYTES_MAX,
    valid_username,
};
use crate::sessions::{FIELD_BYTES_MAX, Session};
use crate::tenants::{ApiKeyInfo, ApiKeyRecord, SEALED_SECRET_BYTES_MAX, Tenant};

/// A driver error, with the server's SQLSTATE and message.
pub fn db(error: tokio_postgres::Error) -> StoreError {
    if pool::pg::is_certificate_rejection(&error) {
        return StoreError::Refused(format!("postgres: {}", pool::pg::describe(&error)));
    }
    StoreError::Io(format!("postgres: {}", pool::pg::describe(&error)))
}

/// A failed connection attempt, described (never with the URL or password).
pub fn connect_error(error: pool::pg::ConnectError) -> StoreError {
    match error {
        pool::pg::ConnectError::Postgres(error) => db(error),
        other => StoreError::Io(format!("postgres: {other}")),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("postgres row: {what} out of range"))
}

/// A u64 as bigint.
pub fn i64_of(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| corrupt("value above bigint"))
}

/// An id as uuid.
pub fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

/// An optional id (zero means absent) as a nullable uuid.
pub fn uuid_or_null(id: u128) -> Option<Uuid> {
    (id != 0).then(|| Uuid::from_u128(id))
}

/// The value at `index`, of the type asked for.
pub fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| StoreError::Corrupt(format!("postgres row: {e}")))
}

/// The bigint at `index` as a u64 (`what` names it in the error).
pub fn u64_at(row: &Row, index: usize, what: &str) -> Result<u64, StoreError> {
    u64::try_from(get::<i64>(row, index)?).map_err(|_| corrupt(what))
}

/// The uuid at `index` as an id (NULL is 0).
pub fn id_at(row: &Row, index: usize) -> Result<u128, StoreError> {
    Ok(get::<Option<Uuid>>(row, index)?.map_or(0, |u| u.as_u128()))
}

fn key_at(row: &Row) -> Result<Key, StoreError> {
    Ok(Key::new(u64_at(row, 0, "tenant")?, id_at(row, 1)?))
}

/// `(tenant_id, id)` as a key.
pub fn key_row(row: &Row) -> Result<Key, StoreError> {
    key_at(row)
}

/// An `accounts` row (columns in `sql::GET_ACCOUNT` order).
pub fn account_row(row: &Row) -> Result<(Key, Account), StoreError> {
    let flags = u16::try_from(get::<i32>(row, 4)?).ok().and_then(AccountFlags::from_bits);
    let account = Account {
        id: id_at(row, 1)?,
        ledger: u32::try_from(get::<i64>(row, 2)?).map_err(|_| corrupt("ledger"))?,
        code: u16::try_from(get::<i32>(row, 3)?).map_err(|_| corrupt("code"))?,
        flags: flags.ok_or_else(|| corrupt("account flags"))?,
        user_data: id_at(row, 5)?,
        subject_id: id_at(row, 6)?,
        debits_pending: u64_at(row, 7, "debits_pending")?,
        debits_posted: u64_at(row, 8, "debits_posted")?,
        credits_pending: u64_at(row, 9, "credits_pending")?,
        credits_posted: u64_at(row, 10, "credits_posted")?,
        timestamp: u64_at(row, 11, "timestamp")?,
    };
    Ok((key_at(row)?, account))
}

/// A `transfers` row (columns in `sql::READ_TRANSFERS` order).
pub fn transfer_row(row: &Row) -> Result<(Key, Transfer), StoreError> {
    let flags = u16::try_from(get::<i32>(row, 9)?).ok().and_then(TransferFlags::from_bits);
    let transfer = Transfer {
        id: id_at(row, 1)?,
        debit_account_id: id_at(row, 2)?,
        credit_account_id: id_at(row, 3)?,
        amount: u64_at(row, 4, "amount")?,
        pending_id: id_at(row, 5)?,
        user_data: id_at(row, 6)?,
        ledger: u32::try_from(get::<i64>(row, 7)?).map_err(|_| corrupt("ledger"))?,
        code: u16::try_from(get::<i32>(row, 8)?).map_err(|_| corrupt("code"))?,
        flags: flags.ok_or_else(|| corrupt("transfer flags"))?,
        timeout_seconds: u32::try_from(get::<i64>(row, 10)?).map_err(|_| corrupt("timeout"))?,
        timestamp: u64_at(row, 11, "timestamp")?,
    };
    Ok((key_at(row)?, transfer))
}

/// A `transfer_failures` row.
pub fn failure_row(row: &Row) -> Result<(Key, ResultCode), StoreError> {
    let code = u8::try_from(get::<i16>(row, 2)?).ok().and_then(ResultCode::from_byte);
    Ok((key_at(row)?, code.ok_or_else(|| corrupt("result code"))?))
}

/// A `pending_statuses` row.
pub fn status_row(row: &Row) -> Result<(Key, PendingStatus), StoreError> {
    let status = u8::try_from(get::<i16>(row, 2)?).ok().and_then(PendingStatus::from_byte);
    Ok((key_at(row)?, status.ok_or_else(|| corrupt("pending status"))?))
}

/// The nullable bigint at `index` as a u64 (`what` names it in the error).
pub fn optional_u64_at(row: &Row, index: usize, what: &str) -> Result<Option<u64>, StoreError> {
    let value = get::<Option<i64>>(row, index)?;
    value.map(|v| u64::try_from(v).map_err(|_| corrupt(what))).transpose()
}

/// The nullable bytea at `index` (NULL is empty), at most `len_max` bytes.
pub fn bytes_at(
    row: &Row,
    index: usize,
    len_max: usize,
    what: &str,
) -> Result<Vec<u8>, StoreError> {
    let bytes = get::<Option<&[u8]>>(row, index)?.unwrap_or_default();
    if bytes.len() > len_max {
        return Err(corrupt(what));
    }
    Ok(bytes.to_vec())
}

fn text_at(row: &Row, index: usize, len_max: usize, what: &str) -> Result<String, StoreError> {
    let text = get::<&str>(row, index)?;
    if text.is_empty() || text.len() > len_max {
        return Err(corrupt(what));
    }
    Ok(text.to_owned())
}

/// A `tenants` row: id, name.
pub fn tenant_row(row: &Row) -> Result<Tenant, StoreError> {
    Ok(Tenant { id: u64_at(row, 0, "tenant id")?, name: get(row, 1)? })
}

/// An `api_keys` row (columns in `sql::API_KEYS` order); a key without a sealed secret
/// (made before migration 3) has an empty one.
pub fn api_key_row(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    let digest: &[u8] = get(row, 2)?;
    Ok(ApiKeyRecord {
        key_id: get(row, 0)?,
        tenant: u64_at(row, 1, "tenant id")?,
        secret_digest: digest.try_into().map_err(|_| corrupt("api key digest length"))?,
        sealed_secret: bytes_at(row, 3, SEALED_SECRET_BYTES_MAX, "sealed secret length")?,
    })
}

/// An `api_keys` row as listed (columns in `sql::API_KEY_INFOS` order).
pub fn api_key_info_row(row: &Row) -> Result<ApiKeyInfo, StoreError> {
    Ok(ApiKeyInfo {
        key_id: get(row, 0)?,
        tenant: u64_at(row, 1, "tenant id")?,
        created_at_s: u64_at(row, 2, "key created_at")?,
        revoked_at_s: optional_u64_at(row, 3, "key revoked_at")?,
    })
}

/// An `operators` row (columns in `sql::OPERATORS` order).
pub fn operator_row(row: &Row) -> Result<Operator, StoreError> {
    let username: String = get(row, 1)?;
    if !valid_username(&username) {
        return Err(corrupt("operator username"));
    }
    let role = Role::parse(get(row, 2)?).ok_or_else(|| corrupt("operator role"))?;
    let failed = u32::try_from(get::<i32>(row, 5)?).ok().filter(|n| *n <= FAILED_ATTEMPTS_MAX);
    Ok(Operator {
        id: u64_at(row, 0, "operator id")?,
        username,
        role,
        password_phc: text_at(row, 3, PASSWORD_PHC_BYTES_MAX, "operator password")?,
        totp_sealed: bytes_at(row, 4, TOTP_SEALED_BYTES_MAX, "operator totp")?,
        failed_attempts: failed.ok_or_else(|| corrupt("operator failure count"))?,
        locked: get(row, 6)?,
        disabled: get(row, 7)?,
        totp_last_step: optional_u64_at(row, 8, "operator totp step")?,
        created_at_s: u64_at(row, 9, "operator created_at")?,
    })
}

/// An `operator_sessions` row (columns in `sql::SESSION_BY_ID` order).
pub fn session_row(row: &Row) -> Result<Session, StoreError> {
    Ok(Session {
        id: get(row, 0)?,
        operator_id: text_at(row, 1, FIELD_BYTES_MAX, "session operator_id")?,
        role: text_at(row, 2, FIELD_BYTES_MAX, "session role")?,
        created_at_s: u64_at(row, 3, "session created_at")?,
        last_seen_s: u64_at(row, 4, "session last_seen")?,
        expires_at_s: u64_at(row, 5, "session expires_at")?,
        revoked: get(row, 6)?,
    })
}

/// Columns of new accounts.
#[derive(Default)]
struct AccountColumns {
    tenants: Vec<i64>,
    ids: Vec<Uuid>,
    ledgers: Vec<i64>,
    codes: Vec<i32>,
    flags: Vec<i32>,
    user_data: Vec<Option<Uuid>>,
    subject_ids: Vec<Option<Uuid>>,
    balances: BalanceColumns,
    timestamps: Vec<i64>,
}

/// Key and balance columns.
#[derive(Default)]
struct BalanceColumns {
    tenants: Vec<i64>,
    ids: Vec<Uuid>,
    debits_pending: Vec<i64>,
    debits_posted: Vec<i64>,
    credits_pending: Vec<i64>,
    credits_posted: Vec<i64>,
}

impl BalanceColumns {
    fn push(&mut self, key: Key, a: &Account) -> Result<(), StoreError> {
        self.tenants.push(i64_of(key.tenant)?);
        self.ids.push(uuid(key.id));
        self.debits_pending.push(i64_of(a.debits_pending)?);
        self.debits_posted.push(i64_of(a.debits_posted)?);
        self.credits_pending.push(i64_of(a.credits_pending)?);
        self.credits_posted.push(i64_of(a.credits_posted)?);
        Ok(())
    }
}

/// Columns of new transfers.
#[derive(Default)]
struct TransferColumns {
    tenants: Vec<i64>,
    ids: Vec<Uuid>,
    debits: Vec<Uuid>,
    credits: Vec<Uuid>,
    amounts: Vec<i64>,
    pending_ids: Vec<Option<Uuid>>,
    user_data: Vec<Option<Uuid>>,
    ledgers: Vec<i64>,
    codes: Vec<i32>,
    flags: Vec<i32>,
    timeouts: Vec<i64>,
    timestamps: Vec<i64>,
}

/// `(tenant, id, small integer)` columns: failures and statuses.
#[derive(Default)]
struct CodeColumns {
    tenants: Vec<i64>,
    ids: Vec<Uuid>,
    codes: Vec<i16>,
}

/// Everything one flush writes, as columns.
#[derive(Default)]
pub struct ChangeRows {
    new_accounts: AccountColumns,
    balances: BalanceColumns,
    transfers: TransferColumns,
    failures: CodeColumns,
    statuses: CodeColumns,
    expiries: (Vec<i64>, Vec<i64>, Vec<Uuid>),
    resolved: (Vec<i64>, Vec<Uuid>),
}

impl ChangeRows {
    /// The columns of `changes`; `loaded` names the accounts that existed before.
    pub fn of(state: &State, changes: &Changes, loaded: &HashSet<Key>) -> Result<Self, StoreError> {
        let mut rows = Self::default();
        for key in &changes.accounts {
            let account = state.accounts.get(key).expect("changed accounts are in the state");
            if loaded.contains(key) {
                rows.balances.push(*key, account)?;
            } else {
                rows.push_new_account(*key, account)?;
            }
        }
        for key in &changes.transfers {
            let transfer = state.transfers.get(key).expect("new transfers are in the state");
            rows.push_transfer(*key, transfer)?;
        }
        for (key, code) in &changes.failures {
            rows.failures.tenants.push(i64_of(key.tenant)?);
            rows.failures.ids.push(uuid(key.id));
            rows.failures.codes.push(i16::from(*code as u8));
        }
        for (key, status) in &changes.pending_statuses {
            rows.statuses.tenants.push(i64_of(key.tenant)?);
            rows.statuses.ids.push(uuid(key.id));
            rows.statuses.codes.push(i16::from(status.to_byte()));
            rows.resolved.0.push(i64_of(key.tenant)?);
            rows.resolved.1.push(uuid(key.id));
        }
        Ok(rows)
    }

    fn push_new_account(&mut self, key: Key, a: &Account) -> Result<(), StoreError> {
        let c = &mut self.new_accounts;
        c.tenants.push(i64_of(key.tenant)?);
        c.ids.push(uuid(key.id));
        c.ledgers.push(i64::from(a.ledger));
        c.codes.push(i32::from(a.code));
        c.flags.push(i32::from(a.flags.bits()));
        c.user_data.push(uuid_or_null(a.user_data));
        c.subject_ids.push(uuid_or_null(a.subject_id));
        c.balances.push(key, a)?;
        c.timestamps.push(i64_of(a.timestamp)?);
        Ok(())
    }

    fn push_transfer(&mut self, key: Key, t: &Transfer) -> Result<(), StoreError> {
        let c = &mut self.transfers;
        c.tenants.push(i64_of(key.tenant)?);
        c.ids.push(uuid(key.id));
        c.debits.push(uuid(t.debit_account_id));
        c.credits.push(uuid(t.credit_account_id));
        c.amounts.push(i64_of(t.amount)?);
        c.pending_ids.push(uuid_or_null(t.pending_id));
        c.user_data.push(uuid_or_null(t.user_data));
        c.ledgers.push(i64::from(t.ledger));
        c.codes.push(i32::from(t.code));
        c.flags.push(i32::from(t.flags.bits()));
        c.timeouts.push(i64::from(t.timeout_seconds));
        c.timestamps.push(i64_of(t.timestamp)?);
        if let Some(at) = t.expires_at() {
            self.expiries.0.push(i64_of(at)?);
            self.expiries.1.push(i64_of(key.tenant)?);
            self.expiries.2.push(uuid(key.id));
        }
        Ok(())
    }

    /// Inserts new accounts.
    pub async fn insert_accounts(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        let c = &self.new_accounts;
        if c.ids.is_empty() {
            return Ok(0);
        }
        let b = &c.balances;
        client
            .execute(
                s,
                &[
                    &c.tenants,
                    &c.ids,
                    &c.ledgers,
                    &c.codes,
                    &c.flags,
                    &c.user_data,
                    &c.subject_ids,
                    &b.debits_pending,
                    &b.debits_posted,
                    &b.credits_pending,
                    &b.credits_posted,
                    &c.timestamps,
                ],
            )
            .await
    }

    /// Updates balances of existing accounts.
    pub async fn update_balances(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        let b = &self.balances;
        if b.ids.is_empty() {
            return Ok(0);
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &b.tenants,
            &b.ids,
            &b.debits_pending,
            &b.debits_posted,
            &b.credits_pending,
            &b.credits_posted,
        ];
        client.execute(s, &params).await
    }

    /// Inserts new transfers.
    pub async fn insert_transfers(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        let c = &self.transfers;
        if c.ids.is_empty() {
            return Ok(0);
        }
        client
            .execute(
                s,
                &[
                    &c.tenants,
                    &c.ids,
                    &c.debits,
                    &c.credits,
                    &c.amounts,
                    &c.pending_ids,
                    &c.user_data,
                    &c.ledgers,
                    &c.codes,
                    &c.flags,
                    &c.timeouts,
                    &c.timestamps,
                ],
            )
            .await
    }

    /// Inserts stored rejections.
    pub async fn insert_failures(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        codes(client, s, &self.failures).await
    }

    /// Inserts pending statuses.
    pub async fn insert_statuses(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        codes(client, s, &self.statuses).await
    }

    /// Inserts expiries of new pending transfers.
    pub async fn insert_expiries(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        let (at, tenants, ids) = &self.expiries;
        if ids.is_empty() {
            return Ok(0);
        }
        client.execute(s, &[at, tenants, ids]).await
    }

    /// Deletes expiries of resolved pending transfers.
    pub async fn delete_expiries(
        &self,
        client: &Client,
        s: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        let (tenants, ids) = &self.resolved;
        if ids.is_empty() {
            return Ok(0);
        }
        client.execute(s, &[tenants, ids]).await
    }
}

async fn codes(
    client: &Client,
    s: &Statement,
    c: &CodeColumns,
) -> Result<u64, tokio_postgres::Error> {
    if c.ids.is_empty() {
        return Ok(0);
    }
    client.execute(s, &[&c.tenants, &c.ids, &c.codes]).await
}
