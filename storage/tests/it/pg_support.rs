//! A fresh PostgreSQL database per test, on the server named by
//! `PROTEA_TEST_POSTGRES_URL` (default: the local server, user postgres). A missing
//! server fails the test with a message saying how to start it: it never skips.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pool::pg::{ConnectLimits, Connector, Tls};
use tokio_postgres::{Client, NoTls};

const DEFAULT_ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

fn admin_url() -> String {
    std::env::var("PROTEA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects, spawning the connection task on the current runtime.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required at {url:?} ({e}); run scripts/test, which starts it, \
             or set PROTEA_TEST_POSTGRES_URL"
        )
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops databases left by test processes that no longer run (a failed test skips its
/// clean-up).
async fn drop_leftovers(admin: &Client) {
    let rows = admin
        .query("SELECT datname FROM pg_database WHERE datname LIKE 'protea_it_%'", &[])
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or("");
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

/// A database created for one test and dropped afterwards.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Creates an empty database with a name unique to this process and call.
    pub async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name =
            format!("protea_it_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = connect(&admin_url()).await;
        drop_leftovers(&admin).await;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection string of this database.
    pub fn url(&self) -> String {
        format!("{} dbname={}", admin_url().replace("dbname=postgres", ""), self.name)
    }

    /// A connector to this database, as a gateway builds one (no TLS).
    pub fn connector(&self) -> Arc<Connector> {
        let limits = ConnectLimits {
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        };
        Arc::new(Connector::new(self.url().parse().unwrap(), Tls::Off, limits))
    }

    /// Drops the database (connections to it must be closed).
    pub async fn drop_now(self) {
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}
