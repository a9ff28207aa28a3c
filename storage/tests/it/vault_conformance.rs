//! Conformance of the vault: every scenario of `vault_scenarios.rs` (subjects, blind
//! indexes, erasure, retention and KEK-rotation queries, consent, accounts by owner, and
//! the erasure dump) runs through `CoreStore`, the face the gateway uses, on both
//! backends: a real redb file, and a fresh database on the real PostgreSQL server of
//! `pg_support` (a missing server fails the test; nothing skips). Then what only one
//! backend has: PostgreSQL's refusals (the consent history's trigger, the vault tables'
//! checks) and the embedded store's format 2 -> 3 upgrade.
//!
//! As in `security_conformance.rs`, each scenario gets two stores on one backend: two
//! cores of one process on the embedded store, two processes on PostgreSQL.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableDatabase, TableHandle};
use storage::CoreStore;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::postgres::migrations::{describe, migrate, migrate_to};
use storage::postgres::{PgSettings, PgStore};
use tempfile::TempDir;

use crate::pg_support::{TestDatabase, connect};
use crate::security_conformance::runtime;
use crate::vault_scenarios::{self as scenarios, owned_account, subject_with};

/// One backend under test, with two stores on it.
pub(crate) trait Fixture: Sized {
    /// A fresh, empty store.
    async fn open() -> Self;
    /// The first store.
    fn a(&self) -> &CoreStore;
    /// A second store on the same data: another core (embedded) or process (PostgreSQL).
    fn b(&self) -> &CoreStore;
    /// Whether `marker` is anywhere in what the backend keeps, read raw as an attacker
    /// with the files would: the database file after the store compacted it (embedded),
    /// a `pg_dump --data-only` after `VACUUM FULL` of the vault tables (PostgreSQL).
    async fn keeps_bytes(&mut self, marker: &[u8]) -> bool;
    /// Closes the stores and removes the data.
    async fn close(self);
}

/// The embedded store in a temporary directory; both stores share it.
pub(crate) struct EmbeddedFixture {
    dir: TempDir,
    stores: Option<(Arc<Embedded>, CoreStore, CoreStore)>,
}

impl EmbeddedFixture {
    fn open_in(dir: &TempDir) -> (Arc<Embedded>, CoreStore, CoreStore) {
        let store = Arc::new(Embedded::open(&EmbeddedConfig::in_dir(dir.path())).unwrap());
        (store.clone(), CoreStore::Embedded(store.clone()), CoreStore::Embedded(store))
    }

    fn stores(&self) -> &(Arc<Embedded>, CoreStore, CoreStore) {
        self.stores.as_ref().expect("the fixture is open")
    }

    /// Closes the store (so redb's lock is released).
    fn shut(&mut self) {
        if let Some((store, a, b)) = self.stores.take() {
            store.close();
            drop((a, b, store));
        }
    }
}

impl Fixture for EmbeddedFixture {
    async fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stores = Some(Self::open_in(&dir));
        Self { dir, stores }
    }

    fn a(&self) -> &CoreStore {
        &self.stores().1
    }

    fn b(&self) -> &CoreStore {
        &self.stores().2
    }

    /// Closes the store, opens it once more (an open after erasures compacts the file)
    /// and closes it, reads the file, and opens the store again.
    async fn keeps_bytes(&mut self, marker: &[u8]) -> bool {
        self.shut();
        Self::open_in(&self.dir).0.close();
        let bytes = std::fs::read(self.dir.path().join(DATABASE_FILE)).unwrap();
        self.stores = Some(Self::open_in(&self.dir));
        contains(&bytes, marker)
    }

    async fn close(mut self) {
        self.shut();
    }
}

/// A fresh database on the test server, with two "processes" on it.
pub(crate) struct PgFixture {
    db: TestDatabase,
    a: CoreStore,
    b: CoreStore,
}

/// One gateway process's store on `db`, as one of its cores sees it.
fn pg_core(db: &TestDatabase) -> CoreStore {
    let store = PgStore::new(db.connector(), pg_settings());
    CoreStore::Postgres(Box::new(store.core().unwrap()))
}

/// The vault's tables, as `VACUUM FULL` rewrites them.
const VAULT_TABLES: &str = "subjects, subject_keys, subject_fields, subject_indexes, consents";

impl Fixture for PgFixture {
    async fn open() -> Self {
        let db = TestDatabase::create().await;
        let mut admin = PgStore::new(db.connector(), pg_settings()).admin().await.unwrap();
        admin.migrate().await.unwrap();
        let (a, b) = (pg_core(&db), pg_core(&db));
        Self { db, a, b }
    }

    fn a(&self) -> &CoreStore {
        &self.a
    }

    fn b(&self) -> &CoreStore {
        &self.b
    }

    /// `VACUUM FULL` of the vault tables, then the marker in `pg_dump --data-only`'s
    /// output, raw or as bytea's hex.
    async fn keeps_bytes(&mut self, marker: &[u8]) -> bool {
        let client = connect(&self.db.url()).await;
        client.batch_execute(&format!("VACUUM FULL {VAULT_TABLES}")).await.unwrap();
        let dump = Command::new("pg_dump")
            .args(["--data-only", "--no-owner", "--dbname", &self.db.url()])
            .output()
            .unwrap_or_else(|e| panic!("pg_dump is required (it comes with PostgreSQL): {e}"));
        assert!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
        assert!(contains(&dump.stdout, b"COPY public.subjects"), "the dump holds the vault");
        contains(&dump.stdout, marker) || contains(&dump.stdout, hex(marker).as_bytes())
    }

    async fn close(self) {
        let Self { db, a, b } = self;
        drop((a, b));
        db.drop_now().await;
    }
}

/// Four pooled connections per store, so that simultaneous calls race in the database.
fn pg_settings() -> PgSettings {
    PgSettings {
        read_pool_size_max: 4,
        pool_wait_timeout: Duration::from_secs(10),
        expire_batch_max: 0,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Lower-case hex, as PostgreSQL prints bytea.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `#[test]` per scenario and backend: `embedded::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(#[test]
            fn $scenario() {
                super::runtime().block_on(async {
                    use super::Fixture as _;
                    let mut fixture = super::EmbeddedFixture::open().await;
                    crate::vault_scenarios::$scenario(&mut fixture).await;
                    fixture.close().await;
                });
            })+
        }

        mod postgres {
            $(#[test]
            fn $scenario() {
                super::runtime().block_on(async {
                    use super::Fixture as _;
                    let mut fixture = super::PgFixture::open().await;
                    crate::vault_scenarios::$scenario(&mut fixture).await;
                    fixture.close().await;
                });
            })+
        }
    };
}

conformance!(
    subjects_are_created_once_and_read_back,
    subject_rules_are_enforced_and_nothing_invalid_is_stored,
    updates_replace_values_and_the_indexes_of_what_they_touch,
    updates_are_atomic_and_bounded,
    blind_indexes_find_every_subject_sharing_a_value,
    erasure_shreds_keys_values_and_indexes_once,
    expired_fields_follow_each_fields_cutoff_and_the_limit,
    keys_are_rewrapped_by_compare_and_set,
    consent_versions_count_up_per_purpose,
    consent_needs_a_live_subject_and_survives_erasure,
    simultaneous_consent_appends_get_distinct_versions,
    accounts_are_found_by_owner,
    erased_values_leave_no_byte_behind,
);

#[test]
fn postgres_consent_history_refuses_update_delete_and_truncate() {
    runtime().block_on(async {
        let mut fixture = PgFixture::open().await;
        scenarios::consent_versions_count_up_per_purpose(&mut fixture).await;
        let client = connect(&fixture.db.url()).await;
        for statement in [
            "UPDATE consents SET granted = NOT granted",
            "UPDATE consents SET evidence = 'rewritten' WHERE version = 1",
            "DELETE FROM consents",
            "TRUNCATE consents",
        ] {
            let error = client.batch_execute(statement).await.unwrap_err();
            let text = describe(&error);
            assert!(text.contains("consents rows are immutable"), "{statement}: {text}");
        }
        let rows = client.query_one("SELECT count(*) FROM consents", &[]).await.unwrap();
        assert!(rows.get::<_, i64>(0) > 0, "every record is still there");
        drop(client);
        fixture.close().await;
    });
}

#[test]
fn postgres_vault_tables_refuse_rows_that_break_their_rules() {
    runtime().block_on(async {
        let fixture = PgFixture::open().await;
        let tenant = scenarios::tenant(fixture.a(), "acme").await;
        let subject = subject_with(tenant, 7, &[("email", b"sealed")]);
        fixture.a().create_subject(subject, vec![]).await.unwrap();
        let client = connect(&fixture.db.url()).await;
        let id = "'00000000-0000-0000-0000-000000000007'";
        let zero = "'00000000-0000-0000-0000-000000000000'";
        let refused = [
            format!("INSERT INTO subjects VALUES ({tenant}, {zero}, now(), now())"),
            format!("INSERT INTO subject_fields VALUES ({tenant}, {id}, 'Email', '\\x01', now())"),
            format!("INSERT INTO subject_fields VALUES ({tenant}, {id}, 'phone', '', now())"),
            "UPDATE subject_keys SET wrapped_key = ''".to_owned(),
            "UPDATE subject_keys SET kek_version = -1".to_owned(),
            format!("INSERT INTO subject_indexes VALUES ({tenant}, {id}, 'email', '\\x0102')"),
        ];
        for statement in &refused {
            let error = client.batch_execute(statement).await.unwrap_err();
            assert!(describe(&error).contains("violates check constraint"), "{statement}: {error}");
        }
        let hmac = "decode(repeat('00', 16), 'hex')";
        let orphan =
            format!("INSERT INTO subject_indexes VALUES ({tenant}, {id}, 'phone', {hmac})");
        let error = client.batch_execute(&orphan).await.unwrap_err();
        assert!(describe(&error).contains("subject_indexes_field_fkey"), "{error}");
        drop(client);
        fixture.close().await;
    });
}

#[test]
fn postgres_owned_accounts_of_version_3_are_found_after_migration_4() {
    runtime().block_on(async {
        let db = TestDatabase::create().await;
        let mut client = connect(&db.url()).await;
        assert_eq!(migrate_to(&mut client, 3).await.unwrap().version, 3);
        // As a version-3 build flushed them: owned and unowned accounts.
        let owner = "'00000000-0000-0000-0000-00000000000a'";
        let account = |id: u8, subject: &str| {
            let uuid = format!("'00000000-0000-0000-0000-0000000000{id:02x}'");
            format!("(1, {uuid}, 1, 1, 0, NULL, {subject}, 0, 0, 0, 0, {id})")
        };
        let rows = [account(3, owner), account(1, owner), account(2, "NULL")].join(", ");
        client
            .batch_execute(&format!(
                "INSERT INTO tenants (name) VALUES ('acme'); INSERT INTO accounts VALUES {rows}"
            ))
            .await
            .unwrap();
        assert!(migrate(&mut client).await.unwrap().applied.contains(&4));
        let core = pg_core(&db);
        let owned = core.accounts_of_subject(1, 0xa, 10).await.unwrap();
        assert_eq!(owned.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 3]);
        drop((client, core));
        db.drop_now().await;
    });
}

/// A store as a format-2 build left it, with accounts owned and not: written by this
/// build, then its format-3 tables dropped and its format stamped 2.
fn format_2_store_with_owned_accounts(dir: &TempDir) {
    runtime().block_on(async {
        let store = Embedded::open(&EmbeddedConfig::in_dir(dir.path())).unwrap();
        let core = CoreStore::Embedded(Arc::new(store));
        let tenant = scenarios::tenant(&core, "acme").await;
        let events = vec![
            owned_account(tenant, 1, 0xa),
            owned_account(tenant, 2, 0),
            owned_account(tenant, 3, 0xa),
            owned_account(tenant, 4, 0xb),
        ];
        let outcomes = core.submit(events).await.unwrap().outcomes;
        assert!(outcomes.iter().all(|o| o.code.is_success()), "{outcomes:?}");
        let CoreStore::Embedded(store) = core else { unreachable!("made embedded") };
        store.close();
    });
    let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    let format_3 = ["account_owners", "subjects", "subject_fields", "field_ages", "key_versions"];
    let more = ["blind_indexes", "subject_indexes", "consents"];
    for name in format_3.iter().chain(&more) {
        let table = txn.list_tables().unwrap().find(|t| t.name() == *name).unwrap();
        assert!(txn.delete_table(table).unwrap(), "{name}");
    }
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    txn.open_table(meta).unwrap().insert("format_version", 2).unwrap();
    txn.commit().unwrap();
}

fn stored_format(dir: &TempDir) -> u64 {
    let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let txn = db.begin_read().unwrap();
    txn.open_table(meta).unwrap().get("format_version").unwrap().unwrap().value()
}

#[test]
fn a_format_2_store_is_upgraded_and_its_owned_accounts_indexed() {
    let dir = tempfile::tempdir().unwrap();
    format_2_store_with_owned_accounts(&dir);
    assert_eq!(stored_format(&dir), 2);
    runtime().block_on(async {
        let store = Arc::new(Embedded::open(&EmbeddedConfig::in_dir(dir.path())).unwrap());
        let core = CoreStore::Embedded(store.clone());
        let ids = |accounts: Vec<storage::ledger::Account>| -> Vec<u128> {
            accounts.iter().map(|a| a.id).collect()
        };
        assert_eq!(ids(core.accounts_of_subject(1, 0xa, 10).await.unwrap()), [1, 3]);
        assert_eq!(ids(core.accounts_of_subject(1, 0xb, 10).await.unwrap()), [4]);
        assert_eq!(core.subject_counts().await.unwrap(), Default::default(), "an empty vault");
        // Accounts created after the upgrade are indexed by the writer.
        let outcomes = core.submit(vec![owned_account(1, 5, 0xb)]).await.unwrap().outcomes;
        assert!(outcomes[0].code.is_success());
        assert_eq!(ids(core.accounts_of_subject(1, 0xb, 10).await.unwrap()), [4, 5]);
        store.close();
    });
    assert_eq!(stored_format(&dir), 3);
}
