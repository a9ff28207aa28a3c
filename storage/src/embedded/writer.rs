//! The embedded store's single writer thread: group commit across cores.
//!
//! Every core's batcher sends its batch here; the writer takes everything queued, adds
//! the pending transfers whose timeout has passed, and commits it all in ONE redb write
//! transaction (prefetch, [`ledger::apply`], persist, fsync). Results go back only after
//! the commit returned, so an acknowledged transfer is on disk. A failed commit writes
//! nothing and fails every batch in it. The writer never blocks a core's runtime: cores
//! wait on a oneshot channel, not on the disk.
//!
//! Everything else the store writes (tenants, API keys, operators, sessions) arrives as
//! one generic [`Job::Control`]: a closure the writer runs in a write transaction of its
//! own after the batches it took with it, so that a read-check-write (counting a tenant's
//! active keys, refusing a used TOTP step) is atomic without any lock. A control job never
//! shares a transaction with a ledger batch, so its failure fails nothing else.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use redb::{Database, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{decode_account, decode_transfer, encode_account, encode_transfer};
use super::tables::{
    ACCOUNT_OWNERS, ACCOUNT_TRANSFERS, ACCOUNTS, FAILURES, META, META_TIMESTAMP_LAST,
    PENDING_EXPIRIES, PENDING_STATUSES, TRANSFERS,
};
use crate::error::StoreError;
use crate::ledger::{self, Changes, Event, Key, Outcome, PendingStatus, ResultCode, State};

/// Reply channel of a batch.
pub type BatchReply = oneshot::Sender<Result<Vec<Outcome>, StoreError>>;

/// A batch waiting for the next commit.
type QueuedBatch = (Vec<Event>, BatchReply);

/// What the writer took off its queue in one go.
struct Collected {
    batches: Vec<QueuedBatch>,
    control: Vec<Job>,
    stop: bool,
}

/// Work for the writer.
pub enum Job {
    /// Apply and commit a batch of events.
    Batch(Vec<Event>, BatchReply),
    /// Run a closure on the writer thread; it opens its own write transaction (see
    /// [`in_transaction`]) and replies through a channel of its own.
    Control(Box<dyn FnOnce(&Database) + Send>),
    /// Finish the jobs queued before this one, then stop.
    Shutdown,
}

/// Bounds and clock of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Most expired pending transfers released per commit.
    pub expire_batch_max: usize,
    /// How often an idle writer looks for expired pending transfers.
    pub expiry_scan_interval: Duration,
    /// Nanoseconds since the Unix epoch.
    pub clock: fn() -> u64,
}

/// Runs the writer until [`Job::Shutdown`] or until every sender is gone.
pub fn run(db: &Database, jobs: &Receiver<Job>, settings: WriterSettings, mut timestamp_last: u64) {
    loop {
        let first = match jobs.recv_timeout(settings.expiry_scan_interval) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let collected = collect(first, jobs);
        timestamp_last = commit_batches(db, collected.batches, settings, timestamp_last);
        for job in collected.control {
            run_control(db, job);
        }
        if collected.stop {
            return;
        }
    }
}

/// Splits what is queued into batches to commit together and other jobs, stopping at a
/// shutdown request.
fn collect(first: Option<Job>, jobs: &Receiver<Job>) -> Collected {
    let mut collected = Collected { batches: Vec::new(), control: Vec::new(), stop: false };
    let mut next = first;
    while let Some(job) = next {
        match job {
            Job::Batch(events, reply) => collected.batches.push((events, reply)),
            Job::Shutdown => {
                collected.stop = true;
                break;
            }
            other => collected.control.push(other),
        }
        next = jobs.try_recv().ok();
    }
    collected
}

fn commit_batches(
    db: &Database,
    batches: Vec<QueuedBatch>,
    settings: WriterSettings,
    timestamp_last: u64,
) -> u64 {
    let client_events: Vec<Event> = batches.iter().flat_map(|(e, _)| e.iter().copied()).collect();
    match commit(db, &client_events, settings, timestamp_last) {
        Ok((outcomes, timestamp)) => {
            reply_each(batches, outcomes);
            timestamp
        }
        Err(error) => {
            tracing::error!(%error, events = client_events.len(), "commit failed; batch rejected");
            for (_, reply) in batches {
                let _ = reply.send(Err(error.clone()));
            }
            timestamp_last
        }
    }
}

fn reply_each(batches: Vec<QueuedBatch>, outcomes: Vec<Outcome>) {
    let mut outcomes = outcomes.into_iter();
    for (events, reply) in batches {
        let mine: Vec<Outcome> = outcomes.by_ref().take(events.len()).collect();
        assert_eq!(mine.len(), events.len(), "one outcome per event");
        let _ = reply.send(Ok(mine));
    }
}

/// One write transaction: expire what is due, apply the clients' events, persist, fsync.
/// Returns the clients' outcomes and the newest timestamp.
fn commit(
    db: &Database,
    client_events: &[Event],
    settings: WriterSettings,
    timestamp_last: u64,
) -> Result<(Vec<Outcome>, u64), StoreError> {
    let now = (settings.clock)();
    let txn = db.begin_write()?;
    let result = {
        let mut tables = LedgerTables::open(&txn)?;
        let expired = tables.expired(now, settings.expire_batch_max)?;
        if expired.is_empty() && client_events.is_empty() {
            return Ok((Vec::new(), timestamp_last));
        }
        let mut events: Vec<Event> = expired
            .iter()
            .map(|&(_, tenant, id)| Event::ExpirePending(Key::new(tenant, id)))
            .collect();
        events.extend_from_slice(client_events);
        let mut state = tables.prefetch(&events, timestamp_last)?;
        let (mut outcomes, changes) = ledger::apply(&mut state, &events, now);
        let owned = tables.persist(&state, &changes)?;
        index_owners(&txn, &owned)?;
        tables.forget_expiries(&expired)?;
        outcomes.drain(..expired.len());
        (outcomes, state.timestamp_last)
    };
    txn.commit()?;
    Ok(result)
}

struct LedgerTables<'txn> {
    accounts: Table<'txn, (u64, u128), &'static [u8]>,
    transfers: Table<'txn, (u64, u128), &'static [u8]>,
    failures: Table<'txn, (u64, u128), u8>,
    pending_statuses: Table<'txn, (u64, u128), u8>,
    pending_expiries: Table<'txn, (u64, u64, u128), ()>,
    account_transfers: Table<'txn, (u64, u128, u64), u128>,
    meta: Table<'txn, &'static str, u64>,
}

impl<'txn> LedgerTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            accounts: txn.open_table(ACCOUNTS)?,
            transfers: txn.open_table(TRANSFERS)?,
            failures: txn.open_table(FAILURES)?,
            pending_statuses: txn.open_table(PENDING_STATUSES)?,
            pending_expiries: txn.open_table(PENDING_EXPIRIES)?,
            account_transfers: txn.open_table(ACCOUNT_TRANSFERS)?,
            meta: txn.open_table(META)?,
        })
    }

    /// Index entries `(expires_at, tenant, id)` of pending transfers due by `now`.
    fn expired(&self, now: u64, max: usize) -> Result<Vec<(u64, u64, u128)>, StoreError> {
        let mut due = Vec::new();
        for entry in self.pending_expiries.range(..=(now, u64::MAX, u128::MAX))?.take(max) {
            let (key, _) = entry?;
            due.push(key.value());
        }
        Ok(due)
    }

    /// Drops processed index entries, so an expiry that could not apply (its transfer
    /// was resolved meanwhile) is not retried at every commit.
    fn forget_expiries(&mut self, processed: &[(u64, u64, u128)]) -> Result<(), StoreError> {
        for key in processed {
            self.pending_expiries.remove(*key)?;
        }
        Ok(())
    }

    fn prefetch(&self, events: &[Event], timestamp_last: u64) -> Result<State, StoreError> {
        let mut state = State { timestamp_last, ..State::default() };
        for key in ledger::prefetch::transfer_keys(events) {
            self.load_transfer(key, &mut state)?;
        }
        for key in ledger::prefetch::account_keys(events, &state.transfers) {
            if let Some(bytes) = self.accounts.get((key.tenant, key.id))? {
                state.accounts.insert(key, decode_account(bytes.value())?);
            }
        }
        Ok(state)
    }

    fn load_transfer(&self, key: Key, state: &mut State) -> Result<(), StoreError> {
        let k = (key.tenant, key.id);
        if let Some(bytes) = self.transfers.get(k)? {
            state.transfers.insert(key, decode_transfer(bytes.value())?);
        }
        if let Some(byte) = self.failures.get(k)? {
            let code = ResultCode::from_byte(byte.value())
                .ok_or_else(|| StoreError::Corrupt("unknown stored result code".into()))?;
            state.failures.insert(key, code);
        }
        if let Some(byte) = self.pending_statuses.get(k)? {
            let status = PendingStatus::from_byte(byte.value())
                .ok_or_else(|| StoreError::Corrupt("unknown pending status".into()))?;
            state.pending_statuses.insert(key, status);
        }
        Ok(())
    }

    /// Writes the changes; returns the `ACCOUNT_OWNERS` rows of the accounts it created
    /// with an owner (accounts are immutable but for balances, so an owner is indexed once).
    fn persist(&mut self, state: &State, changes: &Changes) -> Result<Vec<OwnerRow>, StoreError> {
        let mut owned = Vec::new();
        for key in &changes.accounts {
            let account = state.accounts.get(key).expect("changed accounts are in the state");
            let bytes = encode_account(account);
            let created = self.accounts.insert((key.tenant, key.id), bytes.as_slice())?.is_none();
            if created && account.subject_id != 0 {
                owned.push((key.tenant, account.subject_id, key.id));
            }
        }
        for key in &changes.transfers {
            let transfer = state.transfers.get(key).expect("new transfers are in the state");
            self.insert_transfer(*key, transfer)?;
        }
        for (key, code) in &changes.failures {
            self.failures.insert((key.tenant, key.id), *code as u8)?;
        }
        for (key, status) in &changes.pending_statuses {
            self.pending_statuses.insert((key.tenant, key.id), status.to_byte())?;
            let pending = state.transfers.get(key).expect("resolved transfers are in the state");
            if let Some(at) = pending.expires_at() {
                self.pending_expiries.remove((at, key.tenant, key.id))?;
            }
        }
        self.meta.insert(META_TIMESTAMP_LAST, state.timestamp_last)?;
        Ok(owned)
    }

    fn insert_transfer(&mut self, key: Key, t: &ledger::Transfer) -> Result<(), StoreError> {
        let previous =
            self.transfers.insert((key.tenant, key.id), encode_transfer(t).as_slice())?;
        assert!(previous.is_none(), "transfers are immutable: an id is written once");
        drop(previous);
        self.account_transfers.insert((key.tenant, t.debit_account_id, t.timestamp), t.id)?;
        self.account_transfers.insert((key.tenant, t.credit_account_id, t.timestamp), t.id)?;
        if let Some(at) = t.expires_at() {
            self.pending_expiries.insert((at, key.tenant, key.id), ())?;
        }
        Ok(())
    }
}

/// An `ACCOUNT_OWNERS` row: `(tenant, subject id, account id)`.
type OwnerRow = (u64, u128, u128);

/// Indexes new owned accounts by owner; opens the table only when there is one, so a
/// batch without owners pays nothing.
fn index_owners(txn: &WriteTransaction, owned: &[OwnerRow]) -> Result<(), StoreError> {
    if owned.is_empty() {
        return Ok(());
    }
    let mut owners = txn.open_table(ACCOUNT_OWNERS)?;
    for row in owned {
        owners.insert(*row, ())?;
    }
    Ok(())
}

fn run_control(db: &Database, job: Job) {
    if let Job::Control(control) = job {
        control(db);
    }
}

/// Runs `f` in one write transaction: committed (fsynced) when `f` succeeds, aborted
/// (nothing written) when it fails.
pub fn in_transaction<T>(
    db: &Database,
    f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write()?;
    match f(&txn) {
        Ok(value) => {
            txn.commit()?;
            Ok(value)
        }
        Err(error) => {
            if let Err(abort) = txn.abort() {
                tracing::error!(%abort, "aborting a failed control transaction failed too");
            }
            Err(error)
        }
    }
}
