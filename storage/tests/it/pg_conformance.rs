//! Conformance: every ledger scenario of `ledger_scenarios.rs`, run through the
//! PostgreSQL flush on a real server, must answer the same codes and leave the same
//! balances as the pure ledger (`embedded_conformance.rs` runs the same tables through
//! the embedded store). Plus the flush's own duties: pending expiries claimed
//! from the index, and rows that survive a new connection.

use std::sync::Arc;

use pool::pg::Connector;
use storage::ledger::{Account, Event, Key, Outcome, split_open_chain};
use storage::postgres::flush::PgLedger;
use storage::postgres::migrations::migrate;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use crate::ledger_scenarios::TABLES;
use crate::ledger_support::{OTHER_TENANT, SECOND, TENANT, Tx};
use crate::pg_support::{TestDatabase, connect};
use crate::scenario_harness::{Backend, check_with};

const LEDGER_TABLES: &str =
    "accounts, transfers, transfer_failures, pending_statuses, pending_expiries";

/// The PostgreSQL flush behind the scenario harness.
struct Postgres {
    runtime: Runtime,
    ledger: PgLedger,
    admin: Client,
}

impl Postgres {
    /// A migrated database with both scenario tenants; `expire_batch_max` 0 leaves
    /// expiry to the events the scenarios send.
    fn open(runtime: Runtime, db: &TestDatabase, expire_batch_max: usize) -> Self {
        let (ledger, admin) = runtime.block_on(async {
            let mut admin = connect(&db.url()).await;
            migrate(&mut admin).await.unwrap();
            let tenants = format!(
                "INSERT INTO tenants (id, name) OVERRIDING SYSTEM VALUE VALUES ({TENANT}, 'one'), ({OTHER_TENANT}, 'two')"
            );
            admin.batch_execute(&tenants).await.unwrap();
            let ledger = PgLedger::connect(config(db), expire_batch_max).await.unwrap();
            (ledger, admin)
        });
        Self { runtime, ledger, admin }
    }
}

impl Backend for Postgres {
    fn reset(&mut self) {
        let sql = format!("TRUNCATE {LEDGER_TABLES}; SELECT setval('ledger_timestamps', 0, true)");
        self.runtime.block_on(self.admin.batch_execute(&sql)).unwrap();
    }

    /// As the gateway does: an open chain at the end is answered, not submitted.
    fn apply(&mut self, events: &[Event], now: u64) -> Vec<Outcome> {
        let mut closed = events.to_vec();
        let open = split_open_chain(&mut closed);
        let mut outcomes =
            self.runtime.block_on(self.ledger.commit(&closed, now)).unwrap().outcomes;
        outcomes.extend(open);
        outcomes
    }

    fn account(&mut self, key: Key) -> Option<Account> {
        self.runtime.block_on(self.ledger.account(key)).unwrap()
    }

    fn timestamp_floor(&mut self) -> u64 {
        let row = self
            .runtime
            .block_on(self.admin.query_one("SELECT last_value FROM ledger_timestamps", &[]));
        u64::try_from(row.unwrap().get::<_, i64>(0)).unwrap()
    }
}

fn config(db: &TestDatabase) -> Arc<Connector> {
    db.connector()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn every_scenario_answers_as_the_pure_ledger() {
    let runtime = runtime();
    let db = runtime.block_on(TestDatabase::create());
    let mut postgres = Postgres::open(runtime, &db, 0);
    let mut failures = Vec::new();
    let mut ran = 0;
    for scenario in TABLES.iter().flat_map(|table| table.iter()) {
        // PostgreSQL stores timestamps as bigint: a clock past 2262 cannot be run there.
        if i64::try_from(scenario.batch.now).is_err() {
            continue;
        }
        ran += 1;
        if let Err(problem) = check_with(&mut postgres, scenario) {
            failures.push(format!("scenario `{}`:\n  {problem}", scenario.name));
        }
    }
    let Postgres { runtime, ledger, admin } = postgres;
    drop((ledger, admin));
    runtime.block_on(db.drop_now());
    assert!(ran >= 44, "only {ran} scenarios ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn due_pending_transfers_are_claimed_and_released() {
    let runtime = runtime();
    let db = runtime.block_on(TestDatabase::create());
    let mut postgres = Postgres::open(runtime, &db, 1024);
    let now = 1_700_000_000 * SECOND;
    let accounts =
        [crate::ledger_support::Acct::new(1, 1).ev(), crate::ledger_support::Acct::new(2, 1).ev()];
    assert!(postgres.apply(&accounts, now).iter().all(|o| o.code.is_success()));
    let pending = [Tx::new(10, 1, 2, 70).pending().timeout(1).ev()];
    assert!(postgres.apply(&pending, now + SECOND).iter().all(|o| o.code.is_success()));
    assert_eq!(postgres.account(Key::new(TENANT, 1)).unwrap().debits_pending, 70);
    // Any flush after the timeout claims the expiry, even one with no events.
    assert!(postgres.apply(&[], now + 3 * SECOND).is_empty());
    let debit = postgres.account(Key::new(TENANT, 1)).unwrap();
    let credit = postgres.account(Key::new(TENANT, 2)).unwrap();
    assert_eq!((debit.debits_pending, credit.credits_pending), (0, 0));
    let left: i64 = postgres
        .runtime
        .block_on(postgres.admin.query_one("SELECT count(*) FROM pending_expiries", &[]))
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let Postgres { runtime, ledger, admin } = postgres;
    drop((ledger, admin));
    runtime.block_on(db.drop_now());
}

/// Transfers of one writer's batch `n`: ids overlap with the other writer's batches, so
/// both race on the same ids over the same three hot accounts.
fn racing_batch(n: u128) -> Vec<Event> {
    (0..20u128)
        .map(|i| {
            let id = 1000 + (n * 20 + i) % 600;
            let (debit, credit) = [(1, 2), (2, 3), (3, 1)][(id % 3) as usize];
            Tx::new(id, debit, credit, 1 + (id % 7) as u64).ev()
        })
        .collect()
}

#[test]
fn concurrent_writers_on_hot_accounts_apply_each_id_once() {
    let runtime = runtime();
    let db = runtime.block_on(TestDatabase::create());
    let mut postgres = Postgres::open(runtime, &db, 0);
    let now = 1_700_000_000 * SECOND;
    let accounts: Vec<Event> =
        (1..=3).map(|id| crate::ledger_support::Acct::new(id, 1).ev()).collect();
    assert!(postgres.apply(&accounts, now).iter().all(|o| o.code.is_success()));
    let (ok_a, ok_b) = postgres.runtime.block_on(async {
        let a = PgLedger::connect(config(&db), 0).await.unwrap();
        let b = PgLedger::connect(config(&db), 0).await.unwrap();
        let writer = |mut ledger: PgLedger, offset: u128| async move {
            let mut ok = Vec::new();
            for n in 0..30u128 {
                let events = racing_batch(n + offset);
                let outcomes = ledger.commit(&events, now + SECOND).await.unwrap().outcomes;
                for (event, outcome) in events.iter().zip(&outcomes) {
                    assert!(outcome.code.is_success(), "{:?}", outcome.code);
                    if outcome.code == storage::ledger::ResultCode::Ok {
                        let Event::CreateTransfer(_, t) = event else { unreachable!() };
                        ok.push((t.id, t.debit_account_id, t.credit_account_id, t.amount));
                    }
                }
            }
            ok
        };
        tokio::join!(writer(a, 0), writer(b, 5))
    });
    let mut applied = [ok_a, ok_b].concat();
    applied.sort_unstable();
    let before = applied.len();
    applied.dedup_by_key(|t| t.0);
    assert_eq!(applied.len(), before, "an id was applied twice");
    let mut expected = [[0u64; 4]; 4];
    for (_, debit, credit, amount) in &applied {
        expected[*debit as usize][1] += amount;
        expected[*credit as usize][3] += amount;
    }
    let mut totals = (0, 0);
    for id in 1..=3u128 {
        let account = postgres.account(Key::new(TENANT, id)).unwrap();
        assert_eq!(
            crate::ledger_support::balances(&account),
            expected[id as usize],
            "account {id}"
        );
        totals.0 += account.debits_posted;
        totals.1 += account.credits_posted;
    }
    assert_eq!(totals.0, totals.1, "money is conserved");
    let Postgres { runtime, ledger, admin } = postgres;
    drop((ledger, admin));
    runtime.block_on(db.drop_now());
}

/// Terminates every other connection to the database, over and over, until `stop`.
async fn keep_killing(
    db_name: String,
    url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let admin = connect(&url).await;
    let mut killed = 0;
    while !*stop.borrow() {
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db_name],
            )
            .await
            .unwrap();
        killed += rows.iter().filter(|row| row.get::<_, bool>(0)).count() as u64;
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    killed
}

#[test]
fn connections_killed_mid_flush_lose_nothing_and_apply_nothing_twice() {
    let runtime = runtime();
    let db = runtime.block_on(TestDatabase::create());
    let mut postgres = Postgres::open(runtime, &db, 0);
    let now = 1_700_000_000 * SECOND;
    let accounts: Vec<Event> =
        (1..=2).map(|id| crate::ledger_support::Acct::new(id, 1).ev()).collect();
    assert!(postgres.apply(&accounts, now).iter().all(|o| o.code.is_success()));
    let (acked, killed) = postgres.runtime.block_on(async {
        let mut ledger = PgLedger::connect(config(&db), 0).await.unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let killer = tokio::spawn(keep_killing(db.name().to_owned(), db.url(), stop_rx));
        let mut acked = Vec::new();
        for batch in 0..150u128 {
            let events: Vec<Event> =
                (0..10u128).map(|i| Tx::new(10_000 + batch * 10 + i, 1, 2, 3).ev()).collect();
            let outcomes = ledger.commit(&events, now + SECOND).await.unwrap().outcomes;
            for (event, outcome) in events.iter().zip(&outcomes) {
                let Event::CreateTransfer(_, t) = event else { unreachable!() };
                assert_eq!(outcome.code, storage::ledger::ResultCode::Ok, "transfer {}", t.id);
                acked.push(t.id);
            }
        }
        let _ = stop_tx.send(true);
        (acked, killer.await.unwrap())
    });
    println!("{} transfers acknowledged while {killed} connections were killed", acked.len());
    assert!(killed > 0, "the fault never hit");
    // The killer also ended the admin connection: read back over a new one.
    postgres.admin = postgres.runtime.block_on(connect(&db.url()));
    let rows = postgres
        .runtime
        .block_on(postgres.admin.query("SELECT id FROM transfers ORDER BY id", &[]))
        .unwrap();
    let stored: Vec<u128> = rows.iter().map(|r| r.get::<_, uuid::Uuid>(0).as_u128()).collect();
    assert_eq!(stored, acked, "every acknowledged transfer stored once, nothing else");
    let debit = postgres.account(Key::new(TENANT, 1)).unwrap();
    let credit = postgres.account(Key::new(TENANT, 2)).unwrap();
    assert_eq!(debit.debits_posted, 3 * acked.len() as u64);
    assert_eq!(credit.credits_posted, debit.debits_posted, "money is conserved");
    let Postgres { runtime, ledger, admin } = postgres;
    drop((ledger, admin));
    runtime.block_on(db.drop_now());
}
