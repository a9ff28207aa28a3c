//! Operator sessions in PostgreSQL, for a gateway without DynamoDB: the semantics of
//! `sessions::DynamoSessions` (a conditional create, a revoke flag that keeps the row, a
//! touch conditional on the session being live) as single statements on a core's pooled
//! connection.
//!
//! A create first deletes up to [`PURGE_MAX`] rows past their absolute expiry (a `ctid`
//! subquery with a `LIMIT`), so dead sessions never accumulate and a create stays bounded.
//! Never logs or puts in an error a session id or an operator id.

use tokio_postgres::types::ToSql;

use super::codec::{db, i64_of, session_row};
use super::conn::Db;
use super::sql;
use crate::error::StoreError;
use crate::sessions::{
    IDLE_TIMEOUT_S, PURGE_MAX, Session, check_id_in_store, check_new_in_store,
    check_operator_in_store,
};

/// Stores a new session after purging dead ones; [`StoreError::SessionExists`] when the
/// id is stored (live, revoked or expired but not yet purged).
pub async fn create_session(conn: &impl Db, session: &Session) -> Result<(), StoreError> {
    check_new_in_store(session)?;
    let (purge, insert) =
        tokio::try_join!(conn.statement(sql::PURGE_SESSIONS), conn.statement(sql::INSERT_SESSION))?;
    let purge_max = i64_of(PURGE_MAX as u64)?;
    let purge_params: [&(dyn ToSql + Sync); 2] = [&i64_of(session.created_at_s)?, &purge_max];
    conn.client().execute(&purge, &purge_params).await.map_err(db)?;
    let params: [&(dyn ToSql + Sync); 6] = [
        &session.id,
        &session.operator_id,
        &session.role,
        &i64_of(session.created_at_s)?,
        &i64_of(session.last_seen_s)?,
        &i64_of(session.expires_at_s)?,
    ];
    match conn.client().execute(&insert, &params).await.map_err(db)? {
        0 => Err(StoreError::SessionExists),
        _ => Ok(()),
    }
}

/// The session `id` if it is live at `now_s`.
pub async fn session(conn: &impl Db, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
    check_id_in_store(id)?;
    let stored = read(conn, id).await?;
    Ok(stored.filter(|session| session.is_live(now_s)))
}

/// Records activity at `now_s` if the session is live then and was last seen before; the
/// session if it is live at `now_s` (an idle-expired one is not revived).
pub async fn session_touch(
    conn: &impl Db,
    id: &str,
    now_s: u64,
) -> Result<Option<Session>, StoreError> {
    check_id_in_store(id)?;
    let statement = conn.statement(&sql::TOUCH_SESSION).await?;
    let idle_floor = now_s.saturating_sub(IDLE_TIMEOUT_S);
    let params: [&(dyn ToSql + Sync); 3] = [&id, &i64_of(now_s)?, &i64_of(idle_floor)?];
    let row = conn.client().query_opt(&statement, &params).await.map_err(db)?;
    let stored = match row {
        Some(row) => Some(session_row(&row)?),
        // Missing, revoked, expired, or already seen at `now_s` or later.
        None => read(conn, id).await?,
    };
    Ok(stored.filter(|session| session.is_live(now_s)))
}

/// Marks session `id` revoked: `true` when it is stored (even if revoked already).
pub async fn revoke_session(conn: &impl Db, id: &str) -> Result<bool, StoreError> {
    check_id_in_store(id)?;
    let statement = conn.statement(sql::REVOKE_SESSION).await?;
    Ok(conn.client().execute(&statement, &[&id]).await.map_err(db)? == 1)
}

/// Marks every stored session of `operator_id` revoked; how many are stored.
pub async fn revoke_sessions_of(conn: &impl Db, operator_id: &str) -> Result<usize, StoreError> {
    check_operator_in_store(operator_id)?;
    let statement = conn.statement(sql::REVOKE_SESSIONS_OF).await?;
    let revoked = conn.client().execute(&statement, &[&operator_id]).await.map_err(db)?;
    usize::try_from(revoked).map_err(|_| StoreError::Corrupt("session count".into()))
}

async fn read(conn: &impl Db, id: &str) -> Result<Option<Session>, StoreError> {
    let statement = conn.statement(&sql::SESSION_BY_ID).await?;
    let row = conn.client().query_opt(&statement, &[&id]).await.map_err(db)?;
    row.as_ref().map(session_row).transpose()
}
