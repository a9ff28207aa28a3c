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
    let body = serde_json::to_vec(&bob.sign_in_body()).expect("json");
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
