//! The connection a tenant, key, operator or session operation runs on: one of a core's
//! pooled connections (statements prepared once per connection, `prepare_cached`) or the
//! administrative connection (statements prepared per call: it serves rare commands).
//!
//! Statements are prepared before a transaction begins, and a write that reads first runs
//! in one transaction; dropping it uncommitted rolls it back. Nothing here logs.

use tokio_postgres::{Client, Statement, Transaction};

use super::codec::db;
use crate::error::StoreError;

/// A connection that prepares statements and begins transactions.
pub(crate) trait Db {
    /// The statement `sql`, prepared on this connection.
    async fn statement(&self, sql: &str) -> Result<Statement, StoreError>;

    /// The driver's client, for statements outside a transaction.
    fn client(&self) -> &Client;

    /// The driver's client, to begin a transaction.
    fn client_mut(&mut self) -> &mut Client;

    /// Begins a transaction.
    async fn transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.client_mut().transaction().await.map_err(db)
    }
}

impl Db for deadpool_postgres::ClientWrapper {
    async fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        self.prepare_cached(sql).await.map_err(db)
    }

    fn client(&self) -> &Client {
        self
    }

    fn client_mut(&mut self) -> &mut Client {
        self
    }
}

impl Db for Client {
    async fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        self.prepare(sql).await.map_err(db)
    }

    fn client(&self) -> &Client {
        self
    }

    fn client_mut(&mut self) -> &mut Client {
        self
    }
}
