//! One face for both backends, so the gateway has no `match` on the backend in its
//! handlers: [`Store`] is the process's (tenants, keys, readiness), [`CoreStore`] is one
//! core's (batches and reads).
//!
//! It adds no rule and no cache of its own: every call goes to the backend.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::embedded::Embedded;
use crate::error::StoreError;
use crate::ledger::{Account, Event, Key, Outcome, Transfer};
use crate::postgres::{PgCore, PgStore};

/// The process's store.
#[derive(Clone)]
pub enum Store {
    /// The redb file (the default).
    Embedded(Arc<Embedded>),
    /// PostgreSQL / Aurora.
    Postgres(Arc<PgStore>),
}

impl Store {
    /// What one core uses; call on that core's runtime.
    pub fn core(&self) -> Result<CoreStore, StoreError> {
        match self {
            Self::Embedded(store) => Ok(CoreStore::Embedded(store.clone())),
            Self::Postgres(store) => Ok(CoreStore::Postgres(Box::new(store.core()?))),
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Embedded(store) => store.is_ready(),
            Self::Postgres(store) => store.is_ready(),
        }
    }

    /// Name of the backend, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A committed batch as one core sees it.
#[derive(Debug)]
pub struct Submitted {
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// Rows the batch wrote, where the backend counts them (PostgreSQL).
    pub rows_written: Option<u64>,
}

/// One core's store.
pub enum CoreStore {
    /// The embedded store (its writer thread serves every core).
    Embedded(Arc<Embedded>),
    /// This core's PostgreSQL connections.
    Postgres(Box<PgCore>),
}

impl CoreStore {
    /// Commits `events` as one durable batch; outcomes only after the commit.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Submitted, StoreError> {
        match self {
            Self::Embedded(store) => {
                Ok(Submitted { outcomes: store.submit(events).await?, rows_written: None })
            }
            Self::Postgres(core) => {
                let committed = core.commit(&events, now_ns()).await?;
                let rows_written = Some(committed.rows_written);
                Ok(Submitted { outcomes: committed.outcomes, rows_written })
            }
        }
    }

    /// The account `key`, if it exists.
    pub async fn account(&self, key: Key) -> Result<Option<Account>, StoreError> {
        match self {
            Self::Embedded(store) => store.account(key),
            Self::Postgres(core) => core.account(key).await,
        }
    }

    /// The transfer `key`, if it exists.
    pub async fn transfer(&self, key: Key) -> Result<Option<Transfer>, StoreError> {
        match self {
            Self::Embedded(store) => store.transfer(key),
            Self::Postgres(core) => core.transfer(key).await,
        }
    }

    /// Up to `limit` transfers of account `key` after timestamp `after`, oldest first;
    /// `None` when the account does not exist.
    pub async fn account_transfers(
        &self,
        key: Key,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Transfer>>, StoreError> {
        match self {
            Self::Embedded(store) => store.account_transfers(key, after, limit),
            Self::Postgres(core) => core.account_transfers(key, after, limit).await,
        }
    }
}

/// Wall-clock nanoseconds since the Unix epoch (the ledger keeps its timestamps strictly
/// increasing whatever the clock does).
pub(crate) fn now_ns() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}
