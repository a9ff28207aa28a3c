//! Conformance of what the security layer stores: every scenario of
//! `security_scenarios.rs` (API keys and rotation, operators and sign-in accounting,
//! operator sessions) runs through `CoreStore`, the face the gateway uses, on both
//! backends: a real redb file, and a fresh database on the real PostgreSQL server of
//! `pg_support` (a missing server fails the test; nothing skips).
//!
//! Each scenario gets two stores on one backend: two cores of one process on the
//! embedded store (they share its writer), two processes (two `PgStore`s, each with its
//! own pool) on PostgreSQL, so that races between them are real races.

use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use storage::CoreStore;
use storage::embedded::{DATABASE_FILE, Embedded, EmbeddedConfig};
use storage::postgres::{PgSettings, PgStore};
use tempfile::TempDir;

use crate::pg_support::{TestDatabase, connect};

/// One backend under test, with two stores on it.
pub(crate) trait Fixture: Sized {
    /// A fresh, empty store.
    async fn open() -> Self;
    /// The first store.
    fn a(&self) -> &CoreStore;
    /// A second store on the same data: another core (embedded) or process (PostgreSQL).
    fn b(&self) -> &CoreStore;
    /// How many sessions are stored, dead or alive (checking the indexes agree).
    async fn stored_sessions(&mut self) -> usize;
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

/// Rows of table `name` in a closed embedded store.
fn embedded_rows<K: redb::Key + 'static>(db: &redb::Database, name: &str) -> u64 {
    let table: TableDefinition<K, ()> = TableDefinition::new(name);
    db.begin_read().unwrap().open_table(table).unwrap().len().unwrap()
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

    /// Closes the store, counts with redb directly, and opens it again.
    async fn stored_sessions(&mut self) -> usize {
        self.shut();
        let counts = {
            let db = redb::Database::open(self.dir.path().join(DATABASE_FILE)).unwrap();
            let sessions: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
            let stored = db.begin_read().unwrap().open_table(sessions).unwrap().len().unwrap();
            let by_expiry = embedded_rows::<(u64, &'static str)>(&db, "session_expiries");
            let by_operator =
                embedded_rows::<(&'static str, &'static str)>(&db, "operator_sessions");
            [stored, by_expiry, by_operator]
        };
        assert_eq!(counts, [counts[0]; 3], "sessions, expiry index, operator index");
        self.stores = Some(Self::open_in(&self.dir));
        usize::try_from(counts[0]).unwrap()
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
async fn pg_core(db: &TestDatabase) -> CoreStore {
    let store = PgStore::new(db.connector(), pg_settings());
    CoreStore::Postgres(Box::new(store.core().unwrap()))
}

impl Fixture for PgFixture {
    async fn open() -> Self {
        let db = TestDatabase::create().await;
        let mut admin = PgStore::new(db.connector(), pg_settings()).admin().await.unwrap();
        admin.migrate().await.unwrap();
        let (a, b) = (pg_core(&db).await, pg_core(&db).await);
        Self { db, a, b }
    }

    fn a(&self) -> &CoreStore {
        &self.a
    }

    fn b(&self) -> &CoreStore {
        &self.b
    }

    async fn stored_sessions(&mut self) -> usize {
        let client = connect(&self.db.url()).await;
        let row = client.query_one("SELECT count(*) FROM operator_sessions", &[]).await.unwrap();
        usize::try_from(row.get::<_, i64>(0)).unwrap()
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

/// One `#[test]` per scenario and backend: `embedded::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(#[test]
            fn $scenario() {
                super::runtime().block_on(async {
                    use super::Fixture as _;
                    let mut fixture = super::EmbeddedFixture::open().await;
                    crate::security_scenarios::$scenario(&mut fixture).await;
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
                    crate::security_scenarios::$scenario(&mut fixture).await;
                    fixture.close().await;
                });
            })+
        }
    };
}

conformance!(
    tenants_are_found_by_id_and_name,
    keys_rotate_with_two_active_and_a_third_refused,
    a_tenant_cannot_revoke_another_tenants_key,
    simultaneous_key_adds_never_exceed_two_active,
    operators_are_created_once_and_found,
    failures_lock_out_at_exactly_ten,
    success_resets_failures_and_a_step_is_used_once,
    simultaneous_sign_ins_with_one_step_record_it_once,
    disabled_operators_are_refused_and_passwords_replaced,
    sessions_are_created_once_and_checked,
    idle_sessions_expire_and_touch_extends_them,
    sessions_end_at_their_absolute_expiry,
    sessions_are_revoked_one_by_one_or_all_of_an_operator,
    dead_sessions_are_purged_when_sessions_are_created,
);
