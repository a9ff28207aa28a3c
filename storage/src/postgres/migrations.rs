//! Versioned SQL migrations, embedded in the binary and applied in order under a
//! PostgreSQL advisory lock, so gateways starting together never race and each version
//! is applied exactly once, each in its own transaction.
//!
//! A database whose schema is newer than this binary is refused rather than used. Never
//! edit a released migration: add a new version.

pub use pool::pg::describe;
use tokio_postgres::Client;

use super::codec::db;
use crate::error::StoreError;

/// One migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its version; versions start at 1 and have no gaps.
    pub version: i32,
    /// A short name.
    pub name: &'static str,
    /// The SQL, run as one transaction.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "ledger", sql: include_str!("migrations/0001_ledger.sql") },
    Migration {
        version: 2,
        name: "timestamp_sequence",
        sql: include_str!("migrations/0002_timestamp_sequence.sql"),
    },
    Migration { version: 3, name: "security", sql: include_str!("migrations/0003_security.sql") },
    Migration { version: 4, name: "vault", sql: include_str!("migrations/0004_vault.sql") },
    Migration { version: 5, name: "audit", sql: include_str!("migrations/0005_audit.sql") },
];

/// The advisory lock key that serialises migrations ("protea" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x7072_6f74_6561;

const CREATE_VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order.
    pub applied: Vec<i32>,
    /// The schema version afterwards.
    pub version: i32,
}

/// Applies every pending migration. Holds the advisory lock for the duration and
/// releases it whatever happens.
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, StoreError> {
    migrate_to(client, latest_version()).await
}

/// Applies the pending migrations up to `target` and no further (what a test of an upgrade
/// needs: a database as an older build left it). A database already past `target` is left
/// as it is; a `target` this build does not know is refused.
pub async fn migrate_to(client: &mut Client, target: i32) -> Result<MigrationReport, StoreError> {
    if !(0..=latest_version()).contains(&target) {
        return Err(StoreError::Migration(format!(
            "no schema version {target} in this build (it knows 1 to {})",
            latest_version()
        )));
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY]).await.map_err(db)?;
    let result = migrate_locked(client, target).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY]).await;
    let report = result?;
    unlocked.map_err(db)?;
    Ok(report)
}

/// The newest version this build knows.
fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

async fn migrate_locked(client: &mut Client, target: i32) -> Result<MigrationReport, StoreError> {
    client.batch_execute(CREATE_VERSIONS_TABLE).await.map_err(db)?;
    let current = current_version(client).await?;
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::Migration(format!(
            "the database schema is version {current}, newer than this build's {latest}"
        )));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current && m.version <= target) {
        apply(client, migration).await?;
        applied.push(migration.version);
    }
    Ok(MigrationReport { applied, version: current.max(target) })
}

/// The newest applied version, 0 for an empty database.
pub async fn current_version(client: &Client) -> Result<i32, StoreError> {
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(db)?;
    row.try_get(0).map_err(db)
}

async fn apply(client: &mut Client, migration: &Migration) -> Result<(), StoreError> {
    let failed = |e: tokio_postgres::Error| {
        let (version, name) = (migration.version, migration.name);
        StoreError::Migration(format!("migration {version} ({name}): {}", describe(&e)))
    };
    let txn = client.transaction().await.map_err(db)?;
    txn.batch_execute(migration.sql).await.map_err(failed)?;
    txn.execute(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
        &[&migration.version, &migration.name],
    )
    .await
    .map_err(failed)?;
    txn.commit().await.map_err(failed)?;
    tracing::info!(version = migration.version, name = migration.name, "migration applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i32::try_from(index).unwrap() + 1, "{}", migration.name);
        }
    }
}
