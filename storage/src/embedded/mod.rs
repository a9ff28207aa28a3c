//! The embedded backend: the whole ledger in one redb file under the data directory.
//!
//! The default store, so the gateway runs on a fresh machine with no server. One writer
//! thread ([`writer`]) commits every batch from every core, fsynced before any result is
//! returned; reads run on the caller's thread in redb read transactions (MVCC, so they
//! never wait for the writer). Opening checks the format version and that money is
//! conserved in every ledger of every tenant, and refuses to start otherwise (a store of
//! format 1 or 2 is upgraded in place first). One process at a time: redb locks the file.
//!
//! Besides the ledger it keeps tenants and their API keys ([`tenants`]), operators
//! ([`operators`]), operator sessions ([`sessions`]), and the vault's subjects
//! ([`vault`]) and consents ([`consent`]); their writes go through the same writer as
//! control jobs ([`Embedded::write`]), their reads run on the caller's thread. After
//! subjects were erased, opening compacts the file first. It never sees a secret in clear
//! and never logs a record's contents.

mod audit;
mod codec;
mod consent;
mod operators;
mod sessions;
mod tables;
mod tenants;
mod vault;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::ledger::{Account, Event, Key, Outcome, TenantId, Transfer};
use codec::{decode_account, decode_transfer};
use tables::{
    ACCOUNT_TRANSFERS, ACCOUNTS, API_KEYS, FAILURES, FORMAT_VERSION, FORMAT_VERSION_1,
    FORMAT_VERSION_2, META, META_FORMAT, META_TIMESTAMP_LAST, OPERATOR_NAMES, OPERATOR_SESSIONS,
    OPERATORS, PENDING_EXPIRIES, PENDING_STATUSES, SESSION_EXPIRIES, SESSIONS, TENANT_KEYS,
    TENANT_NAMES, TENANTS, TRANSFERS,
};
use writer::{Job, WriterSettings};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "protea.redb";

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Directory holding the database file; created if missing.
    pub data_dir: PathBuf,
    /// Most jobs waiting for the writer (each is one core's batch).
    pub writer_queue_max: usize,
    /// Most expired pending transfers released per commit.
    pub expire_batch_max: usize,
    /// How often an idle writer looks for expired pending transfers.
    pub expiry_scan_interval: Duration,
    /// The writer's clock, nanoseconds since the Unix epoch (the wall clock; tests that
    /// replay dated scenarios pass their own).
    pub clock: fn() -> u64,
}

impl EmbeddedConfig {
    /// Defaults for everything but the directory.
    pub fn in_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            writer_queue_max: 256,
            expire_batch_max: 1024,
            expiry_scan_interval: Duration::from_secs(1),
            clock: crate::store::now_ns,
        }
    }
}

/// The embedded store. Share it with `Arc`; call [`Embedded::close`] once at shutdown.
pub struct Embedded {
    db: std::sync::Arc<Database>,
    jobs: SyncSender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Embedded {
    /// Opens (or creates) the store, checks it, and starts its writer thread.
    pub fn open(config: &EmbeddedConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let path = config.data_dir.join(DATABASE_FILE);
        let mut db = open_database(&path)?;
        let timestamp_last = initialise(&db)?;
        vault::compact_after_erasures(&mut db)?;
        let db = std::sync::Arc::new(db);
        check_conservation(&db)?;
        let (jobs, receiver) = sync_channel(config.writer_queue_max);
        let settings = WriterSettings {
            expire_batch_max: config.expire_batch_max,
            expiry_scan_interval: config.expiry_scan_interval,
            clock: config.clock,
        };
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("protea-writer".into())
            .spawn(move || writer::run(&writer_db, &receiver, settings, timestamp_last))?;
        Ok(Self { db, jobs, writer: Mutex::new(Some(writer)) })
    }

    /// Applies `events` as one durable batch: the outcomes arrive after the commit.
    ///
    /// # Panics
    /// If the last event is `linked`: batches from several requests are committed
    /// together, so an open chain would run into another request's events. Callers answer
    /// open chains themselves (`linked_event_chain_open`) and never submit them.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<Outcome>, StoreError> {
        assert!(
            events.last().is_none_or(|event| !event.is_linked()),
            "a batch submitted to the store must not end inside a linked chain"
        );
        let (reply, outcome) = oneshot::channel();
        self.send(Job::Batch(events, reply))?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer thread in a write transaction of its own, committed (fsynced)
    /// when `f` succeeds and aborted when it fails; the result arrives after the commit.
    /// A full writer queue is [`StoreError::Overloaded`], a stopped writer
    /// [`StoreError::Closed`].
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel();
        let control = move |db: &Database| {
            let _ = reply.send(writer::in_transaction(db, f));
        };
        self.send(Job::Control(Box::new(control)))?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` in a read transaction on the caller's thread (it never waits for the
    /// writer).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        f(&txn)
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Closed,
        })
    }

    /// Finishes every job queued so far, then stops the writer and waits for it.
    pub fn close(&self) {
        let _ = self.jobs.send(Job::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the storage writer thread panicked");
        }
    }

    /// The account `key`, if it exists.
    pub fn account(&self, key: Key) -> Result<Option<Account>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let table = txn.open_table(ACCOUNTS)?;
        let value = table.get((key.tenant, key.id))?;
        value.map(|bytes| decode_account(bytes.value())).transpose()
    }

    /// The transfer `key`, if it exists.
    pub fn transfer(&self, key: Key) -> Result<Option<Transfer>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let table = txn.open_table(TRANSFERS)?;
        let value = table.get((key.tenant, key.id))?;
        value.map(|bytes| decode_transfer(bytes.value())).transpose()
    }

    /// Up to `limit` transfers of account `key` with a timestamp after `after`, oldest
    /// first. `None` when the account does not exist.
    pub fn account_transfers(
        &self,
        key: Key,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Transfer>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        if txn.open_table(ACCOUNTS)?.get((key.tenant, key.id))?.is_none() {
            return Ok(None);
        }
        let history = txn.open_table(ACCOUNT_TRANSFERS)?;
        let transfers = txn.open_table(TRANSFERS)?;
        let start = (key.tenant, key.id, after.saturating_add(1));
        let mut page = Vec::with_capacity(limit.min(1024));
        for entry in history.range(start..=(key.tenant, key.id, u64::MAX))?.take(limit) {
            let (_, transfer_id) = entry?;
            let bytes = transfers
                .get((key.tenant, transfer_id.value()))?
                .ok_or_else(|| StoreError::Corrupt("history names a missing transfer".into()))?;
            page.push(decode_transfer(bytes.value())?);
        }
        Ok(Some(page))
    }

    /// The newest timestamp the ledger has given out (no record created later has one at
    /// or below it).
    pub fn timestamp_last(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_TIMESTAMP_LAST)?.map_or(0, |v| v.value()))
    }

    /// Whether the database answers a read.
    pub fn is_ready(&self) -> bool {
        self.db.begin_read().is_ok()
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::create(path).map_err(|error| match error {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_owned() },
        other => StoreError::Io(format!("opening {}: {other}", path.display())),
    })
}

/// Creates every table, checks the format version, and returns the newest timestamp.
fn initialise(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write()?;
    let timestamp_last = {
        txn.open_table(ACCOUNTS)?;
        txn.open_table(TRANSFERS)?;
        txn.open_table(FAILURES)?;
        txn.open_table(PENDING_STATUSES)?;
        txn.open_table(PENDING_EXPIRIES)?;
        txn.open_table(ACCOUNT_TRANSFERS)?;
        txn.open_table(TENANTS)?;
        txn.open_table(TENANT_NAMES)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(TENANT_KEYS)?;
        txn.open_table(OPERATORS)?;
        txn.open_table(OPERATOR_NAMES)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(SESSION_EXPIRIES)?;
        txn.open_table(OPERATOR_SESSIONS)?;
        vault::create_tables(&txn)?;
        let format = txn.open_table(META)?.get(META_FORMAT)?.map(|v| v.value());
        check_format(&txn, format)?;
        txn.open_table(META)?.get(META_TIMESTAMP_LAST)?.map_or(0, |v| v.value())
    };
    txn.commit()?;
    Ok(timestamp_last)
}

/// Stamps a new store with [`FORMAT_VERSION`], upgrades a format-1 or format-2 store in
/// place (in the opening transaction, so an upgrade is whole or not at all), and refuses
/// any other.
fn check_format(txn: &WriteTransaction, format: Option<u64>) -> Result<(), StoreError> {
    match format {
        Some(FORMAT_VERSION) => return Ok(()),
        None => {}
        Some(FORMAT_VERSION_1) => {
            let upgraded = tenants::upgrade_from_format_1(txn)?;
            tracing::info!(api_keys = upgraded, "embedded store upgraded from format 1 to 2");
            upgrade_from_format_2(txn)?;
        }
        Some(FORMAT_VERSION_2) => upgrade_from_format_2(txn)?,
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "database format {other}, this build reads {FORMAT_VERSION_1} to {FORMAT_VERSION}"
            )));
        }
    }
    txn.open_table(META)?.insert(META_FORMAT, FORMAT_VERSION)?;
    Ok(())
}

/// Format 2 -> 3: indexes the stored accounts that have an owner (the vault's tables
/// start empty).
fn upgrade_from_format_2(txn: &WriteTransaction) -> Result<(), StoreError> {
    let owned = vault::backfill_account_owners(txn)?;
    tracing::info!(owned_accounts = owned, "embedded store upgraded from format 2 to 3");
    Ok(())
}

/// Advances the named counter in `META` and returns its new value: ids start at 1.
fn next_id(txn: &WriteTransaction, counter: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let last = meta.get(counter)?.map_or(0, |v| v.value());
    let id =
        last.checked_add(1).ok_or_else(|| StoreError::Invariant(format!("{counter} overflow")))?;
    meta.insert(counter, id)?;
    Ok(id)
}

#[derive(Default)]
struct LedgerTotals {
    debits_pending: u128,
    debits_posted: u128,
    credits_pending: u128,
    credits_posted: u128,
}

/// Checks, after reading every account, that debits equal credits in every ledger.
fn check_conservation(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(StoreError::from)?;
    let table = txn.open_table(ACCOUNTS)?;
    let mut totals: HashMap<(TenantId, u32), LedgerTotals> = HashMap::new();
    for entry in table.iter()? {
        let (key, bytes) = entry?;
        let account = decode_account(bytes.value())?;
        let t = totals.entry((key.value().0, account.ledger)).or_default();
        t.debits_pending += u128::from(account.debits_pending);
        t.debits_posted += u128::from(account.debits_posted);
        t.credits_pending += u128::from(account.credits_pending);
        t.credits_posted += u128::from(account.credits_posted);
    }
    for ((tenant, ledger), t) in totals {
        if t.debits_pending != t.credits_pending || t.debits_posted != t.credits_posted {
            return Err(StoreError::Invariant(format!(
                "tenant {tenant} ledger {ledger}: debits and credits differ"
            )));
        }
    }
    Ok(())
}
