//! The embedded redb store: what is acknowledged survives a reopen, reads and history
//! pages see committed state, pending timeouts release reservations, tenants and keys
//! persist, one process at a time, and stored data that breaks conservation or decoding
//! is refused at open.

use std::time::{Duration, Instant};

use redb::ReadableTable;
use storage::StoreError;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::ledger::{AccountFlags, Event, Key, Outcome, ResultCode};
use storage::tenants::NewTenant;

use crate::ledger_support::{Acct, TENANT, Tx};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn config(dir: &tempfile::TempDir) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::in_dir(dir.path());
    config.expiry_scan_interval = Duration::from_millis(20);
    config
}

fn submit(store: &Embedded, events: Vec<Event>) -> Vec<ResultCode> {
    let outcomes: Vec<Outcome> = runtime().block_on(store.submit(events)).unwrap();
    outcomes.iter().map(|o| o.code).collect()
}

fn two_accounts(store: &Embedded) {
    let limited = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let codes = submit(store, vec![Acct::new(1, 1).ev(), Acct::new(2, 1).flags(limited).ev()]);
    assert_eq!(codes, [ResultCode::Ok, ResultCode::Ok]);
}

#[test]
fn acknowledged_batches_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let codes = submit(&store, vec![Tx::new(10, 1, 2, 500).ev(), Tx::new(11, 2, 1, 501).ev()]);
    assert_eq!(codes, [ResultCode::Ok, ResultCode::ExceedsCredits]);
    store.close();
    drop(store);

    let store = Embedded::open(&config(&dir)).unwrap();
    let stored = store.transfer(Key::new(TENANT, 10)).unwrap().unwrap();
    assert_eq!((stored.amount, stored.debit_account_id, stored.credit_account_id), (500, 1, 2));
    let credit = store.account(Key::new(TENANT, 2)).unwrap().unwrap();
    assert_eq!((credit.credits_posted, credit.debits_posted), (500, 0));
    assert_eq!(store.transfer(Key::new(TENANT, 11)).unwrap(), None);
    // The rejection was stored: a retry fails the same way though it would now succeed.
    let retry = Tx::new(11, 2, 1, 400).ev();
    let outcomes = runtime().block_on(store.submit(vec![retry])).unwrap();
    assert_eq!(outcomes[0].code, ResultCode::IdAlreadyFailed);
    assert_eq!(outcomes[0].failed_with, Some(ResultCode::ExceedsCredits));
}

#[test]
fn timestamps_keep_increasing_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let first = store.account(Key::new(TENANT, 2)).unwrap().unwrap().timestamp;
    store.close();
    drop(store);
    let store = Embedded::open(&config(&dir)).unwrap();
    submit(&store, vec![Acct::new(3, 1).ev()]);
    let later = store.account(Key::new(TENANT, 3)).unwrap().unwrap().timestamp;
    assert!(later > first);
}

#[test]
fn history_pages_in_timestamp_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let events: Vec<Event> = (100..125).map(|id| Tx::new(id, 1, 2, 1).ev()).collect();
    assert!(submit(&store, events).iter().all(|c| *c == ResultCode::Ok));
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.account_transfers(Key::new(TENANT, 2), after, 10).unwrap().unwrap();
        let Some(last) = page.last() else { break };
        after = last.timestamp;
        seen.extend(page.iter().map(|t| t.id));
    }
    assert_eq!(seen, (100..125).collect::<Vec<u128>>());
    assert_eq!(store.account_transfers(Key::new(TENANT, 99), 0, 10).unwrap(), None);
    assert_eq!(store.account_transfers(Key::new(TENANT + 1, 2), 0, 10).unwrap(), None);
}

#[test]
fn expired_pending_transfers_release_their_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let pending = Tx::new(7, 1, 2, 300).pending().timeout(1).ev();
    assert_eq!(submit(&store, vec![pending]), [ResultCode::Ok]);
    assert_eq!(store.account(Key::new(TENANT, 1)).unwrap().unwrap().debits_pending, 300);
    // The writer scans for expired transfers every 20 ms; the timeout is 1 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.account(Key::new(TENANT, 1)).unwrap().unwrap().debits_pending != 0 {
        assert!(Instant::now() < deadline, "the pending transfer was not released in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(store.account(Key::new(TENANT, 2)).unwrap().unwrap().credits_pending, 0);
    let post = Tx::post(8, 7, 0).ev();
    assert_eq!(submit(&store, vec![post]), [ResultCode::PendingTransferExpired]);
}

#[test]
fn tenants_and_keys_persist_and_names_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    let new = |name: &str, key_id: &str| NewTenant {
        name: name.into(),
        key_id: key_id.into(),
        secret_digest: [7; 32],
    };
    let acme = runtime().block_on(store.create_tenant(new("acme", "pk_a"))).unwrap();
    let globex = runtime().block_on(store.create_tenant(new("globex", "pk_b"))).unwrap();
    assert_ne!(acme.id, globex.id);
    let duplicate = runtime().block_on(store.create_tenant(new("acme", "pk_c")));
    assert!(matches!(duplicate, Err(StoreError::TenantExists(name)) if name == "acme"));
    store.close();
    drop(store);
    let store = Embedded::open(&config(&dir)).unwrap();
    let mut keys = store.api_keys().unwrap();
    keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    let summary: Vec<(&str, u64)> = keys.iter().map(|k| (k.key_id.as_str(), k.tenant)).collect();
    assert_eq!(summary, [("pk_a", acme.id), ("pk_b", globex.id)]);
    assert_eq!(store.tenants().unwrap().len(), 2);
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Embedded::open(&config(&dir)).unwrap();
    let second = Embedded::open(&config(&dir));
    assert!(matches!(second, Err(StoreError::Locked { .. })));
}

#[test]
fn closed_store_refuses_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    store.close();
    let result = runtime().block_on(store.submit(vec![Acct::new(1, 1).ev()]));
    assert!(matches!(result, Err(StoreError::Closed)));
}

/// Offset of `credits_posted` in an encoded account: layout byte, three u128s, ledger
/// (u32), code and flags (u16 each), then debits_pending, debits_posted, credits_pending.
const CREDITS_POSTED_OFFSET: usize = 1 + 48 + 4 + 2 + 2 + 8 * 3;

fn tamper_with_account(dir: &tempfile::TempDir, id: u128, edit: impl FnOnce(&mut Vec<u8>)) {
    let table: redb::TableDefinition<(u64, u128), &[u8]> = redb::TableDefinition::new("accounts");
    let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut accounts = txn.open_table(table).unwrap();
        let mut bytes = accounts.get((TENANT, id)).unwrap().unwrap().value().to_vec();
        edit(&mut bytes);
        accounts.insert((TENANT, id), bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

fn store_with_one_transfer(dir: &tempfile::TempDir) {
    let store = Embedded::open(&config(dir)).unwrap();
    two_accounts(&store);
    assert_eq!(submit(&store, vec![Tx::new(10, 1, 2, 500).ev()]), [ResultCode::Ok]);
    store.close();
}

#[test]
fn unbalanced_ledger_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_transfer(&dir);
    tamper_with_account(&dir, 2, |bytes| {
        bytes[CREDITS_POSTED_OFFSET..CREDITS_POSTED_OFFSET + 8]
            .copy_from_slice(&499u64.to_le_bytes());
    });
    let reopened = Embedded::open(&config(&dir));
    assert!(matches!(reopened, Err(StoreError::Invariant(_))), "{:?}", reopened.err());
}

#[test]
fn corrupt_record_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    store_with_one_transfer(&dir);
    tamper_with_account(&dir, 2, |bytes| bytes.truncate(10));
    let reopened = Embedded::open(&config(&dir));
    assert!(matches!(reopened, Err(StoreError::Corrupt(_))), "{:?}", reopened.err());
}
