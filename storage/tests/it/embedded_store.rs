//! The embedded redb store: what is acknowledged survives a reopen, reads and history
//! pages see committed state, pending timeouts release reservations, tenants and keys
//! persist, one process at a time, and stored data that breaks conservation or decoding
//! is refused at open.

use std::time::{Duration, Instant};

use redb::ReadableTable;
use storage::StoreError;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::ledger::{
    AccountFlags, Event, Key, NewAccount, NewTransfer, Outcome, ResultCode, TransferFlags,
};
use storage::tenants::NewTenant;

const TENANT: u64 = 1;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn config(dir: &tempfile::TempDir) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::in_dir(dir.path());
    config.expiry_scan_interval = Duration::from_millis(20);
    config
}

fn account(id: u128, flags: AccountFlags) -> Event {
    Event::CreateAccount(
        TENANT,
        NewAccount { id, ledger: 710, code: 1, flags, user_data: 0, subject_id: 0 },
    )
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64, flags: TransferFlags) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        user_data: 0,
        ledger: 710,
        code: 1,
        flags,
        timeout_seconds: 0,
    }
}

fn submit(store: &Embedded, events: Vec<Event>) -> Vec<ResultCode> {
    let outcomes: Vec<Outcome> = runtime().block_on(store.submit(events)).unwrap();
    outcomes.iter().map(|o| o.code).collect()
}

fn two_accounts(store: &Embedded) {
    let limited = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let codes = submit(store, vec![account(1, AccountFlags::empty()), account(2, limited)]);
    assert_eq!(codes, [ResultCode::Ok, ResultCode::Ok]);
}

#[test]
fn acknowledged_batches_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let t1 = transfer(10, 1, 2, 500, TransferFlags::empty());
    let rejected = transfer(11, 2, 1, 501, TransferFlags::empty());
    let codes = submit(
        &store,
        vec![Event::CreateTransfer(TENANT, t1), Event::CreateTransfer(TENANT, rejected)],
    );
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
    let retry = transfer(11, 2, 1, 400, TransferFlags::empty());
    let outcomes =
        runtime().block_on(store.submit(vec![Event::CreateTransfer(TENANT, retry)])).unwrap();
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
    submit(&store, vec![account(3, AccountFlags::empty())]);
    let later = store.account(Key::new(TENANT, 3)).unwrap().unwrap().timestamp;
    assert!(later > first);
}

#[test]
fn history_pages_in_timestamp_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    two_accounts(&store);
    let events: Vec<Event> = (100..125)
        .map(|id| Event::CreateTransfer(TENANT, transfer(id, 1, 2, 1, TransferFlags::empty())))
        .collect();
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
    let mut pending = transfer(7, 1, 2, 300, TransferFlags::PENDING);
    pending.timeout_seconds = 1;
    assert_eq!(submit(&store, vec![Event::CreateTransfer(TENANT, pending)]), [ResultCode::Ok]);
    assert_eq!(store.account(Key::new(TENANT, 1)).unwrap().unwrap().debits_pending, 300);
    // The writer scans for expired transfers every 20 ms; the timeout is 1 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.account(Key::new(TENANT, 1)).unwrap().unwrap().debits_pending != 0 {
        assert!(Instant::now() < deadline, "the pending transfer was not released in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(store.account(Key::new(TENANT, 2)).unwrap().unwrap().credits_pending, 0);
    let mut post = transfer(8, 0, 0, 0, TransferFlags::POST_PENDING);
    post.pending_id = 7;
    post.ledger = 0;
    post.code = 0;
    assert_eq!(
        submit(&store, vec![Event::CreateTransfer(TENANT, post)]),
        [ResultCode::PendingTransferExpired]
    );
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
    let result = runtime().block_on(store.submit(vec![account(1, AccountFlags::empty())]));
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
    let t = transfer(10, 1, 2, 500, TransferFlags::empty());
    assert_eq!(submit(&store, vec![Event::CreateTransfer(TENANT, t)]), [ResultCode::Ok]);
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
