//! A small in-process fake of Protea's API, with fault switches: just enough for the
//! load tester's workload (accounts, plain, pending, post, void, linked, reads).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How long a `SlowAnswer` waits: far beyond the timeout the tests pass.
pub const SLOW: std::time::Duration = std::time::Duration::from_secs(3);

/// The key the fake accepts.
pub const KEY: &str = "pk_test.secret";

/// How the fake misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Behaves.
    Honest,
    /// Answers `ok` to the nth successful transfer but never stores it.
    DropAcknowledged(u64),
    /// A retried plain transfer is applied again (and answered `exists`).
    DoubleApplyRetries,
    /// A retry with the same fields answers `exists_with_different_fields`.
    RetryConflicts,
    /// Applies the nth successful transfer but answers only after `SLOW` (past the
    /// tester's timeout), so its outcome is unknown to the tester.
    SlowAnswer(u64),
}

#[derive(Debug, Default, Clone, Copy)]
struct Balances {
    limited: bool,
    debits_pending: u64,
    debits_posted: u64,
    credits_pending: u64,
    credits_posted: u64,
}

#[derive(Debug)]
struct Stored {
    sent: Value,
    record: Value,
    pending_open: bool,
}

#[derive(Debug)]
struct Ledger {
    mode: Mode,
    accounts: HashMap<String, Balances>,
    transfers: HashMap<String, Stored>,
    failed: HashMap<String, String>,
    oks: u64,
    /// Answers delayed so far.
    slowed: u64,
    /// Ids the fault switches touched.
    faulted: Vec<String>,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its base URL.
    pub url: String,
    ledger: Arc<Mutex<Ledger>>,
}

impl Fake {
    /// Ids of transfers dropped or applied twice.
    pub fn faulted(&self) -> Vec<String> {
        self.ledger.lock().expect("fake ledger lock").faulted.clone()
    }
}

/// Starts a fake on 127.0.0.1:0.
pub async fn start(mode: Mode) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the fake");
    let address: SocketAddr = listener.local_addr().expect("the fake's address");
    let ledger = Arc::new(Mutex::new(Ledger {
        mode,
        accounts: HashMap::new(),
        transfers: HashMap::new(),
        failed: HashMap::new(),
        oks: 0,
        slowed: 0,
        faulted: Vec::new(),
    }));
    let shared = ledger.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let ledger = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let ledger = ledger.clone();
                    async move { Ok::<_, Infallible>(handle(&ledger, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Fake { url: format!("http://{address}"), ledger }
}

async fn handle(ledger: &Mutex<Ledger>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/livez" {
        return answer(StatusCode::OK, json!({"status": "live"}));
    }
    let authorised = request.headers().get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {KEY}"));
    if !authorised {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": {"code": "invalid_credentials"}}));
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (response, slow) = {
        let mut ledger = ledger.lock().expect("fake ledger lock");
        let slow_before = ledger.slowed;
        let response = route(&mut ledger, &method, &path, &body);
        (response, ledger.slowed != slow_before)
    };
    if slow {
        tokio::time::sleep(SLOW).await;
    }
    response
}

fn route(
    ledger: &mut Ledger,
    method: &hyper::Method,
    path: &str,
    body: &Value,
) -> Response<Full<Bytes>> {
    match (method.as_str(), path) {
        ("POST", "/v1/accounts") => create(body, |event| ledger.create_account(event)),
        ("POST", "/v1/transfers") => create(body, |event| ledger.create_transfer(event)),
        ("GET", p) if p.starts_with("/v1/accounts/") => ledger.account(&p[13..]),
        ("GET", p) if p.starts_with("/v1/transfers/") => ledger.transfer(&p[14..]),
        _ => answer(StatusCode::NOT_FOUND, json!({"error": {"code": "route_not_found"}})),
    }
}

fn create(body: &Value, mut one: impl FnMut(&Value) -> String) -> Response<Full<Bytes>> {
    match body {
        Value::Array(events) => {
            let results: Vec<Value> = events
                .iter()
                .enumerate()
                .map(|(index, event)| json!({"index": index, "id": event["id"], "result": one(event)}))
                .collect();
            answer(StatusCode::OK, json!({ "results": results }))
        }
        event => {
            let result = one(event);
            answer(status_of(&result), json!({"id": event["id"], "result": result}))
        }
    }
}

fn status_of(result: &str) -> StatusCode {
    match result {
        "ok" => StatusCode::CREATED,
        "exists" => StatusCode::OK,
        "exists_with_different_fields" => StatusCode::CONFLICT,
        r if r.ends_with("_not_found") => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn has_flag(event: &Value, flag: &str) -> bool {
    event["flags"].as_array().is_some_and(|flags| flags.iter().any(|f| f == flag))
}

impl Ledger {
    fn create_account(&mut self, event: &Value) -> String {
        let id = text(&event["id"]);
        if self.accounts.contains_key(&id) {
            return "exists".to_owned();
        }
        let limited = has_flag(event, "debits_must_not_exceed_credits");
        self.accounts.insert(id, Balances { limited, ..Balances::default() });
        "ok".to_owned()
    }

    fn create_transfer(&mut self, event: &Value) -> String {
        let id = text(&event["id"]);
        if let Some(stored) = self.transfers.get(&id) {
            return self.existing(&id, stored.sent == *event, event);
        }
        if self.failed.contains_key(&id) {
            return "id_already_failed".into();
        }
        let result = if has_flag(event, "post_pending") || has_flag(event, "void_pending") {
            self.resolve(&id, event)
        } else {
            self.plain(&id, event)
        };
        if result != "ok" {
            self.failed.insert(id, result.clone());
        }
        result
    }

    fn existing(&mut self, id: &str, same: bool, event: &Value) -> String {
        if !same {
            return "exists_with_different_fields".to_owned();
        }
        if self.mode == Mode::RetryConflicts {
            self.faulted.push(id.to_owned());
            return "exists_with_different_fields".to_owned();
        }
        let plain = !has_flag(event, "pending") && event["pending_id"].is_null();
        if self.mode == Mode::DoubleApplyRetries && plain {
            let amount = event["amount"].as_u64().unwrap_or(0);
            self.post(
                &text(&event["debit_account_id"]),
                &text(&event["credit_account_id"]),
                amount,
            );
            self.faulted.push(id.to_owned());
        }
        "exists".to_owned()
    }

    fn plain(&mut self, id: &str, event: &Value) -> String {
        let (debit, credit) = (text(&event["debit_account_id"]), text(&event["credit_account_id"]));
        let amount = event["amount"].as_u64().unwrap_or(0);
        let Some(d) = self.accounts.get(&debit).copied() else {
            return "debit_account_not_found".into();
        };
        if !self.accounts.contains_key(&credit) {
            return "credit_account_not_found".into();
        }
        if d.limited && d.debits_pending + d.debits_posted + amount > d.credits_posted {
            return "exceeds_credits".into();
        }
        if self.drop_this_one(id) {
            return "ok".into();
        }
        let pending = has_flag(event, "pending");
        if pending {
            self.reserve(&debit, &credit, amount);
        } else {
            self.post(&debit, &credit, amount);
        }
        let mut record = event.clone();
        record["timestamp"] = json!(1);
        self.transfers
            .insert(id.to_owned(), Stored { sent: event.clone(), record, pending_open: pending });
        "ok".into()
    }

    fn drop_this_one(&mut self, id: &str) -> bool {
        self.oks += 1;
        if self.mode == Mode::SlowAnswer(self.oks) {
            self.slowed += 1;
            self.faulted.push(id.to_owned());
        }
        let dropped = self.mode == Mode::DropAcknowledged(self.oks);
        if dropped {
            self.faulted.push(id.to_owned());
        }
        dropped
    }

    fn resolve(&mut self, id: &str, event: &Value) -> String {
        let pending_id = text(&event["pending_id"]);
        let Some(pending) = self.transfers.get_mut(&pending_id) else {
            return "pending_transfer_not_found".into();
        };
        if !pending.pending_open {
            return "pending_transfer_already_posted".into();
        }
        pending.pending_open = false;
        let mut record = pending.record.clone();
        let reserved = record["amount"].as_u64().unwrap_or(0);
        let (debit, credit) =
            (text(&record["debit_account_id"]), text(&record["credit_account_id"]));
        self.release(&debit, &credit, reserved);
        let posting = has_flag(event, "post_pending");
        let amount = event["amount"].as_u64().unwrap_or(reserved);
        if posting {
            self.post(&debit, &credit, amount);
        }
        record["id"] = json!(id);
        record["amount"] = json!(amount);
        record["pending_id"] = json!(pending_id);
        record["flags"] = event["flags"].clone();
        self.transfers
            .insert(id.to_owned(), Stored { sent: event.clone(), record, pending_open: false });
        "ok".into()
    }

    fn post(&mut self, debit: &str, credit: &str, amount: u64) {
        self.accounts.entry(debit.to_owned()).or_default().debits_posted += amount;
        self.accounts.entry(credit.to_owned()).or_default().credits_posted += amount;
    }

    fn reserve(&mut self, debit: &str, credit: &str, amount: u64) {
        self.accounts.entry(debit.to_owned()).or_default().debits_pending += amount;
        self.accounts.entry(credit.to_owned()).or_default().credits_pending += amount;
    }

    fn release(&mut self, debit: &str, credit: &str, amount: u64) {
        self.accounts.entry(debit.to_owned()).or_default().debits_pending -= amount;
        self.accounts.entry(credit.to_owned()).or_default().credits_pending -= amount;
    }

    fn account(&self, id: &str) -> Response<Full<Bytes>> {
        let Some(b) = self.accounts.get(id) else {
            return answer(StatusCode::NOT_FOUND, json!({"error": {"code": "account_not_found"}}));
        };
        answer(
            StatusCode::OK,
            json!({"id": id, "ledger": 710, "code": 1, "flags": [],
                "debits_pending": b.debits_pending, "debits_posted": b.debits_posted,
                "credits_pending": b.credits_pending, "credits_posted": b.credits_posted,
                "timestamp": 1}),
        )
    }

    fn transfer(&self, id: &str) -> Response<Full<Bytes>> {
        match self.transfers.get(id) {
            Some(stored) => answer(StatusCode::OK, stored.record.clone()),
            None => answer(StatusCode::NOT_FOUND, json!({"error": {"code": "transfer_not_found"}})),
        }
    }
}
