//! Two gateway processes on one PostgreSQL database, the way a deployment runs several
//! tasks behind a load balancer: both migrate at start (under the advisory lock), both
//! pick up a tenant created afterwards through the CLI, and 16 concurrent clients, split
//! between them, send transfers between a few hot accounts (single transfers, batches of
//! 10, linked chains, chains that fail on purpose, resends of acknowledged ids to either
//! gateway, and the same new id sent to both gateways at once). Then:
//!
//! 1. no response is a 5xx (a deadlock or serialization failure between the processes'
//!    flushes would be one) and every response's status matches its results;
//! 2. an id sent to both gateways at once is applied once: one `ok`, one `exists`;
//! 3. every acknowledged transfer reads back from BOTH gateways with the fields sent;
//! 4. money is conserved and nothing is applied twice or lost: each account's balances
//!    equal both the sum of the acknowledged transfers and the sum of its paged history,
//!    the histories hold exactly the acknowledged transfers, each in its two accounts,
//!    and total debits equal total credits;
//! 5. the database itself (queried directly) holds exactly the acknowledged transfers.
//!
//! The workload, the book of what was acknowledged and the verification are shared with
//! `pg_faults.rs`, whose clients retry on 503 instead of treating it as a failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::pg_cluster::{self, TestDatabase};
use crate::support::{self, Api, Gateway, Rng, SHARED_KEYS, id_of, uuid};

/// The ledger every account and transfer is on.
pub const LEDGER: u64 = 840;
/// The code of every transfer.
pub const CODE: u64 = 7;
/// Hot accounts: every transfer moves money between two of them.
pub const HOT: usize = 4;
/// Concurrent clients, split between the two gateways.
const CLIENTS: u64 = 16;
/// Requests each client sends.
const REQUESTS_PER_CLIENT: usize = 40;
/// Transfers in a plain batch.
const BATCH: usize = 10;
/// Concurrent readers per gateway when every acknowledged transfer is read back.
const READERS: usize = 8;
/// How long a tenant created through the CLI may take to reach a running gateway.
const KEY_PICKUP_TIMEOUT: Duration = Duration::from_secs(10);

const OK: &[&str] = &["ok"];
const EXISTS: &[&str] = &["exists"];
const CHAIN_FAILED: &[&str] = &["linked_event_failed"];
const NOT_FOUND: &[&str] = &["credit_account_not_found"];

/// The id of hot account `index`.
pub fn hot(index: usize) -> u128 {
    (0x4077_u128 << 112) | (index as u128 + 1)
}

/// An account nobody creates: the credit side of chains that fail on purpose.
const MISSING: u128 = (0xDEAD_u128 << 112) | 1;

/// One transfer as sent, with the results its first sending may get.
#[derive(Clone, Debug)]
pub struct Sent {
    id: u128,
    debit: u128,
    credit: u128,
    amount: u64,
    linked: bool,
    allowed: &'static [&'static str],
}

impl Sent {
    /// The transfer's id.
    pub fn id(&self) -> u128 {
        self.id
    }

    fn body(&self) -> Value {
        let flags: &[&str] = if self.linked { &["linked"] } else { &[] };
        json!({
            "id": uuid(self.id),
            "debit_account_id": uuid(self.debit),
            "credit_account_id": uuid(self.credit),
            "amount": self.amount,
            "ledger": LEDGER,
            "code": CODE,
            "flags": flags,
        })
    }

    fn describe(&self) -> String {
        format!(
            "transfer {} (debit {}, credit {}, amount {}, linked {})",
            uuid(self.id),
            uuid(self.debit),
            uuid(self.credit),
            self.amount,
            self.linked
        )
    }

    /// Differences between this transfer and a stored record of it.
    pub fn mismatch(&self, got: &Value) -> Option<String> {
        let flags: Vec<&str> = got["flags"]
            .as_array()
            .map_or(Vec::new(), |f| f.iter().filter_map(Value::as_str).collect());
        let expected_flags: Vec<&str> = if self.linked { vec!["linked"] } else { Vec::new() };
        let same = got.get("id").map(id_of) == Some(self.id)
            && got.get("debit_account_id").map(id_of) == Some(self.debit)
            && got.get("credit_account_id").map(id_of) == Some(self.credit)
            && got["amount"].as_u64() == Some(self.amount)
            && got["ledger"].as_u64() == Some(LEDGER)
            && got["code"].as_u64() == Some(CODE)
            && got.get("pending_id").is_none_or(|p| p.is_null() || id_of(p) == 0)
            && flags == expected_flags;
        (!same).then(|| format!("acknowledged {}, stored {got}", self.describe()))
    }
}

/// One request: a single object, or an array of transfers.
#[derive(Clone, Debug)]
pub struct Request {
    events: Vec<Sent>,
    array: bool,
    /// A resend of acknowledged transfers: every result must be `exists`.
    pub resend: bool,
}

impl Request {
    /// The JSON body.
    pub fn body(&self) -> Value {
        match (self.array, self.events.as_slice()) {
            (false, [only]) => only.body(),
            _ => Value::Array(self.events.iter().map(Sent::body).collect()),
        }
    }
}

/// What the clients know: acknowledged transfers, rejections, lost answers, and every
/// answer that was not a definitive one.
#[derive(Default)]
pub struct Book {
    /// Transfers answered `ok` or `exists`, by id.
    pub acknowledged: BTreeMap<u128, Sent>,
    /// Ids whose transfer was rejected.
    pub rejected: HashSet<u128>,
    /// Acknowledged, unlinked transfers: safe to resend alone.
    resendable: Vec<Sent>,
    /// Requests that never got a definitive answer.
    pub unknown: Vec<Request>,
    /// How many events got each result.
    pub results: BTreeMap<String, usize>,
    /// Answers that were not definitive (5xx, connection errors), by kind.
    pub not_definitive: BTreeMap<String, usize>,
    /// Requests answered only on a retry.
    pub answered_on_retry: usize,
    /// Same-id races between the two gateways, and who won them.
    pub races: BTreeMap<String, usize>,
    /// Descriptions of responses the test considers failures (logged at the end).
    pub problems: Vec<String>,
}

impl Book {
    fn acknowledge(&mut self, sent: &Sent) {
        if self.acknowledged.insert(sent.id, sent.clone()).is_none() && !sent.linked {
            self.resendable.push(sent.clone());
        }
    }
}

/// Locks the book (a client task that panicked while holding it fails the test anyway).
pub fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a client sends next.
pub enum Next {
    /// A request to one gateway.
    Send(Request),
    /// One new transfer sent to every gateway at once.
    Race(Sent),
}

/// Seeded request generator of one client task.
pub struct Generator {
    /// The client's random numbers.
    pub rng: Rng,
    next_id: u128,
    /// Whether to send the same new id to every gateway at once (needs two).
    races: bool,
}

impl Generator {
    /// The generator of client `client` of test `test` (ids never collide across either).
    pub fn new(seed: u64, test: u64, client: u64, races: bool) -> Self {
        let next_id = (0xB0B0_u128 << 112) | (u128::from(test) << 96) | (u128::from(client) << 64);
        Self { rng: Rng::new(seed ^ (client.wrapping_mul(0x9E37_79B9))), next_id, races }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    fn transfer(&mut self, linked: bool) -> Sent {
        let debit = self.rng.index(HOT);
        let credit = (debit + 1 + self.rng.index(HOT - 1)) % HOT;
        let amount = self.rng.range(1, 1000);
        Sent { id: self.id(), debit: hot(debit), credit: hot(credit), amount, linked, allowed: OK }
    }

    /// A chain that fails on purpose: a good linked transfer, then one to an account
    /// that does not exist.
    fn failing_chain(&mut self) -> [Sent; 2] {
        let mut first = self.transfer(true);
        first.allowed = CHAIN_FAILED;
        let mut second = self.transfer(false);
        second.credit = MISSING;
        second.allowed = NOT_FOUND;
        [first, second]
    }

    /// The next request.
    pub fn next(&mut self, book: &Mutex<Book>) -> Next {
        let single = |this: &mut Self| {
            Next::Send(Request { events: vec![this.transfer(false)], array: false, resend: false })
        };
        match self.rng.range(0, 99) {
            0..=29 => single(self),
            30..=59 => {
                let events = (0..BATCH).map(|_| self.transfer(false)).collect();
                Next::Send(Request { events, array: true, resend: false })
            }
            60..=74 => {
                // A plain transfer, a chain of three, a plain transfer.
                let mut events = vec![self.transfer(false)];
                events.extend([self.transfer(true), self.transfer(true), self.transfer(false)]);
                events.push(self.transfer(false));
                Next::Send(Request { events, array: true, resend: false })
            }
            75..=79 => {
                let mut events = self.failing_chain().to_vec();
                events.push(self.transfer(false));
                Next::Send(Request { events, array: true, resend: false })
            }
            80..=89 => self.resend(book).map_or_else(|| single(self), Next::Send),
            _ if self.races => Next::Race(self.transfer(false)),
            _ => single(self),
        }
    }

    fn resend(&mut self, book: &Mutex<Book>) -> Option<Request> {
        let book = lock(book);
        if book.resendable.is_empty() {
            return None;
        }
        let count = self.rng.range(1, 3);
        let events: Vec<Sent> = (0..count)
            .map(|_| {
                let mut sent = book.resendable[self.rng.index(book.resendable.len())].clone();
                sent.allowed = EXISTS;
                sent
            })
            .collect();
        Some(Request { array: count > 1 || self.rng.chance(50), events, resend: true })
    }
}

fn succeeded(result: &str) -> bool {
    result == "ok" || result == "exists"
}

/// Books a definitive (non-5xx) answer to `request`; `retry` when an earlier sending of
/// the same request got no definitive answer (it may have been applied). Panics when an
/// answer breaks a rule of the module doc.
pub fn book_answer(
    book: &Mutex<Book>,
    request: &Request,
    status: StatusCode,
    body: &Value,
    retry: bool,
) {
    let results: Vec<(String, Option<String>)> = if request.array {
        assert_eq!(status, StatusCode::OK, "array create answers 200: {body}");
        let items = body["results"].as_array().unwrap_or_else(|| panic!("no results: {body}"));
        assert_eq!(items.len(), request.events.len(), "one result per event: {body}");
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                assert_eq!(item["index"].as_u64(), Some(index as u64), "{body}");
                assert_eq!(id_of(&item["id"]), request.events[index].id, "{body}");
                let result = item["result"].as_str().unwrap_or_else(|| panic!("no result: {body}"));
                let original =
                    item.get("original_result").and_then(Value::as_str).map(str::to_owned);
                (result.to_owned(), original)
            })
            .collect()
    } else {
        assert_eq!(id_of(&body["id"]), request.events[0].id, "{body}");
        let result = body["result"].as_str().unwrap_or_else(|| panic!("no result: {body}"));
        assert_eq!(status, support::status_of(result), "status of {body}");
        let original = body.get("original_result").and_then(Value::as_str).map(str::to_owned);
        vec![(result.to_owned(), original)]
    };
    // Linked chains succeed or fail whole.
    let mut chain = Vec::new();
    for (sent, (result, _)) in request.events.iter().zip(&results) {
        chain.push(succeeded(result));
        if !sent.linked {
            assert!(chain.iter().all(|s| *s) || chain.iter().all(|s| !*s), "torn chain: {body}");
            chain.clear();
        }
    }
    let mut book = lock(book);
    if retry {
        book.answered_on_retry += 1;
    }
    for (sent, (result, original)) in request.events.iter().zip(&results) {
        let result = result.as_str();
        assert_ne!(result, "exists_with_different_fields", "{}: {body}", sent.describe());
        let allowed = sent.allowed.contains(&result)
            || (retry && !request.resend && (result == "exists" || result == "id_already_failed"));
        assert!(
            allowed,
            "{} may answer {:?}{}, not {result}: {body}",
            sent.describe(),
            sent.allowed,
            if retry { " (or, on a retry, exists / id_already_failed)" } else { "" }
        );
        if result == "id_already_failed" {
            let original =
                original.as_deref().unwrap_or_else(|| panic!("no original_result: {body}"));
            assert!(sent.allowed.contains(&original) && !succeeded(original), "{body}");
        }
        if succeeded(result) {
            assert!(!book.rejected.contains(&sent.id), "rejected, then {result}: {body}");
            book.acknowledge(sent);
        } else {
            assert!(
                !book.acknowledged.contains_key(&sent.id),
                "acknowledged, then {result}: {body}"
            );
            book.rejected.insert(sent.id);
        }
        *book.results.entry(result.to_owned()).or_default() += 1;
    }
}

/// Sends `sent` to every gateway at once: exactly one may apply it (`ok`), the others
/// must find it (`exists`).
async fn race(apis: &[Api], auth: &str, sent: &Sent, book: &Mutex<Book>) {
    let body = sent.body();
    let answers =
        futures_join_all(apis.iter().map(|api| api.try_post_json("/v1/transfers", auth, &body)))
            .await;
    let mut results = Vec::new();
    for (gateway, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok((status, body)) if !status.is_server_error() => {
                let result = body["result"].as_str().unwrap_or("<none>").to_owned();
                assert_eq!(
                    status,
                    support::status_of(&result),
                    "race to gateway {gateway}: {body}"
                );
                results.push(result);
            }
            Ok((status, body)) => {
                lock(book).problems.push(format!("race to gateway {gateway}: {status} {body}"));
                return;
            }
            Err(error) => {
                lock(book).problems.push(format!("race to gateway {gateway}: {error}"));
                return;
            }
        }
    }
    let ok = results.iter().filter(|r| *r == "ok").count();
    let exists = results.iter().filter(|r| *r == "exists").count();
    assert!(
        ok == 1 && exists == apis.len() - 1,
        "{} sent to {} gateways at once answered {results:?}: it must be applied exactly once",
        sent.describe(),
        apis.len()
    );
    let mut book = lock(book);
    book.acknowledge(sent);
    *book.results.entry("ok".to_owned()).or_default() += 1;
    *book.results.entry("exists".to_owned()).or_default() += apis.len() - 1;
    *book.races.entry(format!("{results:?}")).or_default() += 1;
}

/// Awaits every future, concurrently, in order (no `futures` crate here).
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// A client that treats every non-definitive answer as a failure (logged in
/// `book.problems`; the request is kept as unknown).
async fn strict_client(
    apis: Vec<Api>,
    home: usize,
    auth: String,
    book: Arc<Mutex<Book>>,
    mut generator: Generator,
) {
    for _ in 0..REQUESTS_PER_CLIENT {
        let request = match generator.next(&book) {
            Next::Race(sent) => {
                race(&apis, &auth, &sent, &book).await;
                continue;
            }
            Next::Send(request) => request,
        };
        let gateway = if request.resend { generator.rng.index(apis.len()) } else { home };
        match apis[gateway].try_post_json("/v1/transfers", &auth, &request.body()).await {
            Ok((status, body)) if !status.is_server_error() => {
                book_answer(&book, &request, status, &body, false);
            }
            Ok((status, body)) => {
                let mut book = lock(&book);
                book.problems
                    .push(format!("gateway {gateway}: {status} {body} for {}", request.body()));
                book.unknown.push(request);
            }
            Err(error) => {
                let mut book = lock(&book);
                book.problems.push(format!("gateway {gateway}: {error}"));
                book.unknown.push(request);
            }
        }
    }
}

/// Sends `request` until it gets a definitive answer: a 5xx or a failed connection is
/// retried with the same ids, `attempts` times at most, with back-off (100 ms doubling
/// to 1 s). Returns whether it got one; when not, the request is booked as unknown.
pub async fn send_retrying(
    api: &Api,
    auth: &str,
    book: &Mutex<Book>,
    request: Request,
    retried_before: bool,
    attempts: u32,
) -> bool {
    let body = request.body();
    for attempt in 0..attempts {
        let kind = match api.try_post_json("/v1/transfers", auth, &body).await {
            Ok((status, reply)) if !status.is_server_error() => {
                book_answer(book, &request, status, &reply, retried_before || attempt > 0);
                return true;
            }
            Ok((status, reply)) => {
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    lock(book).problems.push(format!("{status} {reply} for {body}"));
                }
                let code = reply["error"]["code"].as_str().unwrap_or("?").to_owned();
                format!("{} {code}", status.as_u16())
            }
            Err(error) => {
                if error.contains("no response within") || error.contains("not received within") {
                    "timeout".to_owned()
                } else {
                    "connection error".to_owned()
                }
            }
        };
        *lock(book).not_definitive.entry(kind).or_default() += 1;
        let backoff = Duration::from_millis(100 << attempt.min(4)).min(Duration::from_secs(1));
        tokio::time::sleep(backoff).await;
    }
    lock(book).unknown.push(request);
    false
}

/// Sends every request whose answer was never definitive again, until each gets one
/// (at most `attempts` tries each); panics when one still does not.
pub async fn resolve_unknown(api: &Api, auth: &str, book: &Mutex<Book>, attempts: u32) -> usize {
    let unknown = std::mem::take(&mut lock(book).unknown);
    let count = unknown.len();
    for request in unknown {
        let described = request.body();
        assert!(
            send_retrying(api, auth, book, request, true, attempts).await,
            "no definitive answer after {attempts} more tries: {described}"
        );
    }
    count
}

/// Creates the hot accounts through `api`.
pub async fn create_accounts(api: &Api, auth: &str) {
    let accounts: Vec<Value> =
        (0..HOT).map(|i| json!({"id": uuid(hot(i)), "ledger": LEDGER, "code": 1})).collect();
    let (status, body) = api.post_json("/v1/accounts", auth, Value::Array(accounts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["results"].as_array().is_some_and(|r| r.iter().all(|r| r["result"] == "ok")),
        "{body}"
    );
}

/// Creates tenant `name` through the CLI on `url` (plus `extra` storage flags) and
/// returns its credential (see [`support::create_tenant`]).
pub fn create_tenant(url: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["--storage", url];
    args.extend_from_slice(&support::SHARED_KEYS);
    args.extend_from_slice(extra);
    support::create_tenant_with(name, &args)
}

/// What a verification covered.
pub struct Verified {
    /// Acknowledged transfers, each checked by GET on every gateway and in the histories.
    pub acknowledged: usize,
    /// Rejected transfers (none of them stored).
    pub rejected: usize,
    /// Total posted debits (= credits) over the hot accounts.
    pub posted: u64,
}

/// Checks the module doc's points 3-5 through every gateway in `apis` and in the
/// database through `db`. Every request must have had a definitive answer.
pub async fn verify(apis: &[Api], auth: &str, book: &Mutex<Book>, db: &Client) -> Verified {
    let (acknowledged, rejected) = {
        let book = lock(book);
        assert!(
            book.unknown.is_empty(),
            "{} requests never got a definitive answer",
            book.unknown.len()
        );
        (book.acknowledged.clone(), book.rejected.clone())
    };
    // Balances: the same from every gateway, and what the acknowledged transfers add up to.
    let mut expected: HashMap<u128, [u64; 2]> = (0..HOT).map(|i| (hot(i), [0, 0])).collect();
    for sent in acknowledged.values() {
        expected.get_mut(&sent.debit).expect("a hot account")[0] += sent.amount;
        expected.get_mut(&sent.credit).expect("a hot account")[1] += sent.amount;
    }
    let mut balances: HashMap<u128, [u64; 2]> = HashMap::new();
    for index in 0..HOT {
        let id = hot(index);
        let path = format!("/v1/accounts/{}", uuid(id));
        let mut first: Option<Value> = None;
        for (gateway, api) in apis.iter().enumerate() {
            let (status, body) = api.get_json(&path, auth).await;
            assert_eq!(status, StatusCode::OK, "gateway {gateway} {path}: {body}");
            assert_eq!(body["debits_pending"], 0, "{body}");
            assert_eq!(body["credits_pending"], 0, "{body}");
            match &first {
                None => first = Some(body),
                Some(first) => assert_eq!(first, &body, "gateways disagree on account {index}"),
            }
        }
        let body = first.expect("at least one gateway");
        let posted =
            ["debits_posted", "credits_posted"].map(|f| body[f].as_u64().expect("balance"));
        assert_eq!(
            posted, expected[&id],
            "account {index}: [debits_posted, credits_posted] vs the acknowledged transfers (a \
             difference means one was lost or applied twice)"
        );
        balances.insert(id, posted);
    }
    let debits: u64 = balances.values().map(|b| b[0]).sum();
    let credits: u64 = balances.values().map(|b| b[1]).sum();
    assert_eq!(debits, credits, "posted debits equal posted credits over all accounts");

    // Histories: each acknowledged transfer once in each of its two accounts, nothing else.
    let mut stored: HashMap<u128, Value> = HashMap::new();
    let mut appearances: HashMap<u128, usize> = HashMap::new();
    for index in 0..HOT {
        let id = hot(index);
        let transfers = support::history(&apis[index % apis.len()], auth, id, 1000).await;
        let mut sums = [0u64; 2];
        for transfer in &transfers {
            let transfer_id = id_of(&transfer["id"]);
            *appearances.entry(transfer_id).or_default() += 1;
            let first = stored.entry(transfer_id).or_insert_with(|| transfer.clone());
            assert_eq!(first, transfer, "one transfer, two different records");
            let amount = transfer["amount"].as_u64().expect("amount");
            if id_of(&transfer["debit_account_id"]) == id {
                sums[0] += amount;
            } else {
                assert_eq!(
                    id_of(&transfer["credit_account_id"]),
                    id,
                    "account {index}'s history holds {transfer}"
                );
                sums[1] += amount;
            }
        }
        assert_eq!(balances[&id], sums, "account {index}: balances vs the sums of its history");
    }
    for (transfer_id, count) in &appearances {
        assert_eq!(
            *count,
            2,
            "transfer {} appears {count} times in the histories",
            uuid(*transfer_id)
        );
        assert!(
            !rejected.contains(transfer_id),
            "rejected transfer {} was applied",
            uuid(*transfer_id)
        );
        assert!(
            acknowledged.contains_key(transfer_id),
            "transfer {} stored but never acknowledged",
            uuid(*transfer_id)
        );
    }
    for (id, sent) in &acknowledged {
        let got = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged, then lost: {}", sent.describe()));
        if let Some(problem) = sent.mismatch(got) {
            panic!("{problem}");
        }
    }

    // Every acknowledged transfer by GET, from every gateway.
    for (gateway, api) in apis.iter().enumerate() {
        for (id, status, body) in
            support::get_transfers(api, auth, acknowledged.keys().copied().collect(), READERS).await
        {
            assert_eq!(
                status,
                StatusCode::OK,
                "gateway {gateway}: GET acknowledged transfer {}: {body}",
                uuid(id)
            );
            if let Some(problem) = acknowledged[&id].mismatch(&body) {
                panic!("gateway {gateway}: {problem}");
            }
            assert_eq!(Some(&body), stored.get(&id), "gateway {gateway}: GET and history disagree");
        }
    }

    // The database itself.
    let rows = db.query("SELECT id FROM transfers", &[]).await.expect("reading transfers");
    let in_db: HashSet<u128> =
        rows.iter().map(|row| row.get::<_, uuid::Uuid>(0).as_u128()).collect();
    assert_eq!(in_db.len(), rows.len(), "a transfer id stored twice");
    let acknowledged_ids: HashSet<u128> = acknowledged.keys().copied().collect();
    let missing: Vec<String> =
        acknowledged_ids.difference(&in_db).take(5).map(|id| uuid(*id)).collect();
    let extra: Vec<String> =
        in_db.difference(&acknowledged_ids).take(5).map(|id| uuid(*id)).collect();
    assert_eq!(
        rows.len(),
        acknowledged.len(),
        "count(*) of transfers vs acknowledged; missing e.g. {missing:?}, \
         unacknowledged e.g. {extra:?}"
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unacknowledged {extra:?}"
    );
    let row = db
        .query_one(
            "SELECT coalesce(sum(debits_posted), 0)::bigint, \
             coalesce(sum(credits_posted), 0)::bigint, \
             coalesce(sum(debits_pending + credits_pending), 0)::bigint FROM accounts",
            &[],
        )
        .await
        .expect("summing balances");
    let sums: [i64; 3] = [row.get(0), row.get(1), row.get(2)];
    let total = i64::try_from(debits).expect("fits bigint");
    assert_eq!(sums, [total, total, 0], "the database's balance sums vs the API's");
    Verified { acknowledged: acknowledged.len(), rejected: rejected.len(), posted: debits }
}

/// Polls an authenticated read on `api` until the tenant's key works there.
pub async fn wait_for_key(api: &Api, auth: &str) {
    let deadline = Instant::now() + KEY_PICKUP_TIMEOUT;
    let path = format!("/v1/accounts/{}", uuid(hot(0)));
    loop {
        let (status, body) = api.get_json(&path, auth).await;
        if status == StatusCode::NOT_FOUND {
            return;
        }
        assert!(
            status == StatusCode::UNAUTHORIZED && Instant::now() < deadline,
            "a tenant created through the CLI did not reach the running gateway within \
             {KEY_PICKUP_TIMEOUT:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_gateways_on_one_database_apply_each_transfer_once() {
    let started = Instant::now();
    let seed = support::seed();
    let db = TestDatabase::create().await;
    let url = db.gateway_url();
    // Both start on an empty database and migrate it concurrently.
    let dirs = [support::data_dir(), support::data_dir()];
    let gateways: Vec<Gateway> = std::thread::scope(|scope| {
        let starting: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let url = url.clone();
                scope.spawn(move || {
                    Gateway::start(dir.path(), &["--storage", &url, SHARED_KEYS[0], SHARED_KEYS[1]])
                })
            })
            .collect();
        starting
            .into_iter()
            .map(|s| s.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let apis: Vec<Api> = gateways.iter().map(|g| Api::http1(g.addr())).collect();
    for api in &apis {
        api.wait_ready().await;
    }
    let auth = create_tenant(&url, "multi", &[]);
    for api in &apis {
        wait_for_key(api, &auth).await;
    }
    create_accounts(&apis[1], &auth).await;
    println!(
        "multi-process: seed {seed}, {CLIENTS} clients on 2 gateways (2 cores each), \
         {HOT} hot accounts"
    );

    let book = Arc::new(Mutex::new(Book::default()));
    let load_started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let generator = Generator::new(seed, 1, client, true);
            let home = usize::try_from(client % 2).expect("0 or 1");
            tokio::spawn(strict_client(apis.clone(), home, auth.clone(), book.clone(), generator))
        })
        .collect();
    for client in clients {
        client.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    let load_elapsed = load_started.elapsed();
    {
        let book = lock(&book);
        for problem in &book.problems {
            println!("non-definitive answer: {problem}");
        }
        assert!(
            book.problems.is_empty(),
            "{} requests got a 5xx or no answer (see above)",
            book.problems.len()
        );
        println!(
            "load: {} requests in {load_elapsed:?}; results {:?}; races {:?}",
            CLIENTS as usize * REQUESTS_PER_CLIENT,
            book.results,
            book.races
        );
    }
    let client = pg_cluster::connect(&db.conninfo()).await;
    let verified = verify(&apis, &auth, &book, &client).await;
    println!(
        "verified {} acknowledged transfers on both gateways and in the database, {} rejected \
         ones absent, {} posted; {:?} in all",
        verified.acknowledged,
        verified.rejected,
        verified.posted,
        started.elapsed()
    );
    drop(client);
    for gateway in gateways {
        let (status, stderr) = gateway.terminate();
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0; stderr:\n{stderr}");
    }
    db.drop_now().await;
}
