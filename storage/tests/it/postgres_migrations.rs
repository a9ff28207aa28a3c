//! PostgreSQL schema migrations against a real server: applied once and in order, safe
//! when two gateways start together, transfers immutable, and a database newer than the
//! binary refused.

use storage::StoreError;
use storage::postgres::migrations::{MIGRATIONS, current_version, describe, migrate};

use crate::pg_support::{TestDatabase, connect};

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[tokio::test]
async fn migrations_apply_once_in_order() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    let first = migrate(&mut client).await.unwrap();
    assert_eq!(first.applied, (1..=latest()).collect::<Vec<_>>());
    let second = migrate(&mut client).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(current_version(&client).await.unwrap(), latest());
    drop(client);
    db.drop_now().await;
}

#[tokio::test]
async fn two_gateways_migrating_together_do_not_race() {
    let db = TestDatabase::create().await;
    let mut a = connect(&db.url()).await;
    let mut b = connect(&db.url()).await;
    let (ra, rb) = tokio::join!(migrate(&mut a), migrate(&mut b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut applied = [ra.applied, rb.applied].concat();
    applied.sort_unstable();
    assert_eq!(applied, (1..=latest()).collect::<Vec<_>>(), "each version applied exactly once");
    let rows = a.query("SELECT version FROM schema_migrations", &[]).await.unwrap();
    assert_eq!(rows.len(), MIGRATIONS.len());
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn transfers_are_immutable() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tenants (name) VALUES ('acme');
             INSERT INTO transfers (tenant_id, id, debit_account_id, credit_account_id, amount,
                                    ledger, code, flags, timeout_seconds, timestamp)
             VALUES (1, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 5, 710, 1, 0, 0, 1);",
        )
        .await
        .unwrap();
    for change in ["UPDATE transfers SET amount = 6", "DELETE FROM transfers"] {
        let error = client.batch_execute(change).await.unwrap_err();
        let message = describe(&error);
        assert!(message.contains("transfers rows are immutable"), "{change}: {message}");
    }
    let amount: i64 = client.query_one("SELECT amount FROM transfers", &[]).await.unwrap().get(0);
    assert_eq!(amount, 5);
    drop(client);
    db.drop_now().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    migrate(&mut client).await.unwrap();
    client
        .execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')", &[])
        .await
        .unwrap();
    let error = migrate(&mut client).await.unwrap_err();
    assert!(matches!(&error, StoreError::Migration(m) if m.contains("999")), "{error}");
    drop(client);
    db.drop_now().await;
}
