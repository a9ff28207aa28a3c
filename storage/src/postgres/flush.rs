//! The PostgreSQL flush (ADR 0005): one transaction per batch. Due expiries are claimed,
//! the touched accounts locked in key order, the stored ids read, timestamps reserved
//! on the shared ledger clock, [`ledger::apply`] run in Rust, every change written with
//! `UNNEST`, and the outcomes returned only after COMMIT succeeded.
//!
//! Never answers before COMMIT, never writes outside the transaction, and never decides
//! a ledger rule itself: the rules are `ledger::apply`'s.

use std::collections::HashSet;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, Transaction};

use super::codec::{account_row, db, failure_row, i64_of, status_row, transfer_row, uuid};
use super::sql;
use crate::error::StoreError;
use crate::ledger::{self, Account, Changes, Event, Key, Outcome, State};

/// How often a flush that lost a race on a new id (unique violation) is retried.
const CONFLICT_RETRIES_MAX: usize = 3;

/// Statements prepared once per connection.
struct Statements {
    claim_expiries: Statement,
    lock_accounts: Statement,
    get_account: Statement,
    read_transfers: Statement,
    read_failures: Statement,
    read_statuses: Statement,
    reserve_timestamps: Statement,
    insert_accounts: Statement,
    update_balances: Statement,
    insert_transfers: Statement,
    insert_failures: Statement,
    insert_statuses: Statement,
    insert_expiries: Statement,
    delete_expiries: Statement,
}

/// A connection that commits ledger batches.
pub struct PgLedger {
    client: Client,
    statements: Statements,
    expire_batch_max: i64,
}

/// Key columns as arrays, for `unnest`.
#[derive(Default)]
struct KeyArrays {
    tenants: Vec<i64>,
    ids: Vec<uuid::Uuid>,
}

impl KeyArrays {
    fn of(keys: impl IntoIterator<Item = Key>) -> Result<Self, StoreError> {
        let mut arrays = Self::default();
        for key in keys {
            arrays.tenants.push(i64_of(key.tenant)?);
            arrays.ids.push(uuid(key.id));
        }
        Ok(arrays)
    }
}

impl PgLedger {
    /// Prepares the flush's statements on `client` (a migrated database).
    pub async fn new(client: Client, expire_batch_max: usize) -> Result<Self, StoreError> {
        let lock_accounts = sql::lock_accounts();
        let get_account = sql::get_account();
        let statements = Statements {
            claim_expiries: client.prepare(sql::CLAIM_EXPIRIES).await.map_err(db)?,
            lock_accounts: client.prepare(&lock_accounts).await.map_err(db)?,
            get_account: client.prepare(&get_account).await.map_err(db)?,
            read_transfers: client.prepare(sql::READ_TRANSFERS).await.map_err(db)?,
            read_failures: client.prepare(sql::READ_FAILURES).await.map_err(db)?,
            read_statuses: client.prepare(sql::READ_STATUSES).await.map_err(db)?,
            reserve_timestamps: client.prepare(sql::RESERVE_TIMESTAMPS).await.map_err(db)?,
            insert_accounts: client.prepare(sql::INSERT_ACCOUNTS).await.map_err(db)?,
            update_balances: client.prepare(sql::UPDATE_BALANCES).await.map_err(db)?,
            insert_transfers: client.prepare(sql::INSERT_TRANSFERS).await.map_err(db)?,
            insert_failures: client.prepare(sql::INSERT_FAILURES).await.map_err(db)?,
            insert_statuses: client.prepare(sql::INSERT_STATUSES).await.map_err(db)?,
            insert_expiries: client.prepare(sql::INSERT_EXPIRIES).await.map_err(db)?,
            delete_expiries: client.prepare(sql::DELETE_EXPIRIES).await.map_err(db)?,
        };
        let expire_batch_max = i64::try_from(expire_batch_max).unwrap_or(i64::MAX);
        Ok(Self { client, statements, expire_batch_max })
    }

    /// Applies `events` at `now_ns` in one transaction; outcomes only after COMMIT. A
    /// batch that lost a race on a new id is retried (the retry sees the winner's row).
    ///
    /// # Panics
    /// If the last event is `linked` (see `Embedded::submit`).
    pub async fn commit(
        &mut self,
        events: &[Event],
        now_ns: u64,
    ) -> Result<Vec<Outcome>, StoreError> {
        assert!(
            events.last().is_none_or(|event| !event.is_linked()),
            "a batch submitted to the store must not end inside a linked chain"
        );
        let mut attempt = 0;
        loop {
            match self.commit_once(events, now_ns).await {
                Err(Attempt::Conflict) if attempt < CONFLICT_RETRIES_MAX => attempt += 1,
                Err(Attempt::Conflict) => {
                    return Err(StoreError::Io("unique violations persisted after retries".into()));
                }
                Err(Attempt::Failed(error)) => return Err(error),
                Ok(outcomes) => return Ok(outcomes),
            }
        }
    }

    /// The account `key`, if it exists.
    pub async fn account(&self, key: Key) -> Result<Option<Account>, StoreError> {
        let params: [&(dyn ToSql + Sync); 2] = [&i64_of(key.tenant)?, &uuid(key.id)];
        let row = self.client.query_opt(&self.statements.get_account, &params).await.map_err(db)?;
        row.map(|row| account_row(&row).map(|(_, account)| account)).transpose()
    }

    async fn commit_once(
        &mut self,
        events: &[Event],
        now_ns: u64,
    ) -> Result<Vec<Outcome>, Attempt> {
        let statements = &self.statements;
        let txn = self.client.transaction().await.map_err(failed)?;
        let now = i64_of(now_ns)?;
        let expired = claim_expiries(&txn, statements, now, self.expire_batch_max).await?;
        let mut all: Vec<Event> = expired.iter().map(|key| Event::ExpirePending(*key)).collect();
        all.extend_from_slice(events);
        let (mut state, loaded, reserved_last) = read_locked(&txn, statements, &all, now).await?;
        let (mut outcomes, changes) = ledger::apply(&mut state, &all, now_ns);
        assert!(state.timestamp_last <= reserved_last, "timestamps stay within the reservation");
        write(&txn, statements, &state, &changes, &loaded).await?;
        txn.commit().await.map_err(classify)?;
        outcomes.drain(..expired.len());
        Ok(outcomes)
    }
}

/// Why one attempt failed.
enum Attempt {
    /// A concurrent flush created one of our new ids first: retry.
    Conflict,
    /// Anything else.
    Failed(StoreError),
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

fn failed(error: tokio_postgres::Error) -> Attempt {
    Attempt::Failed(db(error))
}

fn classify(error: tokio_postgres::Error) -> Attempt {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        Attempt::Conflict
    } else {
        failed(error)
    }
}

async fn claim_expiries(
    txn: &Transaction<'_>,
    statements: &Statements,
    now: i64,
    max: i64,
) -> Result<Vec<Key>, Attempt> {
    let rows = txn.query(&statements.claim_expiries, &[&now, &max]).await.map_err(failed)?;
    let mut keys: Vec<Key> = rows.iter().map(super::codec::key_row).collect::<Result<_, _>>()?;
    keys.sort_unstable();
    Ok(keys)
}

/// Round trip 1: lock accounts in key order, then read ids, failures, statuses and
/// reserve timestamps, pipelined. Returns the state, the keys of accounts that existed,
/// and the last reserved timestamp.
async fn read_locked(
    txn: &Transaction<'_>,
    statements: &Statements,
    events: &[Event],
    now: i64,
) -> Result<(State, HashSet<Key>, u64), Attempt> {
    let transfer_keys = KeyArrays::of(ledger::prefetch::transfer_keys(events))?;
    let named = KeyArrays::of(named_accounts(events))?;
    let pending = KeyArrays::of(pending_keys(events))?;
    let count = i64_of(events.len() as u64)?;
    let lock_params: [&(dyn ToSql + Sync); 4] =
        [&named.tenants, &named.ids, &pending.tenants, &pending.ids];
    let key_params: [&(dyn ToSql + Sync); 2] = [&transfer_keys.tenants, &transfer_keys.ids];
    let clock_params: [&(dyn ToSql + Sync); 2] = [&now, &count];
    // Sent in this order on one connection: the reads run after the locks are granted.
    let (accounts, transfers, failures, statuses, clock) = tokio::try_join!(
        txn.query(&statements.lock_accounts, &lock_params),
        txn.query(&statements.read_transfers, &key_params),
        txn.query(&statements.read_failures, &key_params),
        txn.query(&statements.read_statuses, &key_params),
        txn.query_one(&statements.reserve_timestamps, &clock_params),
    )
    .map_err(failed)?;
    let reserved_last: i64 = clock.try_get(0).map_err(db)?;
    let reserved_last = u64::try_from(reserved_last).map_err(|_| corrupt("ledger clock"))?;
    let mut state =
        State { timestamp_last: reserved_last - events.len() as u64, ..State::default() };
    let mut loaded = HashSet::with_capacity(accounts.len());
    for row in &accounts {
        let (key, account) = account_row(row)?;
        loaded.insert(key);
        state.accounts.insert(key, account);
    }
    fill(&mut state, &transfers, &failures, &statuses)?;
    Ok((state, loaded, reserved_last))
}

fn fill(
    state: &mut State,
    transfers: &[Row],
    failures: &[Row],
    statuses: &[Row],
) -> Result<(), StoreError> {
    for row in transfers {
        let (key, transfer) = transfer_row(row)?;
        state.transfers.insert(key, transfer);
    }
    for row in failures {
        let (key, code) = failure_row(row)?;
        state.failures.insert(key, code);
    }
    for row in statuses {
        let (key, status) = status_row(row)?;
        state.pending_statuses.insert(key, status);
    }
    Ok(())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} out of range"))
}

/// Accounts named by the events themselves (a post or void may name none).
fn named_accounts(events: &[Event]) -> Vec<Key> {
    let mut keys = Vec::with_capacity(events.len() * 2);
    for event in events {
        match *event {
            Event::CreateAccount(tenant, a) => keys.push(Key::new(tenant, a.id)),
            Event::CreateTransfer(tenant, t) => {
                keys.push(Key::new(tenant, t.debit_account_id));
                keys.push(Key::new(tenant, t.credit_account_id));
            }
            Event::ExpirePending(_) => {}
        }
    }
    keys.retain(|k| k.id != 0);
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Pending transfers the events resolve or expire: their accounts are locked too.
fn pending_keys(events: &[Event]) -> Vec<Key> {
    let mut keys: Vec<Key> = events
        .iter()
        .filter_map(|event| match *event {
            Event::CreateTransfer(tenant, t) if t.pending_id != 0 => {
                Some(Key::new(tenant, t.pending_id))
            }
            Event::ExpirePending(key) => Some(key),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Round trip 2: every change, pipelined, inside the transaction.
async fn write(
    txn: &Transaction<'_>,
    statements: &Statements,
    state: &State,
    changes: &Changes,
    loaded: &HashSet<Key>,
) -> Result<(), Attempt> {
    let rows = super::codec::ChangeRows::of(state, changes, loaded)?;
    let results = tokio::join!(
        rows.insert_accounts(txn, &statements.insert_accounts),
        rows.update_balances(txn, &statements.update_balances),
        rows.insert_transfers(txn, &statements.insert_transfers),
        rows.insert_failures(txn, &statements.insert_failures),
        rows.insert_statuses(txn, &statements.insert_statuses),
        rows.insert_expiries(txn, &statements.insert_expiries),
        rows.delete_expiries(txn, &statements.delete_expiries),
    );
    let all = [results.0, results.1, results.2, results.3, results.4, results.5, results.6];
    for result in all {
        result.map_err(classify)?;
    }
    Ok(())
}
