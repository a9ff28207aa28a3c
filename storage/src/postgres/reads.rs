//! Reads outside the flush: accounts, transfers and account history for the API (tenants
//! and API keys are `keys`'). Each takes a client the caller owns; statements are
//! prepared once per pooled connection (`prepare_cached`).
//!
//! Nothing here writes the ledger's tables or takes a row lock.

use tokio_postgres::types::ToSql;

use super::codec::{account_row, db, i64_of, transfer_row, uuid};
use super::sql;
use crate::error::StoreError;
use crate::ledger::{Account, Key, Transfer};

/// The account `key`, if it exists.
pub async fn account(
    client: &deadpool_postgres::Client,
    key: Key,
) -> Result<Option<Account>, StoreError> {
    let statement = client.prepare_cached(&sql::GET_ACCOUNT).await.map_err(db)?;
    let params: [&(dyn ToSql + Sync); 2] = [&i64_of(key.tenant)?, &uuid(key.id)];
    let row = client.query_opt(&statement, &params).await.map_err(db)?;
    row.map(|row| account_row(&row).map(|(_, account)| account)).transpose()
}

/// The transfer `key`, if it exists.
pub async fn transfer(
    client: &deadpool_postgres::Client,
    key: Key,
) -> Result<Option<Transfer>, StoreError> {
    let statement = client.prepare_cached(&sql::GET_TRANSFER).await.map_err(db)?;
    let params: [&(dyn ToSql + Sync); 2] = [&i64_of(key.tenant)?, &uuid(key.id)];
    let row = client.query_opt(&statement, &params).await.map_err(db)?;
    row.map(|row| transfer_row(&row).map(|(_, transfer)| transfer)).transpose()
}

/// Up to `limit` transfers of account `key` with a timestamp after `after`, oldest
/// first; `None` when the account does not exist. One pipelined round trip.
pub async fn account_transfers(
    client: &deadpool_postgres::Client,
    key: Key,
    after: u64,
    limit: usize,
) -> Result<Option<Vec<Transfer>>, StoreError> {
    let (get_account, history) = tokio::try_join!(
        client.prepare_cached(&sql::GET_ACCOUNT),
        client.prepare_cached(&sql::ACCOUNT_TRANSFERS),
    )
    .map_err(db)?;
    let (tenant, id) = (i64_of(key.tenant)?, uuid(key.id));
    let (after, limit) = (i64_of(after)?, i64_of(limit as u64)?);
    let account_params: [&(dyn ToSql + Sync); 2] = [&tenant, &id];
    let history_params: [&(dyn ToSql + Sync); 4] = [&tenant, &id, &after, &limit];
    let (account, rows) = tokio::try_join!(
        client.query_opt(&get_account, &account_params),
        client.query(&history, &history_params),
    )
    .map_err(db)?;
    if account.is_none() {
        return Ok(None);
    }
    let page = rows.iter().map(|row| transfer_row(row).map(|(_, t)| t));
    page.collect::<Result<Vec<_>, _>>().map(Some)
}
