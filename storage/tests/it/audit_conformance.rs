//! Conformance of the audit trail and the compliance registers: every scenario of
//! `audit_scenarios.rs` runs through `CoreStore` on both backends, a real redb file and a
//! fresh database on the real PostgreSQL server of `pg_support` (a missing server fails
//! the test; nothing skips). Each scenario gets two stores on one backend: two cores of one
//! process on the embedded store (they share its writer), two processes (two `PgStore`s,
//! each with its own pool) on PostgreSQL, so that concurrent appends race for real.
//!
//! Tampering goes around the store, as an attacker with write access to its storage would:
//! on PostgreSQL a superuser session disables the trail's triggers for one statement; on
//! the embedded store the file is rewritten with redb while the store is closed. Either way
//! the row keeps the layout the store writes (`audit_records`: seq -> `0x01 ++ prev_hash ++
//! hash ++ canonical bytes` on redb), so only the chain can tell.

use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableDatabase, TableDefinition};
use storage::CoreStore;
use storage::audit::AuditRecord;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::postgres::{PgSettings, PgStore};
use tempfile::TempDir;
use tokio_postgres::Client;

use crate::pg_support::{TestDatabase, connect};

/// One backend under test, with two stores on it and a way around them.
pub(crate) trait AuditFixture: Sized {
    /// A fresh, empty store.
    async fn open() -> Self;
    /// The first store.
    fn a(&self) -> &CoreStore;
    /// A second store on the same data: another core (embedded) or process (PostgreSQL).
    fn b(&self) -> &CoreStore;
    /// Rewrites the stored record at `record.seq` with `record`'s action, prev_hash and
    /// hash, bypassing the store.
    async fn overwrite(&mut self, record: &AuditRecord);
    /// Removes the stored record at `seq`, bypassing the store.
    async fn remove(&mut self, seq: u64);
    /// Closes the stores and removes the data.
    async fn close(self);
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The embedded store in a temporary directory; both stores share it.
pub(crate) struct EmbeddedFixture {
    dir: TempDir,
    stores: Option<(Arc<Embedded>, CoreStore, CoreStore)>,
}

/// The embedded store's trail table, as the store defines it.
const AUDIT_RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_records");

impl EmbeddedFixture {
    fn open_in(dir: &TempDir) -> (Arc<Embedded>, CoreStore, CoreStore) {
        let store = Arc::new(Embedded::open(&EmbeddedConfig::in_dir(dir.path())).unwrap());
        (store.clone(), CoreStore::Embedded(store.clone()), CoreStore::Embedded(store))
    }

    fn stores(&self) -> &(Arc<Embedded>, CoreStore, CoreStore) {
        self.stores.as_ref().expect("the fixture is open")
    }

    /// Closes the store (releasing redb's lock), runs `change` on the file, reopens it.
    fn around(&mut self, change: impl FnOnce(&redb::WriteTransaction)) {
        if let Some((store, a, b)) = self.stores.take() {
            store.close();
            drop((a, b, store));
        }
        {
            let db = redb::Database::open(self.dir.path().join(DATABASE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            change(&txn);
            txn.commit().unwrap();
            assert!(db.begin_read().is_ok());
        }
        self.stores = Some(Self::open_in(&self.dir));
    }
}

impl AuditFixture for EmbeddedFixture {
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

    async fn overwrite(&mut self, record: &AuditRecord) {
        let mut row = vec![1];
        row.extend_from_slice(&record.prev_hash);
        row.extend_from_slice(&record.hash);
        row.extend_from_slice(&record.canonical_bytes());
        self.around(|txn| {
            let mut table = txn.open_table(AUDIT_RECORDS).unwrap();
            assert!(table.insert(record.seq, row.as_slice()).unwrap().is_some(), "a stored row");
        });
    }

    async fn remove(&mut self, seq: u64) {
        self.around(|txn| {
            let mut table = txn.open_table(AUDIT_RECORDS).unwrap();
            assert!(table.remove(seq).unwrap().is_some(), "a stored row");
        });
    }

    async fn close(mut self) {
        if let Some((store, a, b)) = self.stores.take() {
            store.close();
            drop((a, b, store));
        }
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
    let settings = PgSettings {
        read_pool_size_max: 4,
        pool_wait_timeout: Duration::from_secs(10),
        expire_batch_max: 0,
    };
    let store = PgStore::new(db.connector(), settings);
    CoreStore::Postgres(Box::new(store.core().unwrap()))
}

impl PgFixture {
    /// A superuser session on the test database (the triggers still fire in it).
    async fn superuser(&self) -> Client {
        connect(&self.db.url()).await
    }

    /// Runs `statement` on the trail with its triggers disabled, then enables them again,
    /// in one transaction of a superuser session.
    async fn around(&self, statement: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
        let mut client = self.superuser().await;
        let txn = client.transaction().await.unwrap();
        txn.batch_execute("ALTER TABLE audit_records DISABLE TRIGGER USER").await.unwrap();
        assert_eq!(txn.execute(statement, params).await.unwrap(), 1, "one row changed");
        txn.batch_execute("ALTER TABLE audit_records ENABLE TRIGGER USER").await.unwrap();
        txn.commit().await.unwrap();
    }
}

impl AuditFixture for PgFixture {
    async fn open() -> Self {
        let db = TestDatabase::create().await;
        let settings = PgSettings {
            read_pool_size_max: 1,
            pool_wait_timeout: Duration::from_secs(10),
            expire_batch_max: 0,
        };
        let mut admin = PgStore::new(db.connector(), settings).admin().await.unwrap();
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

    async fn overwrite(&mut self, record: &AuditRecord) {
        let seq = i64::try_from(record.seq).unwrap();
        let sql = "UPDATE audit_records SET action = $2, prev_hash = $3, hash = $4 WHERE seq = $1";
        let (prev_hash, hash) = (record.prev_hash.as_slice(), record.hash.as_slice());
        self.around(sql, &[&seq, &record.entry.action, &prev_hash, &hash]).await;
    }

    async fn remove(&mut self, seq: u64) {
        let seq = i64::try_from(seq).unwrap();
        self.around("DELETE FROM audit_records WHERE seq = $1", &[&seq]).await;
    }

    async fn close(self) {
        let Self { db, a, b } = self;
        drop((a, b));
        db.drop_now().await;
    }
}

/// One `#[test]` per scenario and backend: `embedded::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(#[test]
            fn $scenario() {
                super::runtime().block_on(async {
                    use super::AuditFixture as _;
                    let mut fixture = super::EmbeddedFixture::open().await;
                    crate::audit_scenarios::$scenario(&mut fixture).await;
                    fixture.close().await;
                });
            })+
        }

        mod postgres {
            $(#[test]
            fn $scenario() {
                super::runtime().block_on(async {
                    use super::AuditFixture as _;
                    let mut fixture = super::PgFixture::open().await;
                    crate::audit_scenarios::$scenario(&mut fixture).await;
                    fixture.close().await;
                });
            })+
        }
    };
}

conformance!(
    an_empty_trail_verifies_and_has_no_head,
    appends_chain_contiguously_across_batches,
    a_batch_is_appended_whole_or_not_at_all,
    concurrent_appenders_never_fork_the_chain,
    records_about_a_subject_are_found_in_order,
    verify_names_a_changed_record,
    verify_names_a_forged_record_by_the_next_link,
    verify_names_a_removed_record,
    dsars_complete_once_and_are_counted,
    retention_runs_and_key_rotations_are_listed_newest_first,
    breaches_are_registered_and_notifications_recorded_once,
);

/// What only PostgreSQL enforces: the database itself refuses to change the trail.
mod postgres_only {
    use super::{AuditFixture, PgFixture, runtime};
    use crate::audit_scenarios::{append_some, changed, one_of_each_register};

    async fn refused(client: &tokio_postgres::Client, statement: &str) -> String {
        let accepted = client.batch_execute(statement).await;
        let error = accepted.err().unwrap_or_else(|| panic!("{statement:?} was accepted"));
        let db_error = error.as_db_error().expect("the server refused it");
        db_error.message().to_owned()
    }

    #[test]
    fn the_trail_refuses_update_delete_and_truncate() {
        runtime().block_on(async {
            let mut fx = PgFixture::open().await;
            let records = append_some(fx.a(), 3).await;
            let client = fx.superuser().await;
            let cases = [
                ("UPDATE audit_records SET action = 'pi.erase' WHERE seq = 2", "UPDATE"),
                ("DELETE FROM audit_records WHERE seq = 3", "DELETE"),
                ("TRUNCATE audit_records", "TRUNCATE"),
            ];
            for (statement, op) in cases {
                let message = refused(&client, statement).await;
                assert_eq!(message, format!("audit_records is append-only: {op} refused"));
            }
            let head_cases = [
                ("UPDATE audit_head SET seq = 1", "audit_head only moves forward"),
                ("DELETE FROM audit_head", "audit_head is append-only: DELETE refused"),
                ("TRUNCATE audit_head", "audit_head is append-only: TRUNCATE refused"),
            ];
            for (statement, message) in head_cases {
                assert_eq!(refused(&client, statement).await, message);
            }
            one_of_each_register(fx.a()).await;
            for statement in [
                "UPDATE retention_runs SET fields_purged = 0",
                "UPDATE key_rotations SET remaining = 0",
            ] {
                let message = refused(&client, statement).await;
                assert!(message.ends_with("is append-only: UPDATE refused"), "{message}");
            }
            for table in ["dsars", "breaches", "retention_runs", "key_rotations"] {
                let message = refused(&client, &format!("TRUNCATE {table}")).await;
                assert_eq!(message, format!("{table} is append-only: TRUNCATE refused"));
                let message = refused(&client, &format!("DELETE FROM {table}")).await;
                assert_eq!(message, format!("{table} is append-only: DELETE refused"));
            }
            // A tamperer's bypass leaves the triggers on again.
            fx.overwrite(&changed(&records[0], "pi.erase")).await;
            let message = refused(&client, "DELETE FROM audit_records WHERE seq = 1").await;
            assert_eq!(message, "audit_records is append-only: DELETE refused");
            fx.close().await;
        });
    }

    #[test]
    fn the_trail_refuses_rows_that_break_its_rules() {
        runtime().block_on(async {
            let fx = PgFixture::open().await;
            let client = fx.superuser().await;
            let good = "(seq, at_ns, actor_kind, actor_id, action, outcome, refusal, origin, \
                        subject_id, tenant_id, detail, prev_hash, hash) VALUES";
            let zeros = "decode(repeat('00', 32), 'hex')";
            let rows = [
                "(1, 0, 'operator', NULL, 'a', 'success', NULL, NULL, NULL, NULL, ''",
                "(1, 0, 'system', NULL, 'Bad Action', 'success', NULL, NULL, NULL, NULL, ''",
                "(1, 0, 'system', NULL, 'a', 'refused', NULL, NULL, NULL, NULL, ''",
                "(1, 0, 'system', NULL, 'a', 'success', NULL, 'example.com', NULL, NULL, ''",
                "(1, 0, 'system', NULL, 'a', 'success', NULL, NULL, \
                 '00000000-0000-0000-0000-000000000001', NULL, ''",
                "(0, 0, 'system', NULL, 'a', 'success', NULL, NULL, NULL, NULL, ''",
            ];
            for row in rows {
                let insert = format!("INSERT INTO audit_records {good} {row}, {zeros}, {zeros})");
                let error = client.batch_execute(&insert).await.unwrap_err();
                let code = error.code().cloned();
                assert_eq!(code, Some(tokio_postgres::error::SqlState::CHECK_VIOLATION), "{row}");
            }
            let fine = format!(
                "INSERT INTO audit_records {good} \
                 (1, 0, 'system', NULL, 'a', 'success', NULL, '::1', NULL, NULL, '', {zeros}, {zeros})"
            );
            client.batch_execute(&fine).await.unwrap();
            fx.close().await;
        });
    }
}
