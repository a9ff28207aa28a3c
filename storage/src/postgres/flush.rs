//! The PostgreSQL flush (ADRs 0005 and 0007): one transaction per batch, in two pipelined
//! round trips. BEGIN, the touched accounts locked in key order, the stored ids read and
//! timestamps reserved (no lock held until COMMIT); [`ledger::apply`] run in Rust; every
//! change written with `UNNEST`, pipelined with COMMIT; the outcomes returned only after
//! COMMIT succeeded. Due expiries are claimed at most every 100 ms, in a round trip of
//! their own before the locks.
//!
//! Never answers before COMMIT, never writes outside the transaction, and never decides
//! a ledger rule itself: the rules are `ledger::apply`'s.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use pool::pg::Connector;
use tokio_postgres::{Client, Row, Statement};

use super::codec::{account_row, db, failure_row, i64_of, status_row, transfer_row, uuid};
use super::sql;
use crate::error::StoreError;
use crate::ledger::{self, Account, Event, Key, Outcome, State};

/// How often a flush that lost a race on a new id (unique violation) is retried.
const CONFLICT_RETRIES_MAX: usize = 3;
/// How often one flush reconnects before it fails (about 20 s of back-off in all,
/// enough for a PostgreSQL restart or an Aurora failover to complete).
const RECONNECTS_MAX: usize = 14;
/// Ledger time between two expiry claims of one flush connection (100 ms): a due pending
/// transfer is released within about this long of its timeout while flushes run.
const CLAIM_INTERVAL_NS: u64 = 100_000_000;
/// How often `pg_xact_status` is asked while the server still runs the transaction.
const XACT_STATUS_POLLS_MAX: usize = 500;

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

/// Commits ledger batches on its own connection, reconnecting when it breaks.
pub struct PgLedger {
    connector: Arc<Connector>,
    connection: Option<Connection>,
    expire_batch_max: i64,
    reconnects_total: u64,
    /// The ledger time of the last expiry claim, and whether it hit the maximum.
    claimed_at_ns: Option<u64>,
    claim_again: bool,
}

/// A committed batch: one outcome per event, and how many rows it wrote.
#[derive(Debug)]
pub struct Committed {
    /// One outcome per submitted event, in order.
    pub outcomes: Vec<Outcome>,
    /// Rows inserted, updated or deleted by the batch (expiries included).
    pub rows_written: u64,
}

/// A live connection with its prepared statements.
struct Connection {
    client: Client,
    statements: Statements,
}

/// What `pg_xact_status` says of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XactStatus {
    Committed,
    Aborted,
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
    /// A ledger that connects on its first commit (so a core starts while the database
    /// is unreachable, and answers 503 until it is back).
    pub fn new(connector: Arc<Connector>, expire_batch_max: usize) -> Self {
        let expire_batch_max = i64::try_from(expire_batch_max).unwrap_or(i64::MAX);
        Self {
            connector,
            connection: None,
            expire_batch_max,
            reconnects_total: 0,
            claimed_at_ns: None,
            claim_again: false,
        }
    }

    /// Connects to a migrated database now and prepares the flush's statements.
    pub async fn connect(
        connector: Arc<Connector>,
        expire_batch_max: usize,
    ) -> Result<Self, StoreError> {
        let mut ledger = Self::new(connector, expire_batch_max);
        ledger.connection().await?;
        Ok(ledger)
    }

    /// How many times the connection broke and was replaced, since this ledger began.
    pub fn reconnects_total(&self) -> u64 {
        self.reconnects_total
    }

    /// The live connection, after reconnecting if it broke.
    async fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        if self.connection.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.connection = None;
        }
        if self.connection.is_none() {
            self.connection = Some(Connection::open(&self.connector).await?);
        }
        self.connection.as_mut().ok_or(StoreError::Closed)
    }

    /// The server process of the current connection (for fault tests and logs).
    pub async fn backend_pid(&mut self) -> Result<i32, StoreError> {
        let row = self.connection().await?.client.query_one("SELECT pg_backend_pid()", &[]);
        row.await.map_err(db)?.try_get(0).map_err(db)
    }

    /// Applies `events` at `now_ns` in one transaction; outcomes only after COMMIT.
    ///
    /// A batch that lost a race on a new id is retried (the retry sees the winner's
    /// row). When the connection breaks, it reconnects with back-off; if the break may
    /// have come after COMMIT was sent, `pg_xact_status` decides: a committed batch
    /// answers the outcomes it computed, an aborted one is applied again (its stored ids
    /// make that safe). So no answer ever disagrees with what was committed.
    ///
    /// # Panics
    /// If the last event is `linked` (see `Embedded::submit`).
    pub async fn commit(&mut self, events: &[Event], now_ns: u64) -> Result<Committed, StoreError> {
        assert!(
            events.last().is_none_or(|event| !event.is_linked()),
            "a batch submitted to the store must not end inside a linked chain"
        );
        let (mut conflicts, mut breaks) = (0, 0);
        loop {
            let claim_max = self.claim_due(now_ns);
            let attempt = match self.connection().await {
                Ok(connection) => connection.commit_once(events, now_ns, claim_max).await,
                Err(error) => Err(Attempt::Broken { error, txid: None, outcomes: None }),
            };
            match attempt {
                Ok((committed, claimed)) => {
                    if let Some(max) = claim_max {
                        self.claimed_at_ns = Some(now_ns);
                        self.claim_again = i64::try_from(claimed).is_ok_and(|n| n >= max);
                    }
                    return Ok(committed);
                }
                Err(Attempt::Conflict) if conflicts < CONFLICT_RETRIES_MAX => conflicts += 1,
                Err(Attempt::Conflict) => {
                    return Err(StoreError::Io("unique violations persisted after retries".into()));
                }
                Err(Attempt::Failed(error)) => return Err(error),
                Err(Attempt::Broken { error, txid, outcomes }) => {
                    self.connection = None;
                    self.reconnects_total += 1;
                    breaks += 1;
                    if breaks > RECONNECTS_MAX {
                        return Err(error);
                    }
                    tracing::warn!(%error, breaks, "flush connection broke; reconnecting");
                    tokio::time::sleep(backoff(breaks)).await;
                    if let (Some(txid), Some(outcomes)) = (txid, outcomes)
                        && self.xact_status(txid).await? == XactStatus::Committed
                    {
                        return Ok(outcomes);
                    }
                }
            }
        }
    }

    /// The most expiries to claim in this flush, when a claim is due: at most every
    /// [`CLAIM_INTERVAL_NS`] of ledger time, or at once when the last claim was full.
    /// Claiming decides what the flush locks, so it costs a round trip of its own.
    fn claim_due(&self, now_ns: u64) -> Option<i64> {
        let due = match self.claimed_at_ns {
            None => true,
            Some(at) => self.claim_again || now_ns.saturating_sub(at) >= CLAIM_INTERVAL_NS,
        };
        (due && self.expire_batch_max > 0).then_some(self.expire_batch_max)
    }

    /// Whether transaction `txid` committed, waiting while the server still runs it and
    /// reconnecting when the connection breaks again (bounded).
    async fn xact_status(&mut self, txid: i64) -> Result<XactStatus, StoreError> {
        let mut last_error = None;
        for poll in 1..=XACT_STATUS_POLLS_MAX {
            match self.ask_xact_status(txid).await {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(error) => {
                    self.connection = None;
                    tokio::time::sleep(backoff(poll.min(RECONNECTS_MAX))).await;
                    last_error = Some(error);
                }
            }
        }
        let reason = last_error.map_or_else(|| "stayed in progress".to_owned(), |e| e.to_string());
        Err(StoreError::Io(format!("outcome of transaction {txid} unknown: {reason}")))
    }

    /// One `pg_xact_status` question; `None` while the transaction is in progress.
    async fn ask_xact_status(&mut self, txid: i64) -> Result<Option<XactStatus>, StoreError> {
        let client = &self.connection().await?.client;
        let row = client
            .query_one("SELECT pg_xact_status($1::bigint::text::xid8)", &[&txid])
            .await
            .map_err(db)?;
        match row.try_get::<_, Option<String>>(0).map_err(db)?.as_deref() {
            Some("committed") => Ok(Some(XactStatus::Committed)),
            Some("aborted") => Ok(Some(XactStatus::Aborted)),
            Some("in progress") => Ok(None),
            other => Err(StoreError::Io(format!("transaction {txid} status {other:?}"))),
        }
    }

    /// The account `key`, if it exists.
    pub async fn account(&mut self, key: Key) -> Result<Option<Account>, StoreError> {
        let connection = self.connection().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&i64_of(key.tenant)?, &uuid(key.id)];
        let statement = &connection.statements.get_account;
        let row = connection.client.query_opt(statement, &params).await.map_err(db)?;
        row.map(|row| account_row(&row).map(|(_, account)| account)).transpose()
    }
}

/// Waits before the `breaks`-th reconnect: 50 ms doubling to at most 2 s.
fn backoff(breaks: usize) -> Duration {
    let exponent = u32::try_from(breaks.saturating_sub(1)).unwrap_or(u32::MAX).min(6);
    Duration::from_millis(50 << exponent).min(Duration::from_secs(2))
}

impl Connection {
    async fn open(connector: &Connector) -> Result<Self, StoreError> {
        let client = connector.connect().await.map_err(super::codec::connect_error)?;
        let statements = Statements::prepare(&client).await?;
        Ok(Self { client, statements })
    }

    /// One attempt. Round trip 1 sends BEGIN with the locks and reads (and, when an
    /// expiry claim is due, BEGIN with the claim first, since the claimed transfers decide
    /// what to lock); round trip 2 sends every write with COMMIT. A failure before COMMIT
    /// was sent rolls the transaction back; a broken connection after it leaves the
    /// outcome to `pg_xact_status`.
    async fn commit_once(
        &self,
        events: &[Event],
        now_ns: u64,
        claim_max: Option<i64>,
    ) -> Result<(Committed, usize), Attempt> {
        let attempt = self.apply_in_transaction(events, now_ns, claim_max).await;
        if matches!(&attempt, Err(Attempt::Conflict | Attempt::Failed(_)))
            && !self.client.is_closed()
        {
            // A no-op (with a warning) when COMMIT already ended the transaction.
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        attempt
    }

    async fn apply_in_transaction(
        &self,
        events: &[Event],
        now_ns: u64,
        claim_max: Option<i64>,
    ) -> Result<(Committed, usize), Attempt> {
        let (client, statements) = (&self.client, &self.statements);
        let now = i64_of(now_ns)?;
        let expired = match claim_max {
            Some(max) => {
                let begin = client.batch_execute("BEGIN");
                let claim = claim_expiries(client, statements, now, max);
                tokio::try_join!(async { begin.await.map_err(|e| classify(e, None)) }, claim)?.1
            }
            None => Vec::new(),
        };
        // The clients' events, after the expiries claimed (copied only when there are any).
        let all: Cow<'_, [Event]> = if expired.is_empty() {
            Cow::Borrowed(events)
        } else {
            let expiries = expired.iter().map(|key| Event::ExpirePending(*key));
            Cow::Owned(expiries.chain(events.iter().copied()).collect())
        };
        let read = read_locked(client, statements, &all, now, claim_max.is_none()).await?;
        let mut state = read.state;
        let (mut outcomes, changes) = ledger::apply(&mut state, &all, now_ns);
        assert!(
            state.timestamp_last <= read.reserved_last,
            "timestamps stay within the reservation"
        );
        outcomes.drain(..expired.len());
        let rows = super::codec::ChangeRows::of(&state, &changes, &read.loaded)?;
        let (written, committed) =
            tokio::join!(write(client, statements, &rows), client.batch_execute("COMMIT"));
        let txid = Some(read.txid);
        let sent = |attempt: Attempt, committed: Committed| match attempt {
            // COMMIT was sent: the transaction may have committed.
            Attempt::Broken { error, txid, .. } => {
                Attempt::Broken { error, txid, outcomes: Some(committed) }
            }
            other => other,
        };
        let rows_written = match written {
            Ok(rows_written) => rows_written,
            Err(error) => {
                let pending = Committed { outcomes, rows_written: 0 };
                return Err(sent(classify(error, txid), pending));
            }
        };
        let result = Committed { outcomes, rows_written };
        match committed {
            Ok(()) => Ok((result, expired.len())),
            Err(error) => Err(sent(classify(error, txid), result)),
        }
    }
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, StoreError> {
        let lock_accounts = sql::lock_accounts();
        Ok(Self {
            claim_expiries: client.prepare(sql::CLAIM_EXPIRIES).await.map_err(db)?,
            lock_accounts: client.prepare(&lock_accounts).await.map_err(db)?,
            get_account: client.prepare(&sql::GET_ACCOUNT).await.map_err(db)?,
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
        })
    }
}

/// Why one attempt failed.
enum Attempt {
    /// A concurrent flush created one of our new ids first: retry.
    Conflict,
    /// The connection broke. `txid` is known once timestamps were reserved; `outcomes`
    /// once COMMIT was sent (the transaction may have committed).
    Broken { error: StoreError, txid: Option<i64>, outcomes: Option<Committed> },
    /// Anything else: the batch fails.
    Failed(StoreError),
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

/// Sorts a driver error: a lost race, a broken connection, or a failure.
///
/// Broken: the connection closed or failed at the socket, the server is shutting down or
/// starting, or the session turned read-only (an Aurora failover demoted its server);
/// each calls for a new connection, which `target_session_attrs` puts on the writer.
fn classify(error: tokio_postgres::Error, txid: Option<i64>) -> Attempt {
    let broken_codes = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::READ_ONLY_SQL_TRANSACTION,
    ];
    let socket_failed = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        Attempt::Conflict
    } else if error.is_closed()
        || socket_failed
        || error.code().is_some_and(|c| broken_codes.contains(c))
    {
        Attempt::Broken { error: db(error), txid, outcomes: None }
    } else {
        Attempt::Failed(db(error))
    }
}

async fn claim_expiries(
    client: &Client,
    statements: &Statements,
    now: i64,
    max: i64,
) -> Result<Vec<Key>, Attempt> {
    let rows = client
        .query(&statements.claim_expiries, &[&now, &max])
        .await
        .map_err(|e| classify(e, None))?;
    let mut keys: Vec<Key> = rows.iter().map(super::codec::key_row).collect::<Result<_, _>>()?;
    keys.sort_unstable();
    Ok(keys)
}

/// What round trip 1 read.
struct Read {
    state: State,
    /// Accounts that existed before the batch.
    loaded: HashSet<Key>,
    /// The last timestamp reserved for the batch.
    reserved_last: u64,
    /// The transaction's id, for `pg_xact_status`.
    txid: i64,
}

/// Round trip 1: lock accounts in key order, then read ids, failures, statuses and
/// reserve timestamps, pipelined.
async fn read_locked(
    client: &Client,
    statements: &Statements,
    events: &[Event],
    now: i64,
    begin: bool,
) -> Result<Read, Attempt> {
    let transfer_keys = KeyArrays::of(ledger::prefetch::transfer_keys(events))?;
    // Accounts the events name themselves; those of the pending transfers they resolve
    // are found by the lock query, from the stored transfers.
    let named = KeyArrays::of(ledger::prefetch::account_keys(events, &HashMap::new()))?;
    let pending = KeyArrays::of(pending_keys(events))?;
    let count = i64_of(events.len() as u64)?;
    let lock_params: [&(dyn ToSql + Sync); 4] =
        [&named.tenants, &named.ids, &pending.tenants, &pending.ids];
    let key_params: [&(dyn ToSql + Sync); 2] = [&transfer_keys.tenants, &transfer_keys.ids];
    let clock_params: [&(dyn ToSql + Sync); 2] = [&now, &count];
    // Sent in this order on one connection: the reads, and the timestamp reservation, run
    // after the locks are granted.
    let begin = async { if begin { client.batch_execute("BEGIN").await } else { Ok(()) } };
    let (_, accounts, transfers, failures, statuses, clock) = tokio::try_join!(
        begin,
        client.query(&statements.lock_accounts, &lock_params),
        client.query(&statements.read_transfers, &key_params),
        client.query(&statements.read_failures, &key_params),
        read_statuses(client, statements, &pending),
        client.query_one(&statements.reserve_timestamps, &clock_params),
    )
    .map_err(|e| classify(e, None))?;
    let reserved_last: i64 = clock.try_get(0).map_err(db)?;
    let txid: i64 = clock.try_get(1).map_err(db)?;
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
    Ok(Read { state, loaded, reserved_last, txid })
}

/// Pending statuses, read only for the pending transfers the events resolve or expire
/// (the ledger looks statuses up under no other key); no statement when there are none.
async fn read_statuses(
    client: &Client,
    statements: &Statements,
    pending: &KeyArrays,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if pending.ids.is_empty() {
        return Ok(Vec::new());
    }
    client.query(&statements.read_statuses, &[&pending.tenants, &pending.ids]).await
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

/// Round trip 2: every change, pipelined, inside the transaction. Returns the rows
/// written.
async fn write(
    client: &Client,
    statements: &Statements,
    rows: &super::codec::ChangeRows,
) -> Result<u64, tokio_postgres::Error> {
    let results = tokio::join!(
        rows.insert_accounts(client, &statements.insert_accounts),
        rows.update_balances(client, &statements.update_balances),
        rows.insert_transfers(client, &statements.insert_transfers),
        rows.insert_failures(client, &statements.insert_failures),
        rows.insert_statuses(client, &statements.insert_statuses),
        rows.insert_expiries(client, &statements.insert_expiries),
        rows.delete_expiries(client, &statements.delete_expiries),
    );
    let all = [results.0, results.1, results.2, results.3, results.4, results.5, results.6];
    let mut rows_written = 0;
    for result in all {
        rows_written += result?;
    }
    Ok(rows_written)
}
