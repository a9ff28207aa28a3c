//! Operator sessions in the embedded store, for a gateway without DynamoDB: the semantics
//! of `sessions::DynamoSessions` (a revoked id stays taken until its expiry, a touch
//! moves `last_seen_s` forward only while the session is live) on redb tables.
//!
//! Writes are control jobs on the writer thread, each one write transaction; a create
//! first deletes up to [`PURGE_MAX`] sessions past their absolute expiry, oldest first, so
//! dead sessions never accumulate. Reads run on the caller's thread.
//!
//! Never logs or puts in an error a session id or an operator id.

use redb::{ReadableTable, WriteTransaction};

use super::Embedded;
use super::codec::{decode_session, encode_session};
use super::tables::{OPERATOR_SESSIONS, SESSION_EXPIRIES, SESSIONS};
use crate::error::StoreError;
use crate::sessions::{
    PURGE_MAX, Session, check_id_in_store, check_new_in_store, check_operator_in_store,
};

impl Embedded {
    /// Stores a new session, after deleting up to [`PURGE_MAX`] sessions whose absolute
    /// expiry is at or before its `created_at_s`. An id already stored (live, revoked or
    /// expired but not yet purged) is [`StoreError::SessionExists`], never overwritten.
    pub async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        check_new_in_store(session)?;
        let session = session.clone();
        self.write(move |txn| {
            purge_dead(txn, session.created_at_s)?;
            insert_new(txn, &session)
        })
        .await
    }

    /// The session `id` if it is live at `now_s`.
    pub fn session(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        check_id_in_store(id)?;
        let stored = self.read(|txn| {
            let table = txn.open_table(SESSIONS)?;
            let value = table.get(id)?;
            value.map(|bytes| decode_session(id, bytes.value())).transpose()
        })?;
        Ok(stored.filter(|session| session.is_live(now_s)))
    }

    /// Records activity at `now_s` if the session is live then and was last seen before;
    /// the session if it is live at `now_s` (an idle-expired one is not revived).
    pub async fn session_touch(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        check_id_in_store(id)?;
        let id = id.to_owned();
        let stored = self.write(move |txn| touch(txn, &id, now_s)).await?;
        Ok(stored.filter(|session| session.is_live(now_s)))
    }

    /// Marks session `id` revoked: `true` when it is stored (even if revoked already),
    /// `false` when it is not.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        check_id_in_store(id)?;
        let id = id.to_owned();
        self.write(move |txn| revoke(txn, &id)).await
    }

    /// Marks every stored session of `operator_id` revoked, in one write transaction;
    /// returns how many are stored (as `DynamoSessions::revoke_all_for` counts them).
    pub async fn revoke_sessions_of(&self, operator_id: &str) -> Result<usize, StoreError> {
        check_operator_in_store(operator_id)?;
        let operator_id = operator_id.to_owned();
        self.write(move |txn| revoke_all_of(txn, &operator_id)).await
    }
}

fn insert_new(txn: &WriteTransaction, session: &Session) -> Result<(), StoreError> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let id = session.id.as_str();
    if sessions.get(id)?.is_some() {
        return Err(StoreError::SessionExists);
    }
    sessions.insert(id, encode_session(session).as_slice())?;
    txn.open_table(SESSION_EXPIRIES)?.insert((session.expires_at_s, id), ())?;
    txn.open_table(OPERATOR_SESSIONS)?.insert((session.operator_id.as_str(), id), ())?;
    Ok(())
}

/// Deletes up to [`PURGE_MAX`] sessions whose absolute expiry is at or before `now_s`.
fn purge_dead(txn: &WriteTransaction, now_s: u64) -> Result<(), StoreError> {
    let mut expiries = txn.open_table(SESSION_EXPIRIES)?;
    let mut dead = Vec::new();
    for entry in expiries.range(..(now_s.saturating_add(1), ""))?.take(PURGE_MAX) {
        let (key, _) = entry?;
        let (expires_at_s, id) = key.value();
        dead.push((expires_at_s, id.to_owned()));
    }
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut by_operator = txn.open_table(OPERATOR_SESSIONS)?;
    for (expires_at_s, id) in &dead {
        expiries.remove((*expires_at_s, id.as_str()))?;
        let removed = sessions.remove(id.as_str())?.map(|bytes| decode_session(id, bytes.value()));
        if let Some(session) = removed.transpose()? {
            by_operator.remove((session.operator_id.as_str(), id.as_str()))?;
        }
    }
    Ok(())
}

/// The stored session `id` after a touch at `now_s` (moved forward only when
/// [`Session::touch_applies`]); `None` when it is not stored.
fn touch(txn: &WriteTransaction, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let stored = sessions.get(id)?.map(|bytes| decode_session(id, bytes.value()));
    let Some(mut session) = stored.transpose()? else { return Ok(None) };
    if session.touch_applies(now_s) {
        session.last_seen_s = now_s;
        sessions.insert(id, encode_session(&session).as_slice())?;
    }
    Ok(Some(session))
}

fn revoke(txn: &WriteTransaction, id: &str) -> Result<bool, StoreError> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let stored = sessions.get(id)?.map(|bytes| decode_session(id, bytes.value()));
    let Some(mut session) = stored.transpose()? else { return Ok(false) };
    if !session.revoked {
        session.revoked = true;
        sessions.insert(id, encode_session(&session).as_slice())?;
    }
    Ok(true)
}

fn revoke_all_of(txn: &WriteTransaction, operator_id: &str) -> Result<usize, StoreError> {
    let mut ids = Vec::new();
    for entry in txn.open_table(OPERATOR_SESSIONS)?.range((operator_id, "")..)? {
        let (key, _) = entry?;
        let (owner, id) = key.value();
        if owner != operator_id {
            break;
        }
        ids.push(id.to_owned());
    }
    let mut revoked = 0;
    for id in &ids {
        if revoke(txn, id)? {
            revoked += 1;
        } else {
            return Err(StoreError::Corrupt("session index names no session".into()));
        }
    }
    Ok(revoked)
}
