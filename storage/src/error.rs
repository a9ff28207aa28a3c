//! The storage layer's errors. Every variant says whether a caller may retry; messages
//! may carry paths and internal detail, so they go to logs, never to clients.
//!
//! A message never carries a secret, a session id, an operator's username or any other
//! personal information: the variants about operators, sessions and data subjects carry
//! no payload, and [`StoreError::Invalid`] names only the rule that was broken.

use std::path::PathBuf;

/// A storage failure.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database (redb allows one process at a time).
    #[error("the database {path} is in use by another process (is a gateway running?)")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// Reading or writing the database failed; nothing of the failed batch was written.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Stored data breaks a ledger invariant (for example, money is not conserved).
    #[error("stored data breaks an invariant: {0}")]
    Invariant(String),
    /// The database refused us in a way waiting will not cure (its certificate failed
    /// verification): fix the configuration.
    #[error("the database was refused: {0}")]
    Refused(String),
    /// The store is shutting down or its writer has stopped.
    #[error("storage is shutting down")]
    Closed,
    /// The writer's queue is full; try again shortly.
    #[error("storage writer queue is full")]
    Overloaded,
    /// The database schema could not be brought to this build's version.
    #[error("schema migration failed: {0}")]
    Migration(String),
    /// A tenant with this name exists already.
    #[error("a tenant named {0:?} exists already")]
    TenantExists(String),
    /// The record an operation needs does not exist (the payload names its kind:
    /// `"tenant"`).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// An API key with this key id exists already (in any tenant).
    #[error("an API key with this key id exists already")]
    KeyExists,
    /// The tenant already has [`crate::tenants::ACTIVE_KEYS_MAX`] active API keys: revoke
    /// one before adding another.
    #[error(
        "the tenant already has {} active API keys; revoke one first",
        crate::tenants::ACTIVE_KEYS_MAX
    )]
    TooManyKeys,
    /// An operator with this username exists already (the username is not repeated: it
    /// is personal information).
    #[error("an operator with this username exists already")]
    OperatorExists,
    /// A session with this id is stored already, live, revoked or expired (the id is not
    /// repeated: it is as good as a token).
    #[error("a session with this id exists already")]
    SessionExists,
    /// A data subject with this id exists already in the tenant, live or erased (the id is
    /// not repeated).
    #[error("a data subject with this id exists already")]
    SubjectExists,
    /// A value given to the store breaks a rule of its record; the payload names the rule,
    /// never the value.
    #[error("invalid input: {0}")]
    Invalid(&'static str),
}

impl StoreError {
    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io(_) | Self::Closed | Self::Overloaded)
    }

    /// A fixed, low-cardinality name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Locked { .. } => "locked",
            Self::Io(_) => "io",
            Self::Corrupt(_) => "corrupt",
            Self::Invariant(_) => "invariant",
            Self::Refused(_) => "refused",
            Self::Closed => "closed",
            Self::Overloaded => "overloaded",
            Self::Migration(_) => "migration",
            Self::TenantExists(_) => "tenant_exists",
            Self::NotFound(_) => "not_found",
            Self::KeyExists => "key_exists",
            Self::TooManyKeys => "too_many_keys",
            Self::OperatorExists => "operator_exists",
            Self::SessionExists => "session_exists",
            Self::SubjectExists => "subject_exists",
            Self::Invalid(_) => "invalid",
        }
    }
}

macro_rules! io_errors {
    ($($source:ty),+) => {
        $(impl From<$source> for StoreError {
            fn from(error: $source) -> Self {
                Self::Io(error.to_string())
            }
        })+
    };
}

io_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    std::io::Error
);
