//! The embedded redb store: what is acknowledged survives a reopen, reads and history
//! pages see committed state, pending timeouts release reservations, tenants and keys
//! persist, one process at a time, stored data that breaks conservation or decoding is
//! refused at open, and a store of format 1 is upgraded in place (format 2's upgrade is
//! `vault_conformance`'s).

use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable};
use storage::StoreError;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::ledger::{AccountFlags, Event, Key, Outcome, ResultCode};
use storage::tenants::{ApiKeyInfo, ApiKeyRecord, NewApiKey, NewTenant};

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

fn key(key_id: &str) -> NewApiKey {
    NewApiKey {
        key_id: key_id.into(),
        secret_digest: [7; 32],
        sealed_secret: key_id.as_bytes().to_vec(),
        created_at_s: 1_900_000_000,
    }
}

#[test]
fn tenants_and_keys_persist_and_names_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(&config(&dir)).unwrap();
    let new = |name: &str, key_id: &str| NewTenant { name: name.into(), key: key(key_id) };
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
    let summary: Vec<(&str, u64, &[u8])> =
        keys.iter().map(|k| (k.key_id.as_str(), k.tenant, k.sealed_secret.as_slice())).collect();
    assert_eq!(summary, [("pk_a", acme.id, &b"pk_a"[..]), ("pk_b", globex.id, &b"pk_b"[..])]);
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

const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
const API_KEYS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("api_keys");

/// A store as a format-1 build left it: tenant 1 `acme` with the 40-byte key row
/// `tenant (8 LE) ++ digest (32)` of `pk_old`, written with redb directly.
fn format_1_store(dir: &tempfile::TempDir, key_row: &[u8]) {
    let tenants: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("tenants");
    let names: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("tenant_names");
    let db = redb::Database::create(dir.path().join(DATABASE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format_version", 1).unwrap();
        meta.insert("tenant_last", 1).unwrap();
        txn.open_table(tenants).unwrap().insert(1, "acme").unwrap();
        txn.open_table(names).unwrap().insert("acme", 1).unwrap();
        txn.open_table(API_KEYS).unwrap().insert("pk_old", key_row).unwrap();
    }
    txn.commit().unwrap();
}

fn format_1_key_row() -> Vec<u8> {
    let mut row = 1u64.to_le_bytes().to_vec();
    row.extend_from_slice(&[9; 32]);
    row
}

/// The stored format version and the raw `pk_old` row of a closed store.
fn format_and_old_row(dir: &tempfile::TempDir) -> (u64, Vec<u8>) {
    let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let format = txn.open_table(META).unwrap().get("format_version").unwrap().unwrap().value();
    let row = txn.open_table(API_KEYS).unwrap().get("pk_old").unwrap().unwrap().value().to_vec();
    (format, row)
}

#[test]
fn a_format_1_store_is_upgraded_in_place_and_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    format_1_store(&dir, &format_1_key_row());
    let store = Embedded::open(&config(&dir)).unwrap();
    let legacy = ApiKeyRecord {
        key_id: "pk_old".into(),
        tenant: 1,
        secret_digest: [9; 32],
        sealed_secret: vec![],
    };
    assert_eq!(store.api_keys().unwrap(), [legacy], "a legacy key: Bearer only, no sealed secret");
    let info =
        ApiKeyInfo { key_id: "pk_old".into(), tenant: 1, created_at_s: 0, revoked_at_s: None };
    assert_eq!(store.api_key_infos(1).unwrap(), [info]);
    assert_eq!(store.tenant_by_name("acme").unwrap().map(|t| t.id), Some(1));
    // The legacy key counts as active: one more fits, then rotation revokes it.
    runtime().block_on(store.add_api_key(1, key("pk_new"))).unwrap();
    let third = runtime().block_on(store.add_api_key(1, key("pk_third")));
    assert!(matches!(third, Err(StoreError::TooManyKeys)), "{third:?}");
    assert!(runtime().block_on(store.revoke_api_key(1, "pk_old", 1_900_000_100)).unwrap());
    let new_tenant = NewTenant { name: "globex".into(), key: key("pk_g") };
    assert_eq!(runtime().block_on(store.create_tenant(new_tenant)).unwrap().id, 2);
    store.close();
    drop(store);

    let (format, row) = format_and_old_row(&dir);
    assert_eq!(format, 3, "upgraded through format 2 to 3");
    assert_eq!(row[0], 1, "rewritten with a layout byte");
    let store = Embedded::open(&config(&dir)).unwrap();
    let active: Vec<String> = store.api_keys().unwrap().into_iter().map(|k| k.key_id).collect();
    assert_eq!(active, ["pk_g", "pk_new"]);
    assert_eq!(store.api_key_infos(1).unwrap()[0].revoked_at_s, Some(1_900_000_100));
}

#[test]
fn a_format_1_store_with_a_malformed_key_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut row = format_1_key_row();
    row.push(0);
    format_1_store(&dir, &row);
    let opened = Embedded::open(&config(&dir));
    assert!(matches!(opened, Err(StoreError::Corrupt(_))), "{:?}", opened.err());
    assert_eq!(format_and_old_row(&dir), (1, row), "the failed upgrade wrote nothing");
}

#[test]
fn a_store_of_an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Embedded::open(&config(&dir)).unwrap().close();
    {
        let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format_version", 4).unwrap();
        txn.commit().unwrap();
    }
    let opened = Embedded::open(&config(&dir));
    assert!(
        matches!(&opened, Err(StoreError::Corrupt(m)) if m.contains('4')),
        "{:?}",
        opened.err()
    );
}
