//! The HTTP API end to end through the real binary: account and transfer creation with
//! every status class, two-phase transfers, linked chains, reads and history paging,
//! tenant isolation, authentication, request validation, body limits, the operational
//! endpoints, h2c, graceful SIGTERM and configuration errors.
//!
//! Each test starts its own gateway on its own data directory, so tests are independent
//! and run in parallel. Ids are small numbers written as UUIDs; amounts are minor units on
//! ledger 840.

use http::{Method, StatusCode, Version};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{self, Api, Gateway, id_of, uuid};

const LEDGER: u64 = 840;
const LIMITED: &str = "debits_must_not_exceed_credits";

/// A gateway with tenants, and a client of it. Field order matters: the gateway stops
/// before its directory is removed.
struct Served {
    api: Api,
    /// `Authorization` header values, one per tenant, in the order asked for.
    auth: Vec<String>,
    gateway: Gateway,
    _dir: TempDir,
}

impl Served {
    /// The first tenant's credentials.
    fn auth(&self) -> &str {
        &self.auth[0]
    }
}

async fn serve_tenants(tenants: &[&str], extra: &[&str]) -> Served {
    let dir = support::data_dir();
    let auth = tenants.iter().map(|name| support::create_tenant(dir.path(), name)).collect();
    let gateway = Gateway::start(dir.path(), extra);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    Served { api, auth, gateway, _dir: dir }
}

async fn serve() -> Served {
    serve_tenants(&["acme"], &[]).await
}

fn account(id: u128) -> Value {
    json!({"id": uuid(id), "ledger": LEDGER, "code": 1})
}

fn limited_account(id: u128) -> Value {
    json!({"id": uuid(id), "ledger": LEDGER, "code": 1, "flags": [LIMITED]})
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Value {
    json!({
        "id": uuid(id),
        "debit_account_id": uuid(debit),
        "credit_account_id": uuid(credit),
        "amount": amount,
        "ledger": LEDGER,
        "code": 1,
    })
}

fn flagged(mut event: Value, flags: &[&str]) -> Value {
    event["flags"] = json!(flags);
    event
}

/// Creates `accounts` in one request and checks that each was created.
async fn create_accounts(served: &Served, auth: &str, accounts: Vec<Value>) {
    let count = accounts.len();
    let (status, body) = served.api.post_json("/v1/accounts", auth, Value::Array(accounts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), count, "{body}");
    for result in results {
        assert_eq!(result["result"], "ok", "{body}");
    }
}

/// `[debits_pending, debits_posted, credits_pending, credits_posted]` of an account.
async fn balances(served: &Served, auth: &str, id: u128) -> [u64; 4] {
    let (status, body) = served.api.get_json(&format!("/v1/accounts/{}", uuid(id)), auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ["debits_pending", "debits_posted", "credits_pending", "credits_posted"]
        .map(|field| body[field].as_u64().unwrap_or_else(|| panic!("{field} in {body}")))
}

/// Checks an error body's shape and returns its `param`.
fn error_param<'b>(body: &'b Value, kind: &str, code: &str) -> Option<&'b str> {
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error.get("param").is_some(), "param is always present: {body}");
    error["param"].as_str()
}

#[tokio::test]
async fn accounts_are_created_singly_and_in_batches() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());

    let (status, body) = api.post_json("/v1/accounts", auth, account(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((&body["id"], &body["result"]), (&json!(uuid(1)), &json!("ok")), "{body}");
    let created = &body["account"];
    assert_eq!(id_of(&created["id"]), 1);
    assert_eq!((created["ledger"].as_u64(), created["code"].as_u64()), (Some(LEDGER), Some(1)));
    assert_eq!(created["flags"], json!([]));
    assert_eq!(created["debits_posted"], 0);
    assert!(created["timestamp"].as_u64().is_some_and(|t| t > 0), "{body}");

    let (status, body) = api.post_json("/v1/accounts", auth, account(1)).await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!("exists")), "{body}");
    assert_eq!(body["account"], *created, "an identical retry returns the stored account");

    let different = json!({"id": uuid(1), "ledger": LEDGER, "code": 2});
    let (status, body) = api.post_json("/v1/accounts", auth, different).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["result"], "exists_with_different_fields", "{body}");

    let batch = json!([account(2), limited_account(3), account(1)]);
    let (status, body) = api.post_json("/v1/accounts", auth, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    let summary: Vec<(u64, u128, &str)> = results
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                id_of(&r["id"]),
                r["result"].as_str().expect("result"),
            )
        })
        .collect();
    assert_eq!(summary, [(0, 2, "ok"), (1, 3, "ok"), (2, 1, "exists")]);
    assert!(results.iter().all(|r| r["timestamp"].as_u64().is_some()), "{body}");

    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(3)), auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["flags"], json!([LIMITED]), "{body}");
    assert_eq!(body["timestamp"], results[1]["timestamp"], "{body}");
}

#[tokio::test]
async fn transfers_answer_with_each_status_class() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    create_accounts(&served, auth, vec![account(1), limited_account(2), account(3)]).await;

    let (status, body) = api.post_json("/v1/transfers", auth, transfer(10, 1, 2, 100)).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    let created = body["transfer"].clone();
    assert_eq!((id_of(&created["debit_account_id"]), id_of(&created["credit_account_id"])), (1, 2));
    assert_eq!(created["amount"], 100, "{body}");
    assert!(created["timestamp"].as_u64().is_some(), "{body}");

    let (status, body) = api.post_json("/v1/transfers", auth, transfer(10, 1, 2, 100)).await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!("exists")), "{body}");
    assert_eq!(body["transfer"], created, "an identical retry returns the stored transfer");

    let (status, body) = api.post_json("/v1/transfers", auth, transfer(10, 1, 2, 101)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["result"], "exists_with_different_fields", "{body}");

    let (status, body) = api.post_json("/v1/transfers", auth, transfer(11, 99, 2, 5)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["result"], "debit_account_not_found", "{body}");

    // Account 2 may not pay out more than it received.
    let (status, body) = api.post_json("/v1/transfers", auth, transfer(12, 2, 3, 500)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "exceeds_credits", "{body}");
    assert!(body.get("original_result").is_none(), "{body}");

    // Once funded it could, but the rejection of id 12 stands.
    let (status, body) = api.post_json("/v1/transfers", auth, transfer(13, 1, 2, 1000)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api.post_json("/v1/transfers", auth, transfer(12, 2, 3, 500)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "id_already_failed", "{body}");
    assert_eq!(body["original_result"], "exceeds_credits", "{body}");

    let (status, body) = api.get_json(&format!("/v1/transfers/{}", uuid(12)), auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a rejected transfer is not a transfer: {body}");
    let (status, body) = api.get_json(&format!("/v1/transfers/{}", uuid(10)), auth).await;
    assert_eq!((status, &body), (StatusCode::OK, &created));

    assert_eq!(balances(&served, auth, 1).await, [0, 1100, 0, 0]);
    assert_eq!(balances(&served, auth, 2).await, [0, 0, 0, 1100]);
    assert_eq!(balances(&served, auth, 3).await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn two_phase_transfers_post_partially_void_and_resolve_once() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    create_accounts(&served, auth, vec![account(1), account(2)]).await;

    let pending = flagged(transfer(20, 1, 2, 1000), &["pending"]);
    let (status, body) = api.post_json("/v1/transfers", auth, pending).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    assert_eq!(balances(&served, auth, 1).await, [1000, 0, 0, 0]);
    assert_eq!(balances(&served, auth, 2).await, [0, 0, 1000, 0]);

    // A partial capture names only the pending transfer and the amount.
    let post =
        json!({"id": uuid(21), "pending_id": uuid(20), "amount": 600, "flags": ["post_pending"]});
    let (status, body) = api.post_json("/v1/transfers", auth, post.clone()).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    let posted = &body["transfer"];
    assert_eq!(posted["amount"], 600, "{body}");
    assert_eq!(id_of(&posted["pending_id"]), 20);
    assert_eq!((id_of(&posted["debit_account_id"]), id_of(&posted["credit_account_id"])), (1, 2));
    assert_eq!((posted["ledger"].as_u64(), posted["code"].as_u64()), (Some(LEDGER), Some(1)));
    assert_eq!(balances(&served, auth, 1).await, [0, 600, 0, 0]);
    assert_eq!(balances(&served, auth, 2).await, [0, 0, 0, 600]);

    let (status, body) = api.post_json("/v1/transfers", auth, post).await;
    assert_eq!((status, &body["result"]), (StatusCode::OK, &json!("exists")), "{body}");
    let again = json!({"id": uuid(22), "pending_id": uuid(20), "flags": ["post_pending"]});
    let (status, body) = api.post_json("/v1/transfers", auth, again).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "pending_transfer_already_posted", "{body}");

    let pending = flagged(transfer(30, 1, 2, 300), &["pending"]);
    let (status, body) = api.post_json("/v1/transfers", auth, pending).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let void = json!({"id": uuid(31), "pending_id": uuid(30), "flags": ["void_pending"]});
    let (status, body) = api.post_json("/v1/transfers", auth, void).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    assert_eq!(balances(&served, auth, 1).await, [0, 600, 0, 0], "a void posts nothing");
    let post = json!({"id": uuid(32), "pending_id": uuid(30), "flags": ["post_pending"]});
    let (status, body) = api.post_json("/v1/transfers", auth, post).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "pending_transfer_already_voided", "{body}");

    let missing = json!({"id": uuid(33), "pending_id": uuid(99), "flags": ["post_pending"]});
    let (status, body) = api.post_json("/v1/transfers", auth, missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["result"], "pending_transfer_not_found", "{body}");
}

#[tokio::test]
async fn linked_chains_apply_whole_or_not_at_all() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    create_accounts(&served, auth, vec![account(1), limited_account(2), account(3)]).await;

    let chain = json!([
        flagged(transfer(40, 1, 3, 50), &["linked"]),
        flagged(transfer(41, 1, 3, 60), &["linked"]),
        transfer(42, 2, 3, 10),
    ]);
    let (status, body) = api.post_json("/v1/transfers", auth, chain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["result"].as_str().expect("result"))
        .collect();
    assert_eq!(
        results,
        ["linked_event_failed", "linked_event_failed", "exceeds_credits"],
        "{body}"
    );
    assert!(body["results"][0].get("timestamp").is_none(), "nothing was applied: {body}");
    for id in [1, 2, 3] {
        assert_eq!(balances(&served, auth, id).await, [0, 0, 0, 0], "account {id}");
    }
    let (status, _) = api.get_json(&format!("/v1/transfers/{}", uuid(40)), auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let chain = json!([flagged(transfer(43, 1, 3, 5), &["linked"]), transfer(44, 1, 3, 7)]);
    let (status, body) = api.post_json("/v1/transfers", auth, chain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["result"], "ok", "{body}");
    assert_eq!(body["results"][1]["result"], "ok", "{body}");
    assert_eq!(balances(&served, auth, 1).await, [0, 12, 0, 0]);

    let open = flagged(transfer(45, 1, 3, 9), &["linked"]);
    let (status, body) = api.post_json("/v1/transfers", auth, open).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["result"], "linked_event_chain_open", "{body}");
    assert_eq!(balances(&served, auth, 1).await, [0, 12, 0, 0]);
}

/// Requests that arrive together share a group commit; a chain left open at the end of
/// one request must still fail on its own (`linked_event_chain_open`, nothing applied),
/// and must neither apply nor drag down the events of the requests committed with it.
/// The open chains here debit an unfunded limited account, so joining the next request's
/// chain would show up as `exceeds_credits` there and `linked_event_failed` for the
/// innocent request.
#[tokio::test]
async fn an_open_chain_never_joins_the_requests_committed_with_it() {
    const CLIENTS: u128 = 8;
    const REQUESTS: u128 = 25;
    let served = serve().await;
    let auth = served.auth().to_owned();
    create_accounts(&served, &auth, vec![account(1), account(2), limited_account(3)]).await;
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (api, auth) = (served.api.clone(), auth.clone());
        clients.push(tokio::spawn(async move {
            let (mut wrong, mut applied) = (Vec::new(), 0);
            for n in 0..REQUESTS {
                let id = 10 * (1000 + client * REQUESTS + n);
                let open = flagged(transfer(id + 1, 3, 2, 1), &["linked"]);
                let (body, expected) = match (client + n) % 4 {
                    0 => (json!([open]), vec!["linked_event_chain_open"]),
                    1 => (
                        json!([transfer(id, 1, 2, 1), open]),
                        vec!["ok", "linked_event_chain_open"],
                    ),
                    _ => (json!([transfer(id, 1, 2, 1)]), vec!["ok"]),
                };
                let (status, body) = api.post_json("/v1/transfers", &auth, body).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let results = body["results"].as_array().expect("results");
                let results: Vec<&str> =
                    results.iter().filter_map(|r| r["result"].as_str()).collect();
                if results != expected {
                    wrong.push(format!("expected {expected:?}, got {body}"));
                }
                applied += results.iter().filter(|r| **r == "ok").count() as u64;
            }
            (wrong, applied)
        }));
    }
    let (mut wrong, mut applied) = (Vec::new(), 0);
    for client in clients {
        let (client_wrong, client_applied) = client.await.expect("a client task");
        wrong.extend(client_wrong);
        applied += client_applied;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers were wrong:\n{}",
        wrong.len(),
        CLIENTS * REQUESTS,
        wrong.join("\n")
    );
    assert_eq!(balances(&served, &auth, 1).await, [0, applied, 0, 0]);
    assert_eq!(balances(&served, &auth, 3).await, [0, 0, 0, 0], "no open chain applied");
}

/// Walks an account's history with `limit`, checking the paging fields, and returns the
/// transfer ids in order.
async fn walk_history(served: &Served, auth: &str, account: u128, limit: usize) -> Vec<u128> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut last_timestamp = 0;
    for _page in 0..1000 {
        let mut path = format!("/v1/accounts/{}/transfers?limit={limit}", uuid(account));
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, body) = served.api.get_json(&path, auth).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let data = body["data"].as_array().expect("data");
        assert!(data.len() <= limit, "{path}: {body}");
        for transfer in data {
            let timestamp = transfer["timestamp"].as_u64().expect("timestamp");
            assert!(timestamp > last_timestamp, "oldest first, each once: {body}");
            last_timestamp = timestamp;
            let touches = [&transfer["debit_account_id"], &transfer["credit_account_id"]];
            assert!(touches.iter().any(|id| id_of(id) == account), "{transfer}");
            ids.push(id_of(&transfer["id"]));
        }
        if body["has_more"] == true {
            assert_eq!(data.len(), limit, "{path}: a page before the last is full: {body}");
            let next = body["next_after"].as_str().expect("next_after while has_more");
            assert_eq!(next, last_timestamp.to_string(), "next_after is the last timestamp");
            after = Some(next.to_owned());
        } else {
            assert_eq!(body["has_more"], false, "{body}");
            assert_eq!(body["next_after"], Value::Null, "{body}");
            return ids;
        }
    }
    panic!("account {account}: more than 1000 pages");
}

#[tokio::test]
async fn reads_return_balances_transfers_and_paged_history() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    create_accounts(&served, auth, vec![account(1), account(2), account(3)]).await;
    let mut expected = Vec::new();
    for chunk in (0..25u128).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|&n| match n % 3 {
                0 => transfer(100 + n, 1, 2, 10),
                1 => transfer(100 + n, 2, 1, 3),
                _ => transfer(100 + n, 1, 3, 1),
            })
            .collect();
        expected.extend(chunk.iter().map(|n| 100 + n));
        let (status, body) = api.post_json("/v1/transfers", auth, Value::Array(batch)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Account 1: 9 debits of 10, 8 credits of 3, 8 debits of 1.
    assert_eq!(balances(&served, auth, 1).await, [0, 98, 0, 24]);

    for limit in [7, 5, 1, 25, 100] {
        assert_eq!(walk_history(&served, auth, 1, limit).await, expected, "limit {limit}");
    }
    let of_3: Vec<u128> = expected.iter().copied().filter(|id| (id - 100) % 3 == 2).collect();
    assert_eq!(walk_history(&served, auth, 3, 4).await, of_3);

    let (status, body) = api.get_json(&format!("/v1/transfers/{}", uuid(101)), auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((id_of(&body["debit_account_id"]), body["amount"].as_u64()), (2, Some(3)));

    let history = format!("/v1/accounts/{}/transfers", uuid(1));
    for (query, param) in
        [("limit=0", "limit"), ("limit=1001", "limit"), ("after=x", "after"), ("cursor=1", "query")]
    {
        let (status, body) = api.get_json(&format!("{history}?{query}"), auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(error_param(&body, "invalid_request_error", "invalid_parameter"), Some(param));
    }
    for (path, code) in [
        (format!("/v1/accounts/{}", uuid(9)), "account_not_found"),
        (format!("/v1/accounts/{}/transfers", uuid(9)), "account_not_found"),
        (format!("/v1/transfers/{}", uuid(9)), "transfer_not_found"),
    ] {
        let (status, body) = api.get_json(&path, auth).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(error_param(&body, "invalid_request_error", code), Some("id"), "{path}");
    }
}

#[tokio::test]
async fn tenants_see_and_touch_only_their_own_ledger() {
    let served = serve_tenants(&["acme", "globex"], &[]).await;
    let (api, acme, globex) = (&served.api, served.auth[0].as_str(), served.auth[1].as_str());
    create_accounts(&served, acme, vec![account(1), account(2)]).await;
    let (status, body) = api.post_json("/v1/transfers", acme, transfer(50, 1, 2, 70)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    for path in [
        format!("/v1/accounts/{}", uuid(1)),
        format!("/v1/accounts/{}/transfers", uuid(1)),
        format!("/v1/transfers/{}", uuid(50)),
    ] {
        let (status, body) = api.get_json(&path, globex).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "globex reads acme's {path}: {body}");
    }

    create_accounts(&served, globex, vec![account(3)]).await;
    let (status, body) = api.post_json("/v1/transfers", globex, transfer(60, 1, 3, 5)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["result"], "debit_account_not_found", "{body}");
    let (status, body) = api.post_json("/v1/transfers", globex, transfer(61, 3, 2, 5)).await;
    assert_eq!(body["result"], "credit_account_not_found", "{status} {body}");

    // Ids are per tenant: globex may use acme's account and transfer ids for its own.
    create_accounts(&served, globex, vec![account(1)]).await;
    let (status, body) = api.post_json("/v1/transfers", globex, transfer(50, 3, 1, 9)).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    assert_eq!(balances(&served, acme, 1).await, [0, 70, 0, 0]);
    assert_eq!(balances(&served, globex, 1).await, [0, 0, 0, 9]);
    let (_, body) = api.get_json(&format!("/v1/transfers/{}", uuid(50)), acme).await;
    assert_eq!(body["amount"], 70, "acme's transfer 50 is unchanged: {body}");
}

/// `gateway tenant create` goes through the running gateway's admin socket (the new key
/// works at once), and falls back to the store itself when the socket is stale after a
/// kill -9.
#[tokio::test]
async fn tenants_are_created_while_serving_and_after_a_crash() {
    let served = serve().await;
    let dir = served._dir.path();
    let globex = support::create_tenant(dir, "globex");
    let (status, body) = served.api.post_json("/v1/accounts", &globex, account(1)).await;
    assert_eq!(status, StatusCode::CREATED, "the new key works without a restart: {body}");
    let path = dir.to_str().expect("a UTF-8 temporary path");
    let duplicate = support::run_gateway(&["tenant", "create", "globex", "--data-dir", path]);
    assert!(!duplicate.status.success(), "a second tenant named globex: {duplicate:?}");
    assert!(!duplicate.stdout.contains("secret"), "no key is printed: {duplicate:?}");

    let Served { gateway, _dir: dir, .. } = served;
    gateway.kill();
    let initech = support::create_tenant(dir.path(), "initech");
    let gateway = Gateway::start(dir.path(), &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let (status, body) = api.post_json("/v1/accounts", &initech, account(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(1)), &globex).await;
    assert_eq!(status, StatusCode::OK, "globex's account survived the kill: {body}");
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    let flipped = if auth.ends_with('0') { '1' } else { '0' };
    let wrong_secret = format!("{}{flipped}", &auth[..auth.len() - 1]);
    let body = serde_json::to_vec(&account(1)).expect("json");
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("no header", vec![]),
        ("wrong secret", vec![("authorization", &wrong_secret)]),
        ("unknown key", vec![("authorization", "Bearer pk_0000000000000000.00")]),
        ("basic scheme", vec![("authorization", "Basic YWNtZTpzZWNyZXQ=")]),
        ("no scheme", vec![("authorization", auth.trim_start_matches("Bearer "))]),
    ];
    for (case, headers) in cases {
        for (method, path, body) in [
            (Method::POST, "/v1/accounts".to_owned(), body.clone()),
            (Method::GET, format!("/v1/accounts/{}", uuid(1)), Vec::new()),
        ] {
            let reply = api.call(method, &path, &headers, body).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case} {path}");
            let challenge = reply.header("www-authenticate");
            assert_eq!(challenge, Some("Protea-HMAC-SHA256, Bearer"), "{case} {path}");
            let body = reply.json();
            assert_eq!(error_param(&body, "authentication_error", "invalid_credentials"), None);
        }
    }
    let (status, _) = api.get_json(&format!("/v1/accounts/{}", uuid(1)), auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the right key still works");
}

#[tokio::test]
async fn malformed_requests_name_the_problem() {
    let served = serve().await;
    let (api, auth) = (&served.api, served.auth());
    create_accounts(&served, auth, vec![account(1), account(2)]).await;

    let mut typo = transfer(70, 1, 2, 5);
    typo["amout"] = json!(5);
    let (status, body) = api.post_json("/v1/transfers", auth, typo.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_param(&body, "invalid_request_error", "unknown_field"), Some("amout"));
    let (status, body) =
        api.post_json("/v1/transfers", auth, json!([transfer(71, 1, 2, 5), typo])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_param(&body, "invalid_request_error", "unknown_field"), Some("[1].amout"));
    let (_, body) = api.get_json(&format!("/v1/transfers/{}", uuid(71)), auth).await;
    assert_eq!(body["error"]["code"], "transfer_not_found", "a rejected body applies nothing");

    let mut negative = transfer(72, 1, 2, 5);
    negative["amount"] = json!(-5);
    let (status, body) = api.post_json("/v1/transfers", auth, negative).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_param(&body, "invalid_request_error", "invalid_field"), Some("amount"));

    let headers = [("authorization", auth)];
    let reply = api.call(Method::POST, "/v1/transfers", &headers, b"{\"id\":".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&reply.json(), "invalid_request_error", "invalid_json"), None);

    for path in [
        "/v1/accounts/not-a-uuid",
        "/v1/transfers/42",
        "/v1/accounts/0190b9a47c3e7d1a9c1f3b2a1d4e5f60/transfers",
    ] {
        let (status, body) = api.get_json(path, auth).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(error_param(&body, "invalid_request_error", "invalid_parameter"), Some("id"));
    }

    for (method, path, status, code) in [
        (Method::GET, "/v2/accounts", StatusCode::NOT_FOUND, "route_not_found"),
        (Method::GET, "/v1/accounts/", StatusCode::NOT_FOUND, "route_not_found"),
        (Method::GET, "/v1/transfers", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            Method::DELETE,
            "/v1/accounts/0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (Method::POST, "/livez", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ] {
        let reply = api.call(method.clone(), path, &headers, Vec::new()).await;
        assert_eq!(reply.status, status, "{method} {path}");
        assert_eq!(
            error_param(&reply.json(), "invalid_request_error", code),
            None,
            "{method} {path}"
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            let allowed = if path == "/v1/transfers" { "POST" } else { "GET" };
            assert_eq!(reply.header("allow"), Some(allowed), "{method} {path}");
        }
    }
}

/// Bearer keys work only where `--allow-bearer-keys` allows them; signed requests work
/// either way.
#[tokio::test]
async fn bearer_keys_only_with_the_flag() {
    for (flags, bearer_status) in
        [(&[][..], StatusCode::UNAUTHORIZED), (&["--allow-bearer-keys"][..], StatusCode::CREATED)]
    {
        let served = serve_tenants(&["acme"], flags).await;
        let bearer = served.api.clone().bearer();
        let (status, body) = bearer.post_json("/v1/accounts", served.auth(), account(1)).await;
        assert_eq!(status, bearer_status, "{flags:?}: {body}");
        let (status, body) = served.api.post_json("/v1/accounts", served.auth(), account(2)).await;
        assert_eq!(status, StatusCode::CREATED, "{flags:?}: signed: {body}");
    }
}

#[tokio::test]
async fn credentials_are_checked_before_path_ids() {
    let served = serve_tenants(&["acme"], &[]).await;
    let reply = served.api.call(Method::GET, "/v1/accounts/not-a-uuid", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_param(&reply.json(), "authentication_error", "invalid_credentials"), None);
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    use std::io::{Read, Write};
    let served = serve_tenants(&["acme"], &["--body-read-timeout-seconds", "1"]).await;
    let mut stream = std::net::TcpStream::connect(served.gateway.addr()).unwrap();
    // Signed over the body it never finishes: the signature is checked once the body is in.
    let auth = support::sign(served.auth(), &Method::POST, "/v1/transfers", b"{").unwrap();
    let head = format!(
        "POST /v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buf).unwrap();
        assert!(read > 0, "connection closed before a response");
        response.extend_from_slice(&buf[..read]);
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn bodies_over_body_bytes_max_are_413() {
    let served = serve_tenants(&["acme"], &["--body-bytes-max", "2048"]).await;
    let (api, auth) = (&served.api, served.auth());
    let small = json!([account(1), account(2)]);
    let (status, body) = api.post_json("/v1/accounts", auth, small).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let large = Value::Array((0..40).map(|n| transfer(200 + n, 1, 2, 1)).collect());
    let size = serde_json::to_vec(&large).expect("json").len();
    assert!(size > 2048, "the body must exceed the limit: {size} bytes");
    let (status, body) = api.post_json("/v1/transfers", auth, large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_param(&body, "invalid_request_error", "body_too_large"), None);
    assert_eq!(balances(&served, auth, 1).await, [0, 0, 0, 0], "nothing was applied");

    // Without a Content-Length the limit holds while the body streams in.
    let chunked = raw_status_line(served.gateway.addr(), auth, &vec![b' '; 4096]).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "a chunked body over the limit: {chunked}");

    let (status, body) = api.post_json("/v1/transfers", auth, transfer(300, 1, 2, 4)).await;
    assert_eq!(status, StatusCode::CREATED, "the gateway still serves: {body}");
}

/// POSTs `body` to `/v1/transfers` over a plain TCP connection with chunked transfer
/// encoding (so no Content-Length), and returns the response's status line.
///
/// The request goes out in one write, and a failed write is not an error: the gateway
/// answers 413 and closes as soon as the limit is crossed, so the end of the request
/// may meet a closed socket (EPIPE) while the answer is already on its way.
async fn raw_status_line(addr: std::net::SocketAddr, auth: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let auth = support::sign(auth, &Method::POST, "/v1/transfers", body).expect("a tenant key");
    let mut request = format!(
        "POST /v1/transfers HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let _sent = stream.write_all(&request).await;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        std::io::Result::Ok(line)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), exchange).await {
        Ok(Ok(line)) => line,
        Ok(Err(error)) => panic!("raw chunked POST: {error}"),
        Err(_) => panic!("raw chunked POST: no status line within 10 s"),
    }
}

#[tokio::test]
async fn operational_endpoints_and_request_ids() {
    let served = serve().await;
    let api = &served.api;

    let reply = api.call(Method::GET, "/livez", &[], Vec::new()).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"status": "live"})));
    let reply = api.call(Method::GET, "/readyz", &[], Vec::new()).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"status": "ready"})));

    let reply = api.call(Method::GET, "/livez", &[("x-request-id", "it-req_42")], Vec::new()).await;
    assert_eq!(reply.header("x-request-id"), Some("it-req_42"), "the client's id is echoed");
    let reply = api.call(Method::GET, "/v2/x", &[("x-request-id", "it-req_43")], Vec::new()).await;
    assert_eq!(reply.header("x-request-id"), Some("it-req_43"), "also on errors");
    let reply = api.call(Method::GET, "/livez", &[], Vec::new()).await;
    let generated = reply.header("x-request-id").expect("a generated request id");
    assert!(generated.starts_with("req_"), "{generated}");
    let reply =
        api.call(Method::GET, "/livez", &[("x-request-id", "not plain!")], Vec::new()).await;
    assert!(reply.header("x-request-id").is_some_and(|id| id.starts_with("req_")), "{reply:?}");

    let reply = api.call(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("protea_http_request_duration_seconds"), "{text}");
    assert!(text.contains("route=\"/livez\""), "requests so far are counted by route: {text}");
}

#[tokio::test]
async fn h2c_with_prior_knowledge_serves_the_api() {
    let served = serve().await;
    let h2 = Api::h2c(served.gateway.addr());
    let reply = h2.call(Method::GET, "/livez", &[], Vec::new()).await;
    assert_eq!((reply.version, reply.status), (Version::HTTP_2, StatusCode::OK));
    let (status, body) = h2.post_json("/v1/accounts", served.auth(), account(1)).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    let (status, body) =
        served.api.get_json(&format!("/v1/accounts/{}", uuid(1)), served.auth()).await;
    assert_eq!(status, StatusCode::OK, "visible over HTTP/1.1 too: {body}");
}

#[tokio::test]
async fn sigterm_while_idle_exits_zero_and_keeps_the_data() {
    let dir = support::data_dir();
    let auth = support::create_tenant(dir.path(), "acme");
    let gateway = Gateway::start(dir.path(), &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let (status, body) = api.post_json("/v1/accounts", &auth, account(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(gateway.pid() > 0);

    let (status, stderr) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; stderr:\n{stderr}");

    let gateway = Gateway::start(dir.path(), &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(1)), &auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_second_gateway_on_the_same_data_dir_refuses_to_start() {
    let served = serve().await;
    let path = served._dir.path().to_str().expect("a UTF-8 temporary path");
    let second = support::run_gateway(&["--data-dir", path, "--listen", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(second.stderr.contains("in use"), "stderr says why: {}", second.stderr);
    let (status, _) =
        served.api.get_json(&format!("/v1/accounts/{}", uuid(1)), served.auth()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the first gateway still serves");
}

#[tokio::test]
async fn invalid_configuration_exits_64_naming_the_key() {
    let dir = support::data_dir();
    let path = dir.path().to_str().expect("a UTF-8 temporary path");
    for (flags, key) in [
        (&["--listen", "127.0.0.1:0", "--threads", "0"][..], "threads"),
        (&["--listen", "nowhere"][..], "listen"),
        (&["--listen", "127.0.0.1:0", "--body-bytes-max", "10"][..], "body-bytes-max"),
    ] {
        let mut args = vec!["--data-dir", path];
        args.extend(flags);
        let finished = support::run_gateway(&args);
        assert_eq!(finished.status.code(), Some(64), "{flags:?}: {finished:?}");
        assert!(
            finished.stderr.contains(key),
            "{flags:?}: stderr names {key}: {}",
            finished.stderr
        );
    }
    let finished = support::run_gateway(&["--no-such-flag"]);
    assert_eq!(finished.status.code(), Some(64), "{finished:?}");
    // Host commands too: PostgreSQL without --keys-secret.
    let finished =
        support::run_gateway(&["tenant", "create", "acme", "--storage", "postgres://h/db"]);
    assert_eq!(finished.status.code(), Some(64), "{finished:?}");
    assert!(finished.stderr.contains("keys-secret"), "{}", finished.stderr);
}
