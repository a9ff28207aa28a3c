//! Operators in PostgreSQL, on a core's pooled connection or the administrative one.
//!
//! A successful sign-in locks the operator's row (`FOR UPDATE`), applies the rule of
//! [`crate::operators::record_success`] and writes, in one transaction: two gateway
//! processes recording the same TOTP step record it once. A failed sign-in is one
//! `UPDATE` with the same rule as [`crate::operators::record_failure`]. Nothing here logs,
//! and no error carries a username.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::codec::{db, i64_of, operator_row};
use super::conn::Db;
use super::sql;
use crate::error::StoreError;
use crate::operators::{
    self, FAILED_ATTEMPTS_MAX, NewOperator, Operator, SignInRecorded, check_password_phc,
    check_step,
};

/// [`FAILED_ATTEMPTS_MAX`] as the `integer` the column holds.
const FAILED_ATTEMPTS_MAX_I32: i32 = FAILED_ATTEMPTS_MAX as i32;
const _: () = assert!(FAILED_ATTEMPTS_MAX <= i32::MAX as u32);

/// Creates an operator: [`StoreError::OperatorExists`] when the username is taken.
pub async fn create_operator(conn: &impl Db, new: &NewOperator) -> Result<Operator, StoreError> {
    new.check()?;
    let statement = conn.statement(&sql::INSERT_OPERATOR).await?;
    let params: [&(dyn ToSql + Sync); 5] = [
        &new.username,
        &new.role.as_str(),
        &new.password_phc,
        &new.totp_sealed,
        &i64_of(new.created_at_s)?,
    ];
    let row = match conn.client().query_opt(&statement, &params).await {
        // The identity column itself never collides; any other unique key is the username.
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => None,
        other => other.map_err(db)?,
    };
    row.as_ref().map(operator_row).transpose()?.ok_or(StoreError::OperatorExists)
}

/// The operator `id`, if it exists.
pub async fn operator(conn: &impl Db, id: u64) -> Result<Option<Operator>, StoreError> {
    let statement = conn.statement(&sql::OPERATOR_BY_ID).await?;
    let row = conn.client().query_opt(&statement, &[&i64_of(id)?]).await.map_err(db)?;
    row.as_ref().map(operator_row).transpose()
}

/// The operator signing in as `username`, if any.
pub async fn operator_by_username(
    conn: &impl Db,
    username: &str,
) -> Result<Option<Operator>, StoreError> {
    let statement = conn.statement(&sql::OPERATOR_BY_USERNAME).await?;
    let row = conn.client().query_opt(&statement, &[&username]).await.map_err(db)?;
    row.as_ref().map(operator_row).transpose()
}

/// Every operator, by id.
pub async fn operators(conn: &impl Db) -> Result<Vec<Operator>, StoreError> {
    let statement = conn.statement(&sql::OPERATORS).await?;
    let rows = conn.client().query(&statement, &[]).await.map_err(db)?;
    rows.iter().map(operator_row).collect()
}

/// Counts a failed sign-in; the updated operator, or `None` when there is none.
pub async fn record_sign_in_failure(
    conn: &impl Db,
    id: u64,
) -> Result<Option<Operator>, StoreError> {
    let statement = conn.statement(&sql::RECORD_SIGN_IN_FAILURE).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&i64_of(id)?, &FAILED_ATTEMPTS_MAX_I32];
    let row = conn.client().query_opt(&statement, &params).await.map_err(db)?;
    row.as_ref().map(operator_row).transpose()
}

/// Records a successful sign-in at `totp_step` under the operator's row lock.
pub async fn record_sign_in_success(
    conn: &mut impl Db,
    id: u64,
    totp_step: u64,
) -> Result<SignInRecorded, StoreError> {
    check_step(totp_step)?;
    let (lock, record) = tokio::try_join!(
        conn.statement(&sql::LOCK_OPERATOR),
        conn.statement(sql::RECORD_SIGN_IN_SUCCESS),
    )?;
    let id_param = i64_of(id)?;
    let txn = conn.transaction().await?;
    let row = txn.query_opt(&lock, &[&id_param]).await.map_err(db)?;
    let Some(mut operator) = row.as_ref().map(operator_row).transpose()? else {
        return Ok(SignInRecorded::NotFound);
    };
    let decided = operators::record_success(&mut operator, totp_step);
    if decided == SignInRecorded::Recorded {
        txn.execute(&record, &[&id_param, &i64_of(totp_step)?]).await.map_err(db)?;
        txn.commit().await.map_err(db)?;
    }
    Ok(decided)
}

/// Clears an operator's lock and failures; `false` when there is no such operator.
pub async fn unlock_operator(conn: &impl Db, id: u64) -> Result<bool, StoreError> {
    execute_one(conn, sql::UNLOCK_OPERATOR, &[&i64_of(id)?]).await
}

/// Disables or enables an operator; `false` when there is no such operator.
pub async fn set_operator_disabled(
    conn: &impl Db,
    id: u64,
    disabled: bool,
) -> Result<bool, StoreError> {
    execute_one(conn, sql::SET_OPERATOR_DISABLED, &[&i64_of(id)?, &disabled]).await
}

/// Replaces an operator's password hash; `false` when there is no such operator.
pub async fn set_operator_password(
    conn: &impl Db,
    id: u64,
    password_phc: &str,
) -> Result<bool, StoreError> {
    check_password_phc(password_phc)?;
    execute_one(conn, sql::SET_OPERATOR_PASSWORD, &[&i64_of(id)?, &password_phc]).await
}

/// Runs an `UPDATE` of one operator by id; whether it found the row.
async fn execute_one(
    conn: &impl Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    let statement = conn.statement(sql).await?;
    Ok(conn.client().execute(&statement, params).await.map_err(db)? == 1)
}
