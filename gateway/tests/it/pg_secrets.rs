//! The database credentials from AWS Secrets Manager (a local moto server at
//! `PROTEA_TEST_MOTO_URL`, default `http://127.0.0.1:5055`, which `scripts/test` starts),
//! rotated while the gateway runs: no restart, no lost transfer.
//!
//! The shared test server trusts local connections, so a password proves nothing here;
//! the rotation switches the *role* instead (RDS-style JSON `{"username", "password"}`),
//! and the old role then loses its right to log in. A gateway that still used the old
//! secret could not reconnect.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use storage::secrets::{SecretSource, SecretsProvider};

use crate::pg_cluster::{TestDatabase, admin_url, connect};
use crate::support::{
    self, Api, Gateway, SHARED_KEYS, create_tenant_with, data_dir, run_gateway, uuid,
};

/// Bound on each wait for the gateway to catch up with a rotation.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// The roles connected to `database`, other than `postgres`.
async fn roles_connected(admin: &tokio_postgres::Client, database: &str) -> Vec<String> {
    let rows = admin
        .query(
            "SELECT DISTINCT usename::text FROM pg_stat_activity \
             WHERE datname = $1 AND usename <> 'postgres' ORDER BY 1",
            &[&database],
        )
        .await
        .expect("reading pg_stat_activity");
    rows.iter().map(|row| row.get(0)).collect()
}

/// Posts one transfer, retrying while the gateway reconnects (503), within [`WAIT_MAX`].
async fn transfer_eventually(api: &Api, auth: &str, id: u128) -> serde_json::Value {
    let body = json!([{
        "id": uuid(id), "debit_account_id": uuid(1), "credit_account_id": uuid(2),
        "amount": 10, "ledger": 1, "code": 1,
    }]);
    let started = Instant::now();
    loop {
        match api.try_post_json("/v1/transfers", auth, &body).await {
            Ok((StatusCode::OK | StatusCode::CREATED, reply)) => return reply,
            other if started.elapsed() > WAIT_MAX => {
                panic!("transfer {id} never succeeded: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[test]
fn database_role_rotated_in_secrets_manager_without_a_restart() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = TestDatabase::create().await;
        let admin_url = admin_url();
        let admin = connect(&admin_url).await;
        let (role_a, role_b) = (format!("{}_role_a", db.name()), format!("{}_role_b", db.name()));
        let migrated = run_gateway(&["migrate", "--storage", &db.gateway_url()]);
        assert!(migrated.status.success(), "migrate: {}", migrated.stderr);
        let on_db = connect(&db.conninfo()).await;
        for role in [&role_a, &role_b] {
            admin
                .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'unused'"))
                .await
                .unwrap();
            on_db
                .batch_execute(&format!(
                    "GRANT USAGE, CREATE ON SCHEMA public TO {role};
                     GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
                     GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};"
                ))
                .await
                .unwrap();
        }

        // The secret, in Secrets Manager's RDS format, naming role A.
        let secret_id = format!("protea-it/{}", db.name());
        let source: SecretSource = format!("aws-secretsmanager:{secret_id}").parse().unwrap();
        let provider =
            SecretsProvider::with_aws_endpoint(source, support::moto_url(), support::AWS_REGION)
                .await
                .unwrap_or_else(|e| {
                    panic!("moto at {} ({e}); scripts/test starts it", support::moto_url())
                });
        let aws = provider.aws_client().expect("an AWS source has a client");
        let credentials = |role: &str| json!({"username": role, "password": "unused"}).to_string();
        aws.create_secret()
            .name(&secret_id)
            .secret_string(credentials(&role_a))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("creating the secret on moto at {}: {e:?}", support::moto_url())
            });

        // The gateway: host and database from --storage, the role from the secret.
        let url = db.gateway_url();
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let base_url = format!("{scheme}://{}", rest.split_once('@').map_or(rest, |(_, r)| r));
        let dir = data_dir();
        let secret_arg = format!("aws-secretsmanager:{secret_id}");
        let args = [
            "--storage",
            base_url.as_str(),
            "--storage-secret",
            secret_arg.as_str(),
            "--storage-secret-refresh-seconds",
            "1",
            SHARED_KEYS[0],
            SHARED_KEYS[1],
        ];
        let gateway = Gateway::start_with_env(dir.path(), &args, &support::aws_env());
        let api = Api::http1(gateway.addr());
        api.wait_ready().await;
        assert_eq!(roles_connected(&admin, db.name()).await, vec![role_a.clone()]);

        let auth = create_tenant_with(
            "rotation",
            &["--storage", &db.gateway_url(), SHARED_KEYS[0], SHARED_KEYS[1]],
        );
        let accounts = json!([
            {"id": uuid(1), "ledger": 1, "code": 1},
            {"id": uuid(2), "ledger": 1, "code": 1},
        ]);
        // The key reaches the gateway within a second: retry until it does.
        let started = Instant::now();
        while !api
            .try_post_json("/v1/accounts", &auth, &accounts)
            .await
            .is_ok_and(|(status, _)| status.is_success())
        {
            assert!(started.elapsed() < WAIT_MAX, "the new tenant's key never worked");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        transfer_eventually(&api, &auth, 100).await;

        // Rotate to role B, then retire role A and cut its sessions.
        aws.put_secret_value()
            .secret_id(&secret_id)
            .secret_string(credentials(&role_b))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await; // three refresh intervals
        admin.batch_execute(&format!("ALTER ROLE {role_a} NOLOGIN")).await.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND usename = $2",
                &[&db.name(), &role_a],
            )
            .await
            .unwrap();

        // Writes and reads go on, now as role B only.
        let reply = transfer_eventually(&api, &auth, 101).await;
        assert_eq!(reply["results"][0]["result"], "ok", "{reply}");
        let (status, account) = api.get_json(&format!("/v1/accounts/{}", uuid(2)), &auth).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(account["credits_posted"], 20, "{account}");
        let started = Instant::now();
        loop {
            let roles = roles_connected(&admin, db.name()).await;
            if roles == vec![role_b.clone()] {
                break;
            }
            assert!(started.elapsed() < WAIT_MAX, "still connected as {roles:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let (status, _) = gateway.terminate();
        assert!(status.success(), "gateway exit: {status}");
        drop(on_db);
        db.drop_now().await;
        for role in [&role_a, &role_b] {
            admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
        }
        let _ = aws
            .delete_secret()
            .secret_id(&secret_id)
            .force_delete_without_recovery(true)
            .send()
            .await;
    });
}
