//! Durability under `kill -9`, the way a payment network sees it: concurrent clients send
//! a seeded mix of transfers (single, batches of 5-20, linked pairs, pending then
//! post/void, retries of acknowledged ids); after a seeded number of answered requests
//! the gateway is SIGKILLed mid-load, restarted on the same data directory, and checked:
//!
//! 1. every acknowledged transfer (2xx with `ok` or `exists`) reads back, by GET and in
//!    both accounts' histories, with the id, accounts, amount, ledger, code and flags
//!    that were sent (for a post of a pending transfer: the pending one's accounts, and its
//!    amount when the post named none);
//! 2. money is conserved: total debits equal total credits, pending and posted;
//! 3. nothing was applied twice, nor anything rejected applied: each account's balances
//!    equal what its full history adds up to, each transfer appears once per account, and
//!    no rejected id appears at all;
//! 4. retrying every request whose answer was lost gives `ok`, `exists` or
//!    `id_already_failed` (or a fresh rejection of a transfer that never applied), never
//!    `exists_with_different_fields`.
//!
//! Four kill/restart rounds run in one test; acknowledged transfers accumulate and all of
//! them are checked again after every restart. Set `PROTEA_TEST_SEED` to replay another
//! mix; the seed is printed with a summary of each round.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{self, Api, Gateway, Rng, id_of, uuid};

const LEDGER: u64 = 840;
const CODE: u64 = 7;
/// Accounts in the test's ledger; index 0 is the unlimited funding account.
const ACCOUNTS: usize = 20;
/// Accounts `1..=LIMITED` have `debits_must_not_exceed_credits`.
const LIMITED: usize = 8;
/// What each limited account receives before the load starts.
const FUNDING: u64 = 20_000;
/// Concurrent client tasks.
const CLIENTS: u64 = 8;
/// Kill/restart rounds.
const KILLS: u64 = 4;
/// The gateway is killed after this many answered requests in a round (seeded).
const KILL_AFTER: (u64, u64) = (150, 600);
/// How long a round's load may take to reach its kill point.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent readers verifying transfers by GET.
const READERS: usize = 8;

const OK: &[&str] = &["ok"];
const OK_OR_EXCEEDS: &[&str] = &["ok", "exceeds_credits"];
const LINKED: &[&str] = &["ok", "linked_event_failed"];
const LINKED_OR_EXCEEDS: &[&str] = &["ok", "linked_event_failed", "exceeds_credits"];
const EXISTS: &[&str] = &["exists"];

fn account_id(index: usize) -> u128 {
    (0xACC0_u128 << 112) | (index as u128 + 1)
}

fn is_limited(index: usize) -> bool {
    (1..=LIMITED).contains(&index)
}

/// What the ledger must hold for a transfer (ledger and code are always `LEDGER`, `CODE`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expected {
    id: u128,
    debit: u128,
    credit: u128,
    amount: u64,
    pending_id: u128,
    flags: Vec<&'static str>,
}

impl Expected {
    fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    fn describe(&self) -> String {
        format!(
            "transfer {} (debit {}, credit {}, amount {}, pending_id {}, flags {:?})",
            uuid(self.id),
            uuid(self.debit),
            uuid(self.credit),
            self.amount,
            uuid(self.pending_id),
            self.flags
        )
    }
}

/// One transfer as sent.
#[derive(Clone, Debug)]
struct Sent {
    body: Value,
    expected: Expected,
    /// The results it may get when first sent.
    allowed: &'static [&'static str],
}

/// One request: a single object, or an array.
#[derive(Clone, Debug)]
struct Request {
    events: Vec<Sent>,
    array: bool,
    /// A resend of acknowledged transfers: every result must be `exists`.
    resend: bool,
}

impl Request {
    fn single(sent: Sent) -> Self {
        Self { events: vec![sent], array: false, resend: false }
    }

    fn body(&self) -> Value {
        match (self.array, self.events.as_slice()) {
            (false, [only]) => only.body.clone(),
            _ => Value::Array(self.events.iter().map(|s| s.body.clone()).collect()),
        }
    }
}

/// What the clients know: acknowledged transfers, lost answers, rejections.
#[derive(Default)]
struct Book {
    acknowledged: BTreeMap<u128, Expected>,
    /// Acknowledged, unlinked transfers: safe to resend alone.
    resendable: Vec<Sent>,
    /// Acknowledged pending transfers no post or void was sent for yet.
    pendings: Vec<Expected>,
    /// Requests that got no answer.
    unknown: Vec<Request>,
    /// Ids whose transfer was rejected.
    rejected: HashSet<u128>,
}

impl Book {
    fn acknowledge(&mut self, sent: &Sent) {
        let expected = &sent.expected;
        if self.acknowledged.insert(expected.id, expected.clone()).is_some() {
            return;
        }
        if !expected.has("linked") {
            self.resendable.push(sent.clone());
        }
        if expected.has("pending") {
            self.pendings.push(expected.clone());
        }
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().expect("a client task panicked while holding the book")
}

/// A round's progress towards its kill point.
struct Progress {
    stop: AtomicBool,
    /// Requests that got a definitive answer (2xx or 4xx).
    answered: AtomicUsize,
    target: usize,
    /// Woken when `target` is reached or a client task ends (e.g. by panicking).
    wake: Notify,
}

/// Wakes the round's driver when a client task ends, however it ends.
struct WakeOnExit(Arc<Progress>);

impl Drop for WakeOnExit {
    fn drop(&mut self) {
        self.0.wake.notify_one();
    }
}

/// Seeded request generator of one client task.
struct Generator {
    rng: Rng,
    next_id: u128,
}

impl Generator {
    fn new(rng: Rng, round: u64, client: u64) -> Self {
        let next_id = (0xC0DE_u128 << 112) | (u128::from(round) << 80) | (u128::from(client) << 64);
        Self { rng, next_id }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    fn two_accounts(&mut self) -> (usize, usize) {
        let debit = self.rng.index(ACCOUNTS);
        let credit = (debit + 1 + self.rng.index(ACCOUNTS - 1)) % ACCOUNTS;
        (debit, credit)
    }

    /// A transfer between two random accounts; `linked` and `pending` as flags.
    fn moving(&mut self, flags: &[&'static str]) -> Sent {
        let (debit, credit) = self.two_accounts();
        let amount = if flags.contains(&"pending") {
            self.rng.range(1, 800)
        } else {
            self.rng.range(1, 2000)
        };
        let linked = flags.contains(&"linked");
        let allowed = match (is_limited(debit), linked) {
            (false, false) => OK,
            (true, false) => OK_OR_EXCEEDS,
            (false, true) => LINKED,
            (true, true) => LINKED_OR_EXCEEDS,
        };
        moving(self.id(), debit, credit, amount, flags, allowed)
    }

    /// A linked pair; a quarter of them fail on purpose in their second transfer.
    fn linked_pair(&mut self) -> [Sent; 2] {
        if self.rng.chance(75) {
            let first = self.moving(&["linked"]);
            let mut second = self.moving(&[]);
            if second.allowed == OK_OR_EXCEEDS {
                second.allowed = LINKED_OR_EXCEEDS;
            } else {
                second.allowed = LINKED;
            }
            return [first, second];
        }
        let credit = 1 + self.rng.index(ACCOUNTS - 1);
        let first = moving(self.id(), 0, credit, 5, &["linked"], &["linked_event_failed"]);
        let limited = 1 + self.rng.index(LIMITED);
        let second = moving(self.id(), limited, ACCOUNTS - 1, 1 << 40, &[], &["exceeds_credits"]);
        [first, second]
    }

    fn batch(&mut self) -> Request {
        let size = usize::try_from(self.rng.range(5, 20)).expect("small");
        let mut events = Vec::with_capacity(size + 1);
        while events.len() < size {
            match self.rng.range(0, 9) {
                0..=6 => events.push(self.moving(&[])),
                7 | 8 => events.push(self.moving(&["pending"])),
                _ => events.extend(self.linked_pair()),
            }
        }
        Request { events, array: true, resend: false }
    }

    /// A post (full or partial) or void of `pending`, naming its accounts or not.
    fn resolve(&mut self, pending: &Expected) -> Sent {
        let id = self.id();
        let mut body = json!({"id": uuid(id), "pending_id": uuid(pending.id)});
        if self.rng.chance(50) {
            body["debit_account_id"] = json!(uuid(pending.debit));
            body["credit_account_id"] = json!(uuid(pending.credit));
            body["ledger"] = json!(LEDGER);
            body["code"] = json!(CODE);
        }
        let (flag, amount) = match self.rng.range(0, 2) {
            0 => {
                if self.rng.chance(50) {
                    body["amount"] = json!(0);
                }
                ("post_pending", pending.amount)
            }
            1 => {
                let amount = self.rng.range(1, pending.amount);
                body["amount"] = json!(amount);
                ("post_pending", amount)
            }
            _ => {
                if self.rng.chance(50) {
                    body["amount"] = json!(pending.amount);
                }
                ("void_pending", pending.amount)
            }
        };
        body["flags"] = json!([flag]);
        let expected = Expected {
            id,
            debit: pending.debit,
            credit: pending.credit,
            amount,
            pending_id: pending.id,
            flags: vec![flag],
        };
        Sent { body, expected, allowed: OK }
    }

    fn next(&mut self, book: &Mutex<Book>) -> Request {
        match self.rng.range(0, 99) {
            0..=29 => Request::single(self.moving(&[])),
            30..=49 => self.batch(),
            50..=61 => Request { events: self.linked_pair().into(), array: true, resend: false },
            62..=74 => Request::single(self.moving(&["pending"])),
            75..=87 => match self.take_pending(book) {
                Some(pending) => Request::single(self.resolve(&pending)),
                None => Request::single(self.moving(&[])),
            },
            _ => self.resend(book).unwrap_or_else(|| Request::single(self.moving(&[]))),
        }
    }

    fn take_pending(&mut self, book: &Mutex<Book>) -> Option<Expected> {
        let mut book = lock(book);
        if book.pendings.is_empty() {
            return None;
        }
        let index = self.rng.index(book.pendings.len());
        Some(book.pendings.swap_remove(index))
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

fn moving(
    id: u128,
    debit: usize,
    credit: usize,
    amount: u64,
    flags: &[&'static str],
    allowed: &'static [&'static str],
) -> Sent {
    let (debit, credit) = (account_id(debit), account_id(credit));
    let body = json!({
        "id": uuid(id),
        "debit_account_id": uuid(debit),
        "credit_account_id": uuid(credit),
        "amount": amount,
        "ledger": LEDGER,
        "code": CODE,
        "flags": flags,
    });
    let expected = Expected { id, debit, credit, amount, pending_id: 0, flags: flags.to_vec() };
    Sent { body, expected, allowed }
}

/// One event's answer: its result and, for `id_already_failed`, the first result.
struct Answer {
    result: String,
    original: Option<String>,
}

/// The per-event answers of a request that got a definitive (non-5xx) response.
fn answers(request: &Request, status: StatusCode, body: &Value) -> Vec<Answer> {
    let answer = |item: &Value, sent: &Sent| {
        assert_eq!(id_of(&item["id"]), sent.expected.id, "{body}");
        let result = item["result"].as_str().unwrap_or_else(|| panic!("no result: {body}"));
        let original = item.get("original_result").and_then(Value::as_str).map(str::to_owned);
        Answer { result: result.to_owned(), original }
    };
    if !request.array {
        let answer = answer(body, &request.events[0]);
        assert_eq!(status, support::status_of(&answer.result), "status of {body}");
        return vec![answer];
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["results"].as_array().unwrap_or_else(|| panic!("no results: {body}"));
    assert_eq!(items.len(), request.events.len(), "one result per event: {body}");
    let mut answers = Vec::with_capacity(items.len());
    for (index, (item, sent)) in items.iter().zip(&request.events).enumerate() {
        assert_eq!(item["index"].as_u64(), Some(index as u64), "{body}");
        answers.push(answer(item, sent));
    }
    answers
}

fn succeeded(result: &str) -> bool {
    result == "ok" || result == "exists"
}

/// Checks that each linked chain of `request` succeeded whole or not at all.
fn check_chains(request: &Request, answers: &[Answer], body: &Value) {
    let mut chain = Vec::new();
    for (sent, answer) in request.events.iter().zip(answers) {
        chain.push(succeeded(&answer.result));
        if !sent.expected.has("linked") {
            assert!(chain.iter().all(|s| *s) || chain.iter().all(|s| !*s), "torn chain: {body}");
            chain.clear();
        }
    }
}

/// How many events got each result.
type Tally = BTreeMap<String, usize>;

/// Books a definitive answer; `retry` when the request is a retry of a lost answer.
fn book_answer(
    book: &Mutex<Book>,
    request: &Request,
    status: StatusCode,
    body: &Value,
    retry: bool,
) -> Tally {
    let answers = answers(request, status, body);
    check_chains(request, &answers, body);
    let mut book = lock(book);
    let mut tally = Tally::new();
    for (sent, answer) in request.events.iter().zip(&answers) {
        let result = answer.result.as_str();
        assert_ne!(
            result,
            "exists_with_different_fields",
            "transfer {}: {body}",
            uuid(sent.expected.id)
        );
        let allowed = sent.allowed.contains(&result)
            || (retry && !request.resend && (result == "exists" || result == "id_already_failed"));
        assert!(
            allowed,
            "transfer {} ({:?}) may answer {:?}, not {result}: {body}",
            uuid(sent.expected.id),
            sent.body,
            sent.allowed
        );
        if result == "id_already_failed" {
            let original =
                answer.original.as_deref().unwrap_or_else(|| panic!("no original_result: {body}"));
            assert!(sent.allowed.contains(&original) && !succeeded(original), "{body}");
        }
        if succeeded(result) {
            book.acknowledge(sent);
        } else {
            book.rejected.insert(sent.expected.id);
        }
        *tally.entry(answer.result.clone()).or_default() += 1;
    }
    tally
}

async fn client_task(
    api: Api,
    auth: String,
    book: Arc<Mutex<Book>>,
    mut generator: Generator,
    progress: Arc<Progress>,
) {
    let _wake = WakeOnExit(progress.clone());
    while !progress.stop.load(Ordering::SeqCst) {
        let request = generator.next(&book);
        match api.try_post_json("/v1/transfers", &auth, &request.body()).await {
            Ok((status, body)) if !status.is_server_error() => {
                book_answer(&book, &request, status, &body, false);
                if progress.answered.fetch_add(1, Ordering::SeqCst) + 1 == progress.target {
                    progress.wake.notify_one();
                }
            }
            Ok(_) | Err(_) => lock(&book).unknown.push(request),
        }
    }
}

/// Creates the accounts and funds the limited ones.
async fn set_up(api: &Api, auth: &str, book: &Mutex<Book>) {
    let accounts: Vec<Value> = (0..ACCOUNTS)
        .map(|index| {
            let flags: &[&str] =
                if is_limited(index) { &["debits_must_not_exceed_credits"] } else { &[] };
            json!({"id": uuid(account_id(index)), "ledger": LEDGER, "code": 1, "flags": flags})
        })
        .collect();
    let (status, body) = api.post_json("/v1/accounts", auth, Value::Array(accounts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["results"].as_array().is_some_and(|r| r.iter().all(|r| r["result"] == "ok")),
        "{body}"
    );
    let funding = Request {
        events: (1..=LIMITED)
            .map(|index| moving(0xF00D_0000 + index as u128, 0, index, FUNDING, &[], OK))
            .collect(),
        array: true,
        resend: false,
    };
    let (status, body) = api.post_json("/v1/transfers", auth, funding.body()).await;
    let tally = book_answer(book, &funding, status, &body, false);
    assert_eq!(tally, Tally::from([("ok".to_owned(), LIMITED)]), "{body}");
}

/// What one round's load did.
struct Load {
    target: usize,
    answered: usize,
    acknowledged_transfers: usize,
    unknown_requests: usize,
    unknown_transfers: usize,
    elapsed: Duration,
}

/// Runs the clients until `target` requests got an answer, then SIGKILLs the gateway with
/// requests in flight.
async fn load_then_kill(
    gateway: Gateway,
    api: &Api,
    auth: &str,
    book: &Arc<Mutex<Book>>,
    round: u64,
    rng: &mut Rng,
) -> Load {
    let started = Instant::now();
    let target = usize::try_from(rng.range(KILL_AFTER.0, KILL_AFTER.1)).expect("small");
    let progress = Arc::new(Progress {
        stop: AtomicBool::new(false),
        answered: AtomicUsize::new(0),
        target,
        wake: Notify::new(),
    });
    let (unknown_before, acknowledged_before) = {
        let book = lock(book);
        (book.unknown.len(), book.acknowledged.len())
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let generator = Generator::new(Rng::new(rng.next_u64()), round, client);
            let (api, auth, book) = (api.clone(), auth.to_owned(), book.clone());
            tokio::spawn(client_task(api, auth, book, generator, progress.clone()))
        })
        .collect();
    let woken = tokio::time::timeout(LOAD_TIMEOUT, progress.wake.notified()).await;
    // The clients run on this thread: none of them runs between the kill and `stop`, so
    // the requests in flight at the kill are the only ones that can fail.
    gateway.kill();
    progress.stop.store(true, Ordering::SeqCst);
    for client in clients {
        if let Err(error) = client.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    let answered = progress.answered.load(Ordering::SeqCst);
    assert!(woken.is_ok(), "round {round}: {answered} of {target} answers in {LOAD_TIMEOUT:?}");
    assert!(answered >= target, "round {round}: woken after {answered} of {target} answers");
    let book = lock(book);
    let unknown = &book.unknown[unknown_before..];
    Load {
        target,
        answered,
        acknowledged_transfers: book.acknowledged.len() - acknowledged_before,
        unknown_requests: unknown.len(),
        unknown_transfers: unknown.iter().map(|r| r.events.len()).sum(),
        elapsed: started.elapsed(),
    }
}

/// Resends every request whose answer was lost, exactly as first sent.
async fn retry_unknown(api: &Api, auth: &str, book: &Mutex<Book>) -> Tally {
    let unknown = std::mem::take(&mut lock(book).unknown);
    let mut tally = Tally::new();
    for request in &unknown {
        let (status, body) = api.post_json("/v1/transfers", auth, request.body()).await;
        assert!(!status.is_server_error(), "retry of {}: {status} {body}", request.body());
        for (result, count) in book_answer(book, request, status, &body, true) {
            *tally.entry(result).or_default() += count;
        }
    }
    tally
}

/// Differences between what was acknowledged and what the store returned.
fn mismatch(expected: &Expected, got: &Value) -> Option<String> {
    let pending_id = got.get("pending_id").map_or(0, id_of);
    let mut flags: Vec<&str> = got["flags"]
        .as_array()
        .map_or(Vec::new(), |f| f.iter().filter_map(Value::as_str).collect());
    let mut expected_flags = expected.flags.clone();
    flags.sort_unstable();
    expected_flags.sort_unstable();
    let same = id_of(&got["id"]) == expected.id
        && id_of(&got["debit_account_id"]) == expected.debit
        && id_of(&got["credit_account_id"]) == expected.credit
        && got["amount"].as_u64() == Some(expected.amount)
        && pending_id == expected.pending_id
        && got["ledger"].as_u64() == Some(LEDGER)
        && got["code"].as_u64() == Some(CODE)
        && flags == expected_flags;
    (!same).then(|| format!("acknowledged {}, stored {got}", expected.describe()))
}

/// What a verification covered.
struct Verified {
    acknowledged: usize,
    stored: usize,
    posted: u64,
}

/// Checks 1-3 of the module doc against the running gateway.
async fn verify(api: &Api, auth: &str, book: &Mutex<Book>, rng: &mut Rng) -> Verified {
    let (acknowledged, rejected, unknown) = {
        let book = lock(book);
        let unknown: HashSet<u128> =
            book.unknown.iter().flat_map(|r| r.events.iter().map(|s| s.expected.id)).collect();
        (book.acknowledged.clone(), book.rejected.clone(), unknown)
    };
    let mut balances = HashMap::new();
    for index in 0..ACCOUNTS {
        let id = account_id(index);
        let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(id)), auth).await;
        assert_eq!(status, StatusCode::OK, "account {index}: {body}");
        let [dp, dd, cp, cd] =
            ["debits_pending", "debits_posted", "credits_pending", "credits_posted"]
                .map(|f| body[f].as_u64().expect("balance"));
        if is_limited(index) {
            assert!(dp + dd <= cd, "account {index} broke debits_must_not_exceed_credits: {body}");
        }
        balances.insert(id, [dp, dd, cp, cd]);
    }
    let total = |i: usize| balances.values().map(|b| u128::from(b[i])).sum::<u128>();
    assert_eq!(total(0), total(2), "pending debits equal pending credits over all accounts");
    assert_eq!(total(1), total(3), "posted debits equal posted credits over all accounts");

    // Every account's full history, each transfer appearing in exactly its two accounts.
    let limit = rng.range(37, 150);
    let mut stored: HashMap<u128, Value> = HashMap::new();
    let mut appearances: HashMap<u128, usize> = HashMap::new();
    let mut histories = Vec::with_capacity(ACCOUNTS);
    for index in 0..ACCOUNTS {
        let id = account_id(index);
        let transfers = support::history(api, auth, id, limit).await;
        for transfer in &transfers {
            let transfer_id = id_of(&transfer["id"]);
            *appearances.entry(transfer_id).or_default() += 1;
            let first = stored.entry(transfer_id).or_insert_with(|| transfer.clone());
            assert_eq!(first, transfer, "one transfer, two different records");
            let sides =
                [id_of(&transfer["debit_account_id"]), id_of(&transfer["credit_account_id"])];
            assert!(sides.contains(&id), "account {index}'s history holds {transfer}");
        }
        histories.push((id, transfers));
    }
    for (transfer_id, count) in &appearances {
        assert_eq!(
            *count,
            2,
            "transfer {} appears {count} times in the histories",
            uuid(*transfer_id)
        );
        assert!(
            acknowledged.contains_key(transfer_id) || unknown.contains(transfer_id),
            "transfer {} is stored but was neither acknowledged nor in flight at a kill",
            uuid(*transfer_id)
        );
        assert!(
            !rejected.contains(transfer_id),
            "rejected transfer {} was applied",
            uuid(*transfer_id)
        );
    }

    // Balances recomputed from the histories.
    let flagged =
        |t: &Value, flag: &str| t["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == flag));
    let resolved: HashSet<u128> = stored
        .values()
        .filter(|t| flagged(t, "post_pending") || flagged(t, "void_pending"))
        .map(|t| id_of(&t["pending_id"]))
        .collect();
    for (id, transfers) in &histories {
        let mut recomputed = [0u64; 4];
        for t in transfers {
            let amount = t["amount"].as_u64().expect("amount");
            let column = if flagged(t, "pending") {
                if resolved.contains(&id_of(&t["id"])) {
                    continue;
                }
                0
            } else if flagged(t, "void_pending") {
                continue;
            } else {
                1
            };
            if id_of(&t["debit_account_id"]) == *id {
                recomputed[column] += amount;
            } else {
                recomputed[column + 2] += amount;
            }
        }
        assert_eq!(balances[id], recomputed, "account {}: balances vs its history", uuid(*id));
    }

    // Every acknowledged transfer, in the histories and by GET.
    for (id, expected) in &acknowledged {
        let got = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged, then lost: {}", expected.describe()));
        if let Some(problem) = mismatch(expected, got) {
            panic!("{problem}");
        }
    }
    for (id, status, body) in
        support::get_transfers(api, auth, acknowledged.keys().copied().collect(), READERS).await
    {
        assert_eq!(status, StatusCode::OK, "GET acknowledged transfer {}: {body}", uuid(id));
        assert_eq!(Some(&body), stored.get(&id), "GET and history disagree");
    }
    Verified {
        acknowledged: acknowledged.len(),
        stored: stored.len(),
        posted: u64::try_from(total(1)).expect("fits"),
    }
}

async fn restart(dir: &std::path::Path) -> (Gateway, Api) {
    let gateway = Gateway::start(dir, &[]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    (gateway, api)
}

#[tokio::test]
async fn acknowledged_transfers_survive_kill_9_exactly_once() {
    let started = Instant::now();
    let seed = support::seed();
    let mut rng = Rng::new(seed);
    let dir = support::data_dir();
    let auth = support::create_tenant(dir.path(), "crash");
    let (mut gateway, mut api) = restart(dir.path()).await;
    let book = Arc::new(Mutex::new(Book::default()));
    set_up(&api, &auth, &book).await;
    println!(
        "crash test: seed {seed}, {CLIENTS} clients, {ACCOUNTS} accounts ({LIMITED} limited), {KILLS} kills"
    );
    for round in 1..=KILLS {
        let load = load_then_kill(gateway, &api, &auth, &book, round, &mut rng).await;
        println!(
            "round {round}: SIGKILL after {} answered requests (target {}, {:?}): \
             {} transfers newly acknowledged, {} requests ({} transfers) in flight",
            load.answered,
            load.target,
            load.elapsed,
            load.acknowledged_transfers,
            load.unknown_requests,
            load.unknown_transfers,
        );
        (gateway, api) = restart(dir.path()).await;
        let verified = verify(&api, &auth, &book, &mut rng).await;
        println!(
            "round {round}: after restart all {} acknowledged transfers verified; {} stored \
             (posted total {})",
            verified.acknowledged, verified.stored, verified.posted,
        );
        let retried = retry_unknown(&api, &auth, &book).await;
        println!("round {round}: retried the in-flight transfers: {retried:?}");
    }
    let verified = verify(&api, &auth, &book, &mut rng).await;
    let (status, stderr) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM after the last restart exits 0; stderr:\n{stderr}");
    println!(
        "final: {} acknowledged transfers verified, {} stored, in {:?}",
        verified.acknowledged,
        verified.stored,
        started.elapsed()
    );
}
