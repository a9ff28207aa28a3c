//! The PostgreSQL store as a gateway runs it: [`PgStore`] is shared by the process (the
//! connector, the settings, readiness), [`PgCore`] is what one core owns (its flush
//! connection and its bounded read pool, used on that core's runtime only), and
//! [`PgAdmin`] is one connection for migrations, tenants and key look-ups.
//!
//! Never shares a connection between cores and never answers a flush before COMMIT
//! (that is [`super::flush`]'s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError, Status};
use pool::pg::Connector;
use tokio_postgres::error::SqlState;

use super::codec::{connect_error, db};
use super::flush::{Committed, PgLedger};
use super::migrations::{self, MigrationReport};
use super::{reads, sql};
use crate::error::StoreError;
use crate::ledger::{Account, Event, Key, Transfer};
use crate::tenants::{ApiKeyRecord, NewTenant, Tenant};

/// Bounds of a PostgreSQL store.
#[derive(Clone, Copy, Debug)]
pub struct PgSettings {
    /// Most read connections per core (the flush has one more of its own).
    pub read_pool_size_max: usize,
    /// Longest a read waits for a free pooled connection before it fails (503).
    pub pool_wait_timeout: Duration,
    /// Most expired pending transfers released per flush.
    pub expire_batch_max: usize,
}

/// The process's view of the database.
#[derive(Debug)]
pub struct PgStore {
    connector: Arc<Connector>,
    settings: PgSettings,
    ready: AtomicBool,
}

impl PgStore {
    /// A store reaching the database through `connector`; not ready until
    /// [`PgStore::set_ready`] says so.
    pub fn new(connector: Arc<Connector>, settings: PgSettings) -> Self {
        Self { connector, settings, ready: AtomicBool::new(false) }
    }

    /// The connector (to swap its URL when a secret rotates).
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    /// A new administrative connection on the current runtime.
    pub async fn admin(&self) -> Result<PgAdmin, StoreError> {
        let client = self.connector.connect().await.map_err(connect_error)?;
        Ok(PgAdmin { client })
    }

    /// What one core owns. Call on that core's runtime; nothing connects until used.
    pub fn core(&self) -> Result<PgCore, StoreError> {
        let size = self.settings.read_pool_size_max;
        let reads =
            pool::pg::core_pool(self.connector.clone(), size, self.settings.pool_wait_timeout)
                .map_err(|e| StoreError::Io(format!("read pool: {e}")))?;
        let ledger = PgLedger::new(self.connector.clone(), self.settings.expire_batch_max);
        Ok(PgCore {
            ledger: tokio::sync::Mutex::new(ledger),
            reads,
            reconnects_total: AtomicU64::new(0),
        })
    }

    /// Whether the last probe reached the database.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records a probe's result.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// One administrative connection.
pub struct PgAdmin {
    client: tokio_postgres::Client,
}

impl PgAdmin {
    /// Brings the schema to this build's version (under the advisory lock).
    pub async fn migrate(&mut self) -> Result<MigrationReport, StoreError> {
        migrations::migrate(&mut self.client).await
    }

    /// Refuses a schema older or newer than this build (run `gateway migrate`).
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let current = migrations::current_version(&self.client).await?;
        let latest = migrations::MIGRATIONS.last().map_or(0, |m| m.version);
        if current == latest {
            Ok(())
        } else {
            Err(StoreError::Migration(format!(
                "the database schema is version {current}, this build needs {latest}"
            )))
        }
    }

    /// Whether the connection broke (then make a new one).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Creates a tenant with its first API key, in one transaction.
    pub async fn create_tenant(&mut self, new: NewTenant) -> Result<Tenant, StoreError> {
        let txn = self.client.transaction().await.map_err(db)?;
        let inserted = txn.query_one(sql::INSERT_TENANT, &[&new.name]).await;
        let row = match inserted {
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::TenantExists(new.name));
            }
            other => other.map_err(db)?,
        };
        let id: i64 = row.try_get(0).map_err(db)?;
        let digest = new.secret_digest.as_slice();
        txn.execute(sql::INSERT_API_KEY, &[&new.key_id, &id, &digest]).await.map_err(db)?;
        txn.commit().await.map_err(db)?;
        let id = u64::try_from(id).map_err(|_| StoreError::Corrupt("tenant id".into()))?;
        Ok(Tenant { id, name: new.name })
    }

    /// Every tenant.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        reads::tenants(&self.client).await
    }

    /// Every API key (also the readiness probe: it answers only when the database does).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        reads::api_keys(&self.client).await
    }
}

/// What one core owns: its flush connection and its read pool.
pub struct PgCore {
    ledger: tokio::sync::Mutex<PgLedger>,
    reads: Pool,
    reconnects_total: AtomicU64,
}

impl PgCore {
    /// Commits one batch (the core's batcher runs one flush at a time, so the lock is
    /// never contended).
    pub async fn commit(&self, events: &[Event], now_ns: u64) -> Result<Committed, StoreError> {
        let mut ledger = self.ledger.lock().await;
        let committed = ledger.commit(events, now_ns).await;
        self.reconnects_total.store(ledger.reconnects_total(), Ordering::Relaxed);
        committed
    }

    /// The account `key`, if it exists.
    pub async fn account(&self, key: Key) -> Result<Option<Account>, StoreError> {
        reads::account(&self.read_client().await?, key).await
    }

    /// The transfer `key`, if it exists.
    pub async fn transfer(&self, key: Key) -> Result<Option<Transfer>, StoreError> {
        reads::transfer(&self.read_client().await?, key).await
    }

    /// A page of account `key`'s history (see [`reads::account_transfers`]).
    pub async fn account_transfers(
        &self,
        key: Key,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Transfer>>, StoreError> {
        reads::account_transfers(&self.read_client().await?, key, after, limit).await
    }

    /// The read pool's size, idle connections and waiters.
    pub fn pool_status(&self) -> Status {
        self.reads.status()
    }

    /// Times the flush connection broke and was replaced.
    pub fn reconnects_total(&self) -> u64 {
        self.reconnects_total.load(Ordering::Relaxed)
    }

    async fn read_client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.reads.get().await.map_err(|error| match error {
            PoolError::Timeout(_) => StoreError::Overloaded,
            PoolError::Backend(error) => db(error),
            other => StoreError::Io(format!("read pool: {other}")),
        })
    }
}
