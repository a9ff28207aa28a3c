//! PostgreSQL schema migrations against a real server: applied once and in order, safe
//! when two gateways start together, transfers immutable, a database newer than the
//! binary refused, API keys made before version 3 kept through it, and the version-3
//! tables refusing rows that break their rules.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use storage::StoreError;
use storage::postgres::migrations::{MIGRATIONS, current_version, describe, migrate, migrate_to};
use storage::postgres::{PgAdmin, PgSettings, PgStore};
use storage::tenants::{ApiKeyRecord, NewApiKey};

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

async fn admin(db: &TestDatabase) -> PgAdmin {
    let settings = PgSettings {
        read_pool_size_max: 1,
        pool_wait_timeout: Duration::from_secs(10),
        expire_batch_max: 0,
    };
    PgStore::new(db.connector(), settings).admin().await.unwrap()
}

fn new_key(key_id: &str) -> NewApiKey {
    NewApiKey {
        key_id: key_id.into(),
        secret_digest: [3; 32],
        sealed_secret: vec![4; 60],
        created_at_s: 1_900_000_000,
    }
}

#[tokio::test]
async fn keys_made_before_version_3_are_kept_through_it() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    let report = migrate_to(&mut client, 2).await.unwrap();
    assert_eq!((report.applied, report.version), (vec![1, 2], 2));
    // As a version-2 build created a tenant: a digest and nothing else.
    client
        .batch_execute(
            "INSERT INTO tenants (name) VALUES ('acme');
             INSERT INTO api_keys (key_id, tenant_id, secret_digest)
             VALUES ('pk_old', 1, decode(repeat('09', 32), 'hex'));",
        )
        .await
        .unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let applied = migrate(&mut client).await.unwrap().applied;
    assert_eq!(applied, (3..=latest()).collect::<Vec<_>>());

    let mut admin = admin(&db).await;
    admin.check_schema().await.unwrap();
    let legacy = ApiKeyRecord {
        key_id: "pk_old".into(),
        tenant: 1,
        secret_digest: [9; 32],
        sealed_secret: vec![],
    };
    assert_eq!(admin.api_keys().await.unwrap(), [legacy], "a legacy key: Bearer only");
    let infos = admin.api_key_infos(1).await.unwrap();
    assert_eq!(infos.len(), 1);
    assert!(infos[0].created_at_s + 600 >= before && infos[0].revoked_at_s.is_none(), "{infos:?}");
    // The legacy key counts as active: one more fits, then rotation revokes it.
    admin.add_api_key(1, new_key("pk_new")).await.unwrap();
    let third = admin.add_api_key(1, new_key("pk_third")).await;
    assert!(matches!(third, Err(StoreError::TooManyKeys)), "{third:?}");
    assert!(admin.revoke_api_key(1, "pk_old", 1_900_000_100).await.unwrap());
    let active: Vec<String> =
        admin.api_keys().await.unwrap().into_iter().map(|k| k.key_id).collect();
    assert_eq!(active, ["pk_new"]);
    drop((client, admin));
    db.drop_now().await;
}

#[tokio::test]
async fn migrate_to_stops_at_its_target_and_refuses_unknown_versions() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    assert_eq!(migrate_to(&mut client, 1).await.unwrap().applied, [1]);
    assert_eq!(current_version(&client).await.unwrap(), 1);
    let error = migrate_to(&mut client, latest() + 1).await.unwrap_err();
    assert!(matches!(error, StoreError::Migration(_)), "{error}");
    assert_eq!(migrate(&mut client).await.unwrap().applied, (2..=latest()).collect::<Vec<_>>());
    let behind = migrate_to(&mut client, 2).await.unwrap();
    assert_eq!((behind.applied.len(), behind.version), (0, latest()), "never downgraded");
    let mut admin = admin(&db).await;
    assert!(admin.check_schema().await.is_ok());
    admin.migrate().await.unwrap();
    drop((client, admin));
    db.drop_now().await;
}

#[tokio::test]
async fn version_3_tables_refuse_rows_that_break_their_rules() {
    let db = TestDatabase::create().await;
    let mut client = connect(&db.url()).await;
    migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO tenants (name) VALUES ('acme');
             INSERT INTO operators (username, role, password_phc, totp_sealed, created_at)
             VALUES ('ada', 'admin', '$argon2id$x', '\\x01', now());
             INSERT INTO operator_sessions (id, operator_id, role, created_at, last_seen, expires_at)
             VALUES ('sid-0123456789abcdef', '1', 'admin', now(), now(), now() + interval '1 hour');",
        )
        .await
        .unwrap();
    let refused = [
        "INSERT INTO api_keys (key_id, tenant_id, secret_digest, sealed_secret)
         VALUES ('k', 1, decode(repeat('00', 32), 'hex'), '')",
        "INSERT INTO operators (username, role, password_phc, totp_sealed, created_at)
         VALUES ('Ada', 'admin', '$x', '\\x01', now())",
        "INSERT INTO operators (username, role, password_phc, totp_sealed, created_at)
         VALUES ('grace', 'root', '$x', '\\x01', now())",
        "INSERT INTO operators (username, role, password_phc, totp_sealed, created_at)
         VALUES ('grace', 'admin', '$x', '', now())",
        "UPDATE operators SET failed_attempts = 11",
        "INSERT INTO operator_sessions (id, operator_id, role, created_at, last_seen, expires_at)
         VALUES ('short', '1', 'admin', now(), now(), now() + interval '1 hour')",
        "UPDATE operator_sessions SET expires_at = created_at",
    ];
    for statement in refused {
        let error = client.batch_execute(statement).await.unwrap_err();
        assert!(describe(&error).contains("violates check constraint"), "{statement}: {error}");
    }
    drop(client);
    db.drop_now().await;
}
