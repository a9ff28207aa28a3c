//! Operators end to end on the embedded store: the first admin from the command line,
//! sign-in with password and TOTP, a token bound to its session, sign-out, and the admin
//! API managing tenants and keys with the new keys working at once.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, Api, Gateway};

/// Sends `method path` with the operator's `token` and a JSON `body` (`Value::Null`: none).
async fn admin(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).expect("json") };
    let reply = api.call(method, path, &[("authorization", token)], bytes).await;
    (reply.status, reply.json())
}

#[tokio::test]
async fn an_admin_signs_in_manages_tenants_and_signs_out() {
    let dir = support::data_dir();
    let path = dir.path().to_str().expect("a UTF-8 path");
    let alice = support::create_operator("alice", "admin", &["--data-dir", path]);
    let gateway = Gateway::start(dir.path(), &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;

    let token = api.operator_token(&alice).await;
    let (status, created) =
        admin(&api, &token, Method::POST, "/v1/admin/tenants", json!({"name": "acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = format!(
        "Bearer {}.{}",
        created["key"]["key_id"].as_str().expect("key_id"),
        created["key"]["secret"].as_str().expect("secret")
    );
    let account = json!({"id": support::uuid(1), "ledger": 1, "code": 1});
    let (status, body) = api.post_json("/v1/accounts", &key, account).await;
    assert_eq!(status, StatusCode::CREATED, "the new tenant's key signs at once: {body}");

    let (status, rotated) =
        admin(&api, &token, Method::POST, "/v1/admin/tenants/acme/keys", Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (status, body) =
        admin(&api, &token, Method::POST, "/v1/admin/tenants/acme/keys", Value::Null).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::CONFLICT, &json!("too_many_keys")));
    let old = created["key"]["key_id"].as_str().expect("key_id");
    let revoke = format!("/v1/admin/tenants/acme/keys/{old}");
    let (status, _) = admin(&api, &token, Method::DELETE, &revoke, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get_json(&format!("/v1/accounts/{}", support::uuid(1)), &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key stops at once");

    let (status, _) = admin(&api, &token, Method::POST, "/v1/operator/sign-out", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin(&api, &token, Method::GET, "/v1/admin/tenants", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token died with its session");
}

#[tokio::test]
async fn a_totp_code_signs_in_once() {
    let dir = support::data_dir();
    let path = dir.path().to_str().expect("a UTF-8 path");
    let bob = support::create_operator("bob", "auditor", &["--data-dir", path]);
    let gateway = Gateway::start(dir.path(), &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let body = serde_json::to_vec(&bob.sign_in_body().await).expect("json");
    let first = api.call(Method::POST, "/v1/operator/sign-in", &[], body.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = api.call(Method::POST, "/v1/operator/sign-in", &[], body).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "the same code a second time");
    let token = api.operator_token(&bob).await;
    let (status, body) =
        admin(&api, &token, Method::POST, "/v1/admin/tenants", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an auditor may not create tenants: {body}");
    let (status, body) = admin(&api, &token, Method::GET, "/v1/admin/tenants", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "an auditor may list them: {body}");
    let (status, body) = admin(&api, &token, Method::GET, "/v1/admin/operators", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["id"], bob.id, "{body}");
    let text = body.to_string();
    assert!(!text.contains("argon2") && !text.contains("totp"), "no secrets listed: {text}");
}

/// The kid in a compact JWT's header.
fn token_kid(authorization: &str) -> String {
    use data_encoding::BASE64URL_NOPAD;
    let token = authorization.strip_prefix("Bearer ").expect("a bearer token");
    let header = token.split('.').next().expect("a header segment");
    let header: Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(header.as_bytes()).expect("base64url"))
            .expect("a JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

/// A new KEK version and a new token key are made current in the keys file while the
/// gateway runs: new tokens carry the new key id, tokens and sealed secrets made under
/// the old keys keep working, and a tenant created afterwards works too.
#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let dir = support::data_dir();
    let path = dir.path().to_str().expect("a UTF-8 path");
    let alice = support::create_operator("alice", "admin", &["--data-dir", path]);
    let old_key = support::create_tenant(dir.path(), "acme");
    let gateway = Gateway::start(dir.path(), &["--keys-refresh-seconds", "1"]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let old_token = api.operator_token(&alice).await;
    assert_eq!(token_kid(&old_token), "tok-1");

    let keys_file = dir.path().join("keys.json");
    let mut keys: Value =
        serde_json::from_str(&std::fs::read_to_string(&keys_file).expect("keys.json"))
            .expect("a JSON keys document");
    let kek = crypto::envelope::KeyRing::generate("protea-kek").expect("a key").1;
    keys["kek"]["versions"]["2"] = json!(crypto::envelope::key_to_base64(&kek));
    keys["kek"]["current_version"] = json!(2);
    let pkcs8 = crypto::token::TokenSigner::generate_pkcs8().expect("an Ed25519 key");
    keys["token"]["keys"]["tok-2"] = json!(data_encoding::BASE64.encode(&pkcs8));
    keys["token"]["current"] = json!("tok-2");
    std::fs::write(&keys_file, keys.to_string()).expect("writing keys.json");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Refreshing a session's token signs with the current key and uses no TOTP code.
    let new_token = loop {
        let (status, body) =
            admin(&api, &old_token, Method::POST, "/v1/operator/token", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = format!("Bearer {}", body["token"].as_str().expect("a token"));
        if token_kid(&token) == "tok-2" {
            break token;
        }
        assert!(std::time::Instant::now() < deadline, "no token under tok-2 within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for token in [&old_token, &new_token] {
        let (status, body) =
            admin(&api, token, Method::GET, "/v1/admin/tenants", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let account = |id| json!({"id": support::uuid(id), "ledger": 1, "code": 1});
    let (status, body) = api.post_json("/v1/accounts", &old_key, account(1)).await;
    assert_eq!(status, StatusCode::CREATED, "a secret sealed under KEK v1 still opens: {body}");
    let (status, created) =
        admin(&api, &new_token, Method::POST, "/v1/admin/tenants", json!({"name": "globex"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let new_key = format!(
        "Bearer {}.{}",
        created["key"]["key_id"].as_str().expect("key_id"),
        created["key"]["secret"].as_str().expect("secret")
    );
    let (status, body) = api.post_json("/v1/accounts", &new_key, account(2)).await;
    assert_eq!(status, StatusCode::CREATED, "a secret sealed under KEK v2 opens: {body}");
}
