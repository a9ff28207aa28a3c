//! A small in-process fake of Protea's API, with fault switches: just enough for the
//! load tester's workload (accounts, plain, pending, post, void, linked, reads).
//!
//! It authenticates like the gateway: signed requests are verified with
//! `crypto::signature::verify` against the tenant's secret (within a replay window of
//! `WINDOW_SECONDS`, far tighter than the gateway's, so a signature must be fresh), and
//! bearer keys are accepted only when [`Options::bearer`] is set (the gateway's
//! `--allow-bearer-keys`). It serves HTTP/1.1 and HTTP/2 (by preface), over TLS when
//! [`Options::tls`] is given, and records every request and TLS handshake it sees.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use crypto::signature::{
    ActiveKeys, RequestParts, SigningKey, body_digest, parse_authorization, verify,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long a `SlowAnswer` waits: far beyond the timeout the tests pass.
pub const SLOW: std::time::Duration = std::time::Duration::from_secs(3);

/// The tenant's credential, `KEYID.SECRET` as `gateway tenant create` prints its parts.
pub const KEY: &str =
    "pk_0123456789abcdef.6c6f6164746573742d7365637265742d6f662d7468652d66616b652d74656e616e";

/// The replay window the fake allows, in seconds either way.
pub const WINDOW_SECONDS: u64 = 5;

fn key_id() -> &'static str {
    KEY.split_once('.').map_or(KEY, |(id, _)| id)
}

fn secret() -> &'static str {
    KEY.split_once('.').map_or("", |(_, secret)| secret)
}

/// How the fake misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Behaves.
    #[default]
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

/// How the fake is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Its fault switch.
    pub mode: Mode,
    /// Also accept `Authorization: Bearer KEYID.SECRET` (the gateway's
    /// `--allow-bearer-keys`); signed requests are always accepted.
    pub bearer: bool,
    /// Serve HTTPS with this configuration (its ALPN and client-certificate policy).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How a request authenticated, as the fake judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// The bearer key, accepted.
    Bearer,
    /// A signature that verified; `skew` is how far its timestamp was from the fake's
    /// clock, in seconds.
    Signed {
        /// |now - timestamp|.
        skew: u64,
    },
    /// Refused (401), with the reason: a `SignatureError` code, `bearer` or `key_id`.
    Refused(String),
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query as received.
    pub target: String,
    /// HTTP version it came in.
    pub version: Version,
    /// How it authenticated.
    pub auth: Auth,
}

/// One TLS connection the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The ALPN protocol agreed.
    pub alpn: Option<Vec<u8>>,
    /// Whether the client presented a certificate (verified against the CA).
    pub client_certificate: bool,
}

#[derive(Debug, Default)]
struct Log {
    seen: Vec<Seen>,
    handshakes: Vec<Handshake>,
    failed_handshakes: usize,
}

struct State {
    ledger: Mutex<Ledger>,
    log: Mutex<Log>,
    bearer: bool,
    acceptor: Option<TlsAcceptor>,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its base URL (`http://` or `https://127.0.0.1:PORT`).
    pub url: String,
    state: Arc<State>,
}

impl Fake {
    /// Ids of transfers dropped or applied twice.
    pub fn faulted(&self) -> Vec<String> {
        self.state.ledger.lock().expect("fake ledger lock").faulted.clone()
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.log.lock().expect("fake log lock").seen.clone()
    }

    /// Every TLS handshake that succeeded so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.state.log.lock().expect("fake log lock").handshakes.clone()
    }

    /// TLS handshakes that failed (for example, no client certificate where one is
    /// required).
    pub fn failed_handshakes(&self) -> usize {
        self.state.log.lock().expect("fake log lock").failed_handshakes
    }
}

/// Starts an honest or faulty fake on 127.0.0.1:0, plain HTTP, signed requests only.
pub async fn start(mode: Mode) -> Fake {
    start_with(Options { mode, ..Options::default() }).await
}

/// Starts a fake on 127.0.0.1:0.
pub async fn start_with(options: Options) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the fake");
    let address: SocketAddr = listener.local_addr().expect("the fake's address");
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let state = Arc::new(State {
        ledger: Mutex::new(Ledger::new(options.mode)),
        log: Mutex::new(Log::default()),
        bearer: options.bearer,
        acceptor: options.tls.map(TlsAcceptor::from),
    });
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(serve(shared.clone(), stream));
        }
    });
    Fake { url: format!("{scheme}://{address}"), state }
}

/// One connection: the TLS handshake if configured (recorded), then HTTP/1.1 or HTTP/2.
async fn serve(state: Arc<State>, tcp: TcpStream) {
    let Some(acceptor) = state.acceptor.clone() else {
        return serve_http(state, tcp).await;
    };
    let Ok(stream) = acceptor.accept(tcp).await else {
        state.log.lock().expect("fake log lock").failed_handshakes += 1;
        return;
    };
    let connection = stream.get_ref().1;
    let handshake = Handshake {
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        client_certificate: connection.peer_certificates().is_some_and(|c| !c.is_empty()),
    };
    state.log.lock().expect("fake log lock").handshakes.push(handshake);
    serve_http(state, stream).await;
}

async fn serve_http(state: Arc<State>, io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, request).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let auth = authenticate(&parts, &body, state.bearer);
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        version: parts.version,
        auth: auth.clone(),
    };
    state.log.lock().expect("fake log lock").seen.push(seen);
    let path = parts.uri.path();
    if path == "/livez" {
        return answer(StatusCode::OK, json!({"status": "live"}));
    }
    if !matches!(auth, Auth::Bearer | Auth::Signed { .. }) {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": {"code": "invalid_credentials"}}));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (response, slow) = {
        let mut ledger = state.ledger.lock().expect("fake ledger lock");
        let slow_before = ledger.slowed;
        let response = route(&mut ledger, &parts.method, path, &body);
        (response, ledger.slowed != slow_before)
    };
    if slow {
        tokio::time::sleep(SLOW).await;
    }
    response
}

/// Judges the `Authorization` header as the gateway would.
fn authenticate(parts: &http::request::Parts, body: &[u8], bearer: bool) -> Auth {
    let refused = |reason: &str| Auth::Refused(reason.to_owned());
    let Some(value) = parts.headers.get("authorization") else { return Auth::Anonymous };
    let Ok(value) = value.to_str() else { return refused("header") };
    if let Some(key) = value.strip_prefix("Bearer ") {
        return if bearer && key == KEY { Auth::Bearer } else { refused("bearer") };
    }
    let header = match parse_authorization(value) {
        Ok(header) => header,
        Err(error) => return refused(error.code()),
    };
    if header.key_id != key_id() {
        return refused("key_id");
    }
    let key = SigningKey::new(secret().as_bytes()).expect("the fake's secret is long enough");
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        body_sha256: &body_digest(body),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    match verify(&ActiveKeys::single(key), &header, &request, now, WINDOW_SECONDS) {
        Ok(()) => Auth::Signed { skew: now.abs_diff(header.timestamp) },
        Err(error) => refused(error.code()),
    }
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
        ("GET", p) if p.starts_with("/v1/accounts/") && p.ends_with("/transfers") => {
            answer(StatusCode::OK, json!({"transfers": [], "next": null}))
        }
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
    fn new(mode: Mode) -> Ledger {
        Ledger {
            mode,
            accounts: HashMap::new(),
            transfers: HashMap::new(),
            failed: HashMap::new(),
            oks: 0,
            slowed: 0,
            faulted: Vec::new(),
        }
    }

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
