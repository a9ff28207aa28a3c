//! Operator sessions: the server-side half of an operator's sign-in.
//!
//! Sign-in (in the gateway) issues a short-lived signed token that names a session id; the
//! session itself lives here, so that sign-out and revocation take effect at once in every
//! gateway process. A [`Session`] is live while it is not revoked, its absolute expiry
//! ([`Session::expires_at_s`]) has not passed, and it was seen within the idle timeout
//! ([`IDLE_TIMEOUT_S`], 15 minutes). [`Sessions`] is the one face the gateway uses when
//! AWS is configured: [`DynamoSessions`] keeps sessions in DynamoDB (a TTL attribute
//! removes dead ones) with a Redis cache in front. Without AWS the gateway keeps them in
//! the store it already has, with the same semantics, through `CoreStore::create_session`
//! and its siblings (the embedded store and PostgreSQL; they delete up to [`PURGE_MAX`]
//! dead sessions whenever one is created, and share the rules below).
//!
//! The caller chooses session ids (the gateway draws them from the OS generator); this
//! module only checks their shape. Time is passed in as Unix seconds, as in the ledger.
//!
//! This module must never log or put in an error a session id (it is as good as a token
//! while the session lives), an operator id or a role: errors say what failed (the
//! operation, the table, the service's error code) and nothing about whose session it was.
//! It must never answer "live" for a session that a completed [`Sessions::revoke`] has
//! revoked, whatever any cache holds.

mod cache;
mod dynamo;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::tenants::check_time;

pub use dynamo::{DynamoSessions, DynamoSessionsConfig};

/// A session is idle-expired when it was last seen more than this long ago (15 minutes).
pub const IDLE_TIMEOUT_S: u64 = 15 * 60;
/// The absolute lifetime the gateway gives a session (12 hours), however active.
pub const LIFETIME_MAX_S: u64 = 12 * 60 * 60;
/// [`Sessions::get_and_touch`] records activity only when the stored `last_seen_s` is at
/// least this old, so that an active operator costs one write a minute, not one a request.
pub const TOUCH_INTERVAL_S: u64 = 60;
/// The shortest accepted session id, in characters.
pub const ID_LEN_MIN: usize = 16;
/// The longest accepted session id, in characters.
pub const ID_LEN_MAX: usize = 128;
/// Most dead sessions (past their absolute expiry) a store backend deletes when a session
/// is created, so that dead sessions never accumulate and a create stays bounded.
pub const PURGE_MAX: usize = 256;
/// Most bytes of a session's `operator_id` and of its `role` in a store backend.
pub const FIELD_BYTES_MAX: usize = 128;

/// One operator session. `Debug` does not show the id.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session id: 16 to 128 characters of `[A-Za-z0-9_-]`, chosen by the caller from
    /// a cryptographic generator.
    pub id: String,
    /// The operator signed in.
    pub operator_id: String,
    /// The operator's role when the session began (`admin`, `operator`, ...).
    pub role: String,
    /// When the session began, in Unix seconds.
    pub created_at_s: u64,
    /// When the session was last used, in Unix seconds (kept to [`TOUCH_INTERVAL_S`]).
    pub last_seen_s: u64,
    /// When the session ends however active it is, in Unix seconds.
    pub expires_at_s: u64,
    /// Whether the session was signed out or revoked.
    pub revoked: bool,
}

impl Session {
    /// A new session beginning at `now_s`, ending at the latest after [`LIFETIME_MAX_S`].
    pub fn new(
        id: impl Into<String>,
        operator_id: impl Into<String>,
        role: impl Into<String>,
        now_s: u64,
    ) -> Self {
        Self {
            id: id.into(),
            operator_id: operator_id.into(),
            role: role.into(),
            created_at_s: now_s,
            last_seen_s: now_s,
            expires_at_s: now_s.saturating_add(LIFETIME_MAX_S),
            revoked: false,
        }
    }

    /// The session's state at `now_s`.
    pub fn status(&self, now_s: u64) -> Status {
        if self.revoked {
            Status::Revoked
        } else if now_s >= self.expires_at_s {
            Status::Expired
        } else if now_s > self.last_seen_s.saturating_add(IDLE_TIMEOUT_S) {
            Status::IdleExpired
        } else {
            Status::Live
        }
    }

    /// Whether the session may be used at `now_s`.
    pub fn is_live(&self, now_s: u64) -> bool {
        self.status(now_s) == Status::Live
    }

    /// Whether a get-and-touch at `now_s` should record activity: the stored `last_seen_s`
    /// is [`TOUCH_INTERVAL_S`] or more old.
    pub(crate) fn touch_due(&self, now_s: u64) -> bool {
        now_s >= self.last_seen_s.saturating_add(TOUCH_INTERVAL_S)
    }

    /// Whether a touch at `now_s` moves `last_seen_s` forward: the session is live at
    /// `now_s` and was last seen before it (DynamoDB's condition, and the store backends').
    pub(crate) fn touch_applies(&self, now_s: u64) -> bool {
        self.is_live(now_s) && self.last_seen_s < now_s
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &"[redacted]")
            .field("role", &self.role)
            .field("created_at_s", &self.created_at_s)
            .field("last_seen_s", &self.last_seen_s)
            .field("expires_at_s", &self.expires_at_s)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// The state of a session at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Live,
    /// Signed out or revoked.
    Revoked,
    /// Past its absolute expiry.
    Expired,
    /// Not used within [`IDLE_TIMEOUT_S`].
    IdleExpired,
}

/// Why a session operation failed. Messages never contain a session id, an operator id,
/// a role or a token.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session id does not have the accepted shape.
    #[error(
        "invalid session id: it must be {ID_LEN_MIN} to {ID_LEN_MAX} characters of \
         A-Z, a-z, 0-9, '-' and '_'"
    )]
    InvalidId,
    /// A field of a new session is empty or the times are inconsistent.
    #[error("invalid session: {0}")]
    InvalidSession(&'static str),
    /// [`Sessions::create`] with an id that is already stored.
    #[error("a session with this id already exists")]
    Exists,
    /// No AWS region is configured for the DynamoDB client.
    #[error(
        "sessions table {table}: no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)"
    )]
    AwsRegionMissing {
        /// The table name.
        table: String,
    },
    /// A DynamoDB call failed after the SDK's retries; `detail` is the service's error
    /// code and message, or the transport failure.
    #[error("sessions table {table}: DynamoDB {operation} failed: {detail}")]
    Dynamo {
        /// The table name.
        table: String,
        /// The DynamoDB operation (`GetItem`, `PutItem`, ...).
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A stored item does not describe a session; `reason` names the attribute.
    #[error("sessions table {table}: stored item is malformed: {reason}")]
    Corrupt {
        /// The table name.
        table: String,
        /// Which attribute is missing or of the wrong type.
        reason: &'static str,
    },
    /// The table did not become active in time (after [`DynamoSessions::ensure_table`]).
    #[error("sessions table {table}: not active after {waited_s} s")]
    TableNotActive {
        /// The table name.
        table: String,
        /// How long we waited.
        waited_s: u64,
    },
    /// The Redis URL does not parse. The URL is not repeated: it may hold a password.
    #[error("invalid Redis URL for the sessions cache: {0}")]
    RedisUrl(String),
}

/// Checks that `id` is 16 to 128 characters of `[A-Za-z0-9_-]` (safe in a Redis key and a
/// DynamoDB key, and never needing escapes in logs of its length).
pub(crate) fn check_id(id: &str) -> Result<(), SessionError> {
    let shape_ok = (ID_LEN_MIN..=ID_LEN_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if shape_ok { Ok(()) } else { Err(SessionError::InvalidId) }
}

fn check_new(session: &Session) -> Result<(), SessionError> {
    check_id(&session.id)?;
    if session.operator_id.is_empty() {
        return Err(SessionError::InvalidSession("operator_id is empty"));
    }
    if session.role.is_empty() {
        return Err(SessionError::InvalidSession("role is empty"));
    }
    if session.revoked {
        return Err(SessionError::InvalidSession("a new session cannot be revoked"));
    }
    if session.last_seen_s < session.created_at_s || session.expires_at_s <= session.created_at_s {
        return Err(SessionError::InvalidSession(
            "times must satisfy created_at <= last_seen and created_at < expires_at",
        ));
    }
    Ok(())
}

/// [`check_new`] for a store backend: the same rules, the fields bounded by
/// [`FIELD_BYTES_MAX`] and the times by [`crate::tenants::TIME_S_MAX`], as a [`StoreError`].
pub(crate) fn check_new_in_store(session: &Session) -> Result<(), StoreError> {
    check_new(session).map_err(into_store_error)?;
    if session.operator_id.len() > FIELD_BYTES_MAX || session.role.len() > FIELD_BYTES_MAX {
        return Err(StoreError::Invalid("session operator_id and role are at most 128 bytes"));
    }
    check_time(session.expires_at_s)?;
    check_time(session.last_seen_s)
}

/// [`check_id`] for a store backend.
pub(crate) fn check_id_in_store(id: &str) -> Result<(), StoreError> {
    check_id(id).map_err(into_store_error)
}

/// Refuses an empty operator id (a store backend's `revoke_sessions_of`).
pub(crate) fn check_operator_in_store(operator_id: &str) -> Result<(), StoreError> {
    if operator_id.is_empty() {
        return Err(StoreError::Invalid("operator_id is empty"));
    }
    Ok(())
}

/// A validation failure as the store backends report it (no id, no value).
fn into_store_error(error: SessionError) -> StoreError {
    match error {
        SessionError::InvalidSession(rule) => StoreError::Invalid(rule),
        _ => StoreError::Invalid(
            "session id must be 16 to 128 characters of A-Z, a-z, 0-9, '-' and '_'",
        ),
    }
}

/// The session store the gateway uses, whichever backend holds the sessions. An enum rather
/// than a trait object, so the methods are plain `async fn`s; an embedded backend becomes
/// another variant. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Sessions {
    /// DynamoDB, cached in Redis.
    Dynamo(DynamoSessions),
}

impl Sessions {
    /// Stores a new session. An id already stored is [`SessionError::Exists`], never
    /// overwritten.
    pub async fn create(&self, session: &Session) -> Result<(), SessionError> {
        match self {
            Self::Dynamo(store) => store.create(session).await,
        }
    }

    /// The session `id` if it is live at `now_s`; `None` when it does not exist, is
    /// revoked, or has expired (absolute or idle). Does not record activity.
    pub async fn get(&self, id: &str, now_s: u64) -> Result<Option<Session>, SessionError> {
        match self {
            Self::Dynamo(store) => store.get(id, now_s).await,
        }
    }

    /// Like [`Sessions::get`], and records activity at `now_s` when the stored
    /// `last_seen_s` is [`TOUCH_INTERVAL_S`] or more old: what the gateway calls per request.
    pub async fn get_and_touch(
        &self,
        id: &str,
        now_s: u64,
    ) -> Result<Option<Session>, SessionError> {
        match self {
            Self::Dynamo(store) => store.get_and_touch(id, now_s).await,
        }
    }

    /// Records activity at `now_s` (moving `last_seen_s` forward) if the session is live at
    /// `now_s`; returns the updated session, or `None` when it is not live (an idle-expired
    /// session is not revived).
    pub async fn touch(&self, id: &str, now_s: u64) -> Result<Option<Session>, SessionError> {
        match self {
            Self::Dynamo(store) => store.touch(id, now_s).await,
        }
    }

    /// Revokes (signs out) session `id`; `true` when a stored session was marked revoked,
    /// `false` when there was none. Once this returns, no process answers it as live.
    pub async fn revoke(&self, id: &str) -> Result<bool, SessionError> {
        match self {
            Self::Dynamo(store) => store.revoke(id).await,
        }
    }

    /// Revokes every stored session of `operator_id`; returns how many were revoked.
    pub async fn revoke_all_for(&self, operator_id: &str) -> Result<usize, SessionError> {
        match self {
            Self::Dynamo(store) => store.revoke_all_for(operator_id).await,
        }
    }
}

impl From<DynamoSessions> for Sessions {
    fn from(store: DynamoSessions) -> Self {
        Self::Dynamo(store)
    }
}
