//! The PostgreSQL store as a gateway runs it: [`PgStore`] is shared by the process (the
//! connector, the settings, readiness), [`PgCore`] is what one core owns (its flush
//! connection and its bounded read pool, used on that core's runtime only), and
//! [`PgAdmin`] is one connection for migrations, tenants, keys and the first operators
//! (what the command line needs). Tenants, keys, operators and sessions are served on the
//! core's read pool, each write in a transaction of its own.
//!
//! Never shares a connection between cores and never answers a flush before COMMIT
//! (that is [`super::flush`]'s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError, Status};
use pool::pg::Connector;

use super::codec::{connect_error, db};
use super::flush::{Committed, PgLedger};
use super::migrations::{self, MigrationReport};
use super::{keys, operators, reads, sessions};
use crate::error::StoreError;
use crate::ledger::{Account, Event, Key, TenantId, Transfer};
use crate::operators::{NewOperator, Operator, SignInRecorded};
use crate::sessions::Session;
use crate::tenants::{ApiKeyInfo, ApiKeyRecord, NewApiKey, NewTenant, Tenant};

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
        keys::create_tenant(&mut self.client, new).await
    }

    /// Every tenant.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        keys::tenants(&self.client).await
    }

    /// The tenant named `name`, if it exists.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        keys::tenant_by_name(&self.client, name).await
    }

    /// Every active API key (also the readiness probe: it answers only when the database
    /// does).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        keys::api_keys(&self.client).await
    }

    /// Every key of `tenant`, active and revoked (see [`PgCore::api_key_infos`]).
    pub async fn api_key_infos(&self, tenant: TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        keys::api_key_infos(&self.client, tenant).await
    }

    /// Adds an API key to `tenant` (see [`PgCore::add_api_key`]).
    pub async fn add_api_key(
        &mut self,
        tenant: TenantId,
        key: NewApiKey,
    ) -> Result<(), StoreError> {
        keys::add_api_key(&mut self.client, tenant, &key).await
    }

    /// Revokes `tenant`'s active key `key_id` (see [`PgCore::revoke_api_key`]).
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        keys::revoke_api_key(&self.client, tenant, key_id, now_s).await
    }

    /// Creates an operator (the command line bootstraps the first admin with it).
    pub async fn create_operator(&self, new: NewOperator) -> Result<Operator, StoreError> {
        operators::create_operator(&self.client, &new).await
    }

    /// Every operator, by id.
    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        operators::operators(&self.client).await
    }

    /// Clears an operator's lock and failures; `false` when there is no such operator.
    pub async fn unlock_operator(&self, id: u64) -> Result<bool, StoreError> {
        operators::unlock_operator(&self.client, id).await
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

    /// The tenant `id`, if it exists.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        keys::tenant(&*self.read_client().await?, id).await
    }

    /// The tenant named `name`, if it exists.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        keys::tenant_by_name(&*self.read_client().await?, name).await
    }

    /// Creates a tenant with its first API key, in one transaction.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
        keys::create_tenant(&mut *self.read_client().await?, new).await
    }

    /// Every active API key.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        keys::api_keys(&*self.read_client().await?).await
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        keys::tenants(&*self.read_client().await?).await
    }

    /// Every key of `tenant`, active and revoked, oldest first (ties by key id).
    pub async fn api_key_infos(&self, tenant: TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        keys::api_key_infos(&*self.read_client().await?, tenant).await
    }

    /// Adds an API key to `tenant` under the tenant row's lock: [`StoreError::NotFound`],
    /// [`StoreError::TooManyKeys`] or [`StoreError::KeyExists`] when it cannot.
    pub async fn add_api_key(&self, tenant: TenantId, key: NewApiKey) -> Result<(), StoreError> {
        keys::add_api_key(&mut *self.read_client().await?, tenant, &key).await
    }

    /// Revokes `tenant`'s active key `key_id` at `now_s`: `true` when it did.
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        keys::revoke_api_key(&*self.read_client().await?, tenant, key_id, now_s).await
    }

    /// Creates an operator: [`StoreError::OperatorExists`] when the username is taken.
    pub async fn create_operator(&self, new: NewOperator) -> Result<Operator, StoreError> {
        operators::create_operator(&*self.read_client().await?, &new).await
    }

    /// The operator `id`, if it exists.
    pub async fn operator(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        operators::operator(&*self.read_client().await?, id).await
    }

    /// The operator signing in as `username`, if any.
    pub async fn operator_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Operator>, StoreError> {
        operators::operator_by_username(&*self.read_client().await?, username).await
    }

    /// Every operator, by id.
    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        operators::operators(&*self.read_client().await?).await
    }

    /// Counts a failed sign-in; the updated operator, or `None` when there is none.
    pub async fn record_sign_in_failure(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        operators::record_sign_in_failure(&*self.read_client().await?, id).await
    }

    /// Records a successful sign-in at `totp_step` under the operator's row lock.
    pub async fn record_sign_in_success(
        &self,
        id: u64,
        totp_step: u64,
    ) -> Result<SignInRecorded, StoreError> {
        operators::record_sign_in_success(&mut *self.read_client().await?, id, totp_step).await
    }

    /// Clears an operator's lock and failures; `false` when there is no such operator.
    pub async fn unlock_operator(&self, id: u64) -> Result<bool, StoreError> {
        operators::unlock_operator(&*self.read_client().await?, id).await
    }

    /// Disables or enables an operator; `false` when there is no such operator.
    pub async fn set_operator_disabled(&self, id: u64, disabled: bool) -> Result<bool, StoreError> {
        operators::set_operator_disabled(&*self.read_client().await?, id, disabled).await
    }

    /// Replaces an operator's password hash; `false` when there is no such operator.
    pub async fn set_operator_password(
        &self,
        id: u64,
        password_phc: String,
    ) -> Result<bool, StoreError> {
        operators::set_operator_password(&*self.read_client().await?, id, &password_phc).await
    }

    /// Stores a new session after purging dead ones.
    pub async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        sessions::create_session(&*self.read_client().await?, session).await
    }

    /// The session `id` if it is live at `now_s`.
    pub async fn session(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        sessions::session(&*self.read_client().await?, id, now_s).await
    }

    /// Records activity at `now_s` on a live session; the session if it is live.
    pub async fn session_touch(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        sessions::session_touch(&*self.read_client().await?, id, now_s).await
    }

    /// Marks session `id` revoked: `true` when it is stored.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        sessions::revoke_session(&*self.read_client().await?, id).await
    }

    /// Marks every stored session of `operator_id` revoked; how many are stored.
    pub async fn revoke_sessions_of(&self, operator_id: &str) -> Result<usize, StoreError> {
        sessions::revoke_sessions_of(&*self.read_client().await?, operator_id).await
    }

    /// The read pool's size, idle connections and waiters.
    pub fn pool_status(&self) -> Status {
        self.reads.status()
    }

    /// Times the flush connection broke and was replaced.
    pub fn reconnects_total(&self) -> u64 {
        self.reconnects_total.load(Ordering::Relaxed)
    }

    /// A connection of this core's read pool (a timeout waiting for one is `Overloaded`).
    pub(super) async fn read_client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.reads.get().await.map_err(|error| match error {
            PoolError::Timeout(_) => StoreError::Overloaded,
            PoolError::Backend(error) => db(error),
            other => StoreError::Io(format!("read pool: {other}")),
        })
    }
}
