//! One request, start to finish: plan it from the seed and the request's index, send
//! it, classify the answer, record the latency and update the model.
//!
//! Latency always counts from the intended start the caller passes in. The engine must
//! never retry on its own or change an expectation on an answer it cannot trust: an
//! answer it cannot read makes the outcome unknown, resolved after the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::api::{self, CreateResult, CreateResults, NewTransfer, Transfer};
use crate::client::{Client, Connection, Http2Slot, Response, TransportError};
use crate::model::{Effect, Model, OpenPending, Planned};
use crate::stats::{Recorder, Sample, Tally};
use crate::workload::{Ids, Kind, Mix, Picker, Rng, TRANSFERS};

/// Transfer ids per request index (more than the largest batch).
pub const IDS_PER_REQUEST: u64 = 8192;
/// Largest transfer amount the workload sends.
const AMOUNT_MAX: u64 = 1000;
/// The chart-of-accounts code of every transfer.
pub const TRANSFER_CODE: u16 = 1;

/// Locks a mutex, also after a panic elsewhere (the data are counters and plain maps).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the workload needs to plan requests.
#[derive(Debug)]
pub struct Workload {
    /// Kinds and weights.
    pub mix: Mix,
    /// Workload seed.
    pub seed: u64,
    /// Ledger number.
    pub ledger: u32,
    /// Transfers per batch request.
    pub batch_size: usize,
    /// Run-unique ids.
    pub ids: Ids,
    /// Account ids; index 0 is the funding account.
    pub accounts: Vec<Uuid>,
    /// Chooses among the workload accounts (indexes 1..).
    pub picker: Picker,
}

/// The shared state of a run.
#[derive(Debug)]
pub struct Engine {
    /// HTTP client.
    pub client: Client,
    /// What to send.
    pub workload: Workload,
    /// Measurements, merged from the shards once per second and at the end.
    pub recorder: Mutex<Recorder>,
    /// One tally per generator thread: only its thread records into it, so its lock is
    /// uncontended but for the once-per-second merge.
    pub shards: Vec<Mutex<Tally>>,
    /// Expectations.
    pub model: Mutex<Model>,
    /// Start of the load phase.
    pub start: Instant,
    /// Per-request timeout; a start that waited longer for a connection is not sent.
    pub timeout: Duration,
    /// Set to end the load early (Ctrl-C); in-flight requests still complete.
    pub stop: AtomicBool,
}

/// How a create answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Result codes, one per event.
    Results(Vec<String>),
    /// Definitely nothing applied (a 4xx before the ledger).
    Refused(u16),
    /// Transport error, timeout, 5xx or an unreadable body.
    Unknown,
}

impl Engine {
    /// Asks the load to end: no new starts.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the load was asked to end.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Merges every shard into the recorder and closes the windows that ended before
    /// `elapsed`; returns the recorder, still locked.
    pub fn collect(&self, elapsed: Duration) -> MutexGuard<'_, Recorder> {
        let mut recorder = lock(&self.recorder);
        let mut drained = Tally::new();
        for shard in &self.shards {
            std::mem::swap(&mut *lock(shard), &mut drained);
            recorder.merge(&mut drained);
        }
        recorder.roll(elapsed);
        recorder
    }

    fn transfer_id(&self, counter: u64) -> Uuid {
        self.workload.ids.id(TRANSFERS, counter)
    }

    /// A plain (or pending, or linked) transfer between two workload accounts.
    fn plain(&self, rng: &mut Rng, counter: u64, flags: &[&'static str]) -> Planned {
        let (debit, credit) = self.workload.picker.pick_pair(rng);
        let amount = 1 + rng.below(AMOUNT_MAX);
        let effect = if flags.contains(&"pending") { Effect::Pending } else { Effect::Plain };
        transfer(
            &self.workload,
            self.transfer_id(counter),
            (debit + 1, credit + 1),
            amount,
            flags,
            effect,
        )
    }

    /// A post (full or partial) or void of an open authorisation.
    fn resolution(&self, rng: &mut Rng, counter: u64, open: OpenPending) -> Planned {
        let id = self.transfer_id(counter);
        let pending_amount = open.amount;
        let (flag, amount, sent, effect) = match rng.below(3) {
            0 => ("post_pending", pending_amount, None, Effect::Post { pending_amount }),
            1 => {
                let partial = 1 + rng.below(pending_amount);
                ("post_pending", partial, Some(partial), Effect::Post { pending_amount })
            }
            _ => ("void_pending", pending_amount, None, Effect::Void { pending_amount }),
        };
        let mut planned =
            transfer(&self.workload, id, (open.debit, open.credit), amount, &[flag], effect);
        planned.body = NewTransfer {
            id,
            debit_account_id: None,
            credit_account_id: None,
            amount: sent,
            ledger: None,
            code: None,
            flags: vec![flag],
            pending_id: Some(open.id),
        };
        planned.expected.pending_id = Some(open.id);
        planned
    }
}

/// One worker of a generator thread: its connection and its thread's shard.
#[derive(Debug)]
pub struct Worker<'e> {
    engine: &'e Engine,
    connection: Connection,
    shard: usize,
}

impl<'e> Worker<'e> {
    /// A worker recording into `engine.shards[shard]`; HTTP/2 workers of one thread share
    /// `slot`.
    pub fn new(engine: &'e Engine, shard: usize, slot: &Http2Slot) -> Worker<'e> {
        assert!(shard < engine.shards.len(), "a worker records into an existing shard");
        Worker { engine, connection: engine.client.connection(slot), shard }
    }

    /// Runs request number `index`, intended to start at `intended`. A start already
    /// older than the timeout is recorded as timed out (status 0) and not sent.
    pub async fn execute(&mut self, index: u64, intended: Instant) {
        let mut rng = Rng::for_request(self.engine.workload.seed, index);
        let kind = self.engine.workload.mix.pick(&mut rng);
        if Instant::now().saturating_duration_since(intended) > self.engine.timeout {
            return self.record(kind, intended, 0, true, &[]);
        }
        match kind {
            Kind::Livez => self.livez(intended).await,
            // Boxed: the ledger kinds' futures are large, and livez must not move them.
            _ => Box::pin(self.ledger(kind, &mut rng, index, intended)).await,
        }
    }

    async fn ledger(&mut self, kind: Kind, rng: &mut Rng, index: u64, intended: Instant) {
        let base = index * IDS_PER_REQUEST;
        match kind {
            Kind::Single => {
                let planned = self.engine.plain(rng, base, &[]);
                self.create_transfers(kind, vec![planned], intended).await;
            }
            Kind::Batch => self.batch(rng, base, intended).await,
            Kind::Linked => self.linked(rng, base, intended).await,
            Kind::Authorise => self.authorise(rng, base, intended).await,
            Kind::Retry => self.retry(rng, base, intended).await,
            Kind::ReadAccount => self.read_account(rng, intended).await,
            Kind::ReadTransfer => self.read_transfer(rng, intended).await,
            Kind::Livez => self.livez(intended).await,
        }
    }

    async fn batch(&mut self, rng: &mut Rng, base: u64, intended: Instant) {
        let size = self.engine.workload.batch_size as u64;
        let events = (0..size).map(|j| self.engine.plain(rng, base + j, &[])).collect();
        self.create_array(Kind::Batch, events, intended).await;
    }

    async fn linked(&mut self, rng: &mut Rng, base: u64, intended: Instant) {
        let length = 2 + rng.below(3);
        let events = (0..length)
            .map(|j| {
                self.engine.plain(rng, base + j, if j + 1 < length { &["linked"] } else { &[] })
            })
            .collect();
        self.create_array(Kind::Linked, events, intended).await;
    }

    async fn authorise(&mut self, rng: &mut Rng, base: u64, intended: Instant) {
        let open =
            if rng.below(2) == 0 { lock(&self.engine.model).take_open_pending() } else { None };
        let planned = match open {
            Some(open) => self.engine.resolution(rng, base, open),
            None => self.engine.plain(rng, base, &["pending"]),
        };
        self.create_transfers(Kind::Authorise, vec![planned], intended).await;
    }

    async fn retry(&mut self, rng: &mut Rng, base: u64, intended: Instant) {
        let planned = self.engine.plain(rng, base, &[]);
        let first = self.create_transfers(Kind::Retry, vec![planned.clone()], intended).await;
        let Answer::Results(first) = first else { return };
        let again = self.send(Kind::Retry, std::slice::from_ref(&planned), Instant::now()).await;
        let applied = first.first().is_some_and(|r| api::is_applied(r));
        if applied {
            lock(&self.engine.model).retried(&planned);
        }
        let answered_other = matches!(&again, Answer::Results(r) if r.as_slice() != ["exists"]);
        if applied && answered_other {
            let text =
                format!("retry of transfer {} answered {again:?}, not exists", planned.body.id);
            lock(&self.engine.model).violation(text);
        }
    }

    async fn read_account(&mut self, rng: &mut Rng, intended: Instant) {
        let index = 1 + self.engine.workload.picker.pick(rng) as usize;
        let id = self.engine.workload.accounts[index];
        self.read(Kind::ReadAccount, &format!("/v1/accounts/{id}"), intended).await;
    }

    async fn read_transfer(&mut self, rng: &mut Rng, intended: Instant) {
        let recent = lock(&self.engine.model).recent(rng.next_u64());
        match recent {
            Some(id) => {
                self.read(Kind::ReadTransfer, &format!("/v1/transfers/{id}"), intended).await
            }
            None => self.read_account(rng, intended).await,
        }
    }

    async fn livez(&mut self, intended: Instant) {
        let response = self.connection.get_anonymous("/livez").await;
        self.record_read(Kind::Livez, &response, intended);
    }

    async fn read(&mut self, kind: Kind, path: &str, intended: Instant) {
        let response = self.connection.get(path).await;
        self.record_read(kind, &response, intended);
    }

    fn record_read(
        &self,
        kind: Kind,
        response: &Result<Response, TransportError>,
        intended: Instant,
    ) {
        let status = response.as_ref().map_or(0, |r| r.status.as_u16());
        self.record(kind, intended, status, status != 200, &[]);
    }

    /// Sends transfers as one object (one event) and updates the model.
    async fn create_transfers(
        &mut self,
        kind: Kind,
        events: Vec<Planned>,
        intended: Instant,
    ) -> Answer {
        let answer = self.send(kind, &events, intended).await;
        self.settle(events, &answer);
        answer
    }

    async fn create_array(&mut self, kind: Kind, events: Vec<Planned>, intended: Instant) {
        let answer = self.send_as(kind, &events, Shape::Array, intended).await;
        self.settle(events, &answer);
    }

    async fn send(&mut self, kind: Kind, events: &[Planned], intended: Instant) -> Answer {
        self.send_as(kind, events, Shape::Single, intended).await
    }

    async fn send_as(
        &mut self,
        kind: Kind,
        events: &[Planned],
        shape: Shape,
        intended: Instant,
    ) -> Answer {
        let response = self.connection.post("/v1/transfers", encode(events, shape)).await;
        let status = response.as_ref().map_or(0, |r| r.status.as_u16());
        let answer = interpret(&response, shape, events.len());
        let results: Vec<&str> = match &answer {
            Answer::Results(results) => results.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let error = !matches!(answer, Answer::Results(_));
        self.record(kind, intended, status, error, &results);
        answer
    }

    fn settle(&self, events: Vec<Planned>, answer: &Answer) {
        let mut model = lock(&self.engine.model);
        match answer {
            Answer::Results(results) => {
                for (planned, result) in events.iter().zip(results) {
                    if api::is_applied(result) {
                        model.acknowledge(planned);
                    }
                }
            }
            Answer::Refused(_) => {}
            Answer::Unknown => model.unknown(events),
        }
    }

    fn record(&self, kind: Kind, intended: Instant, status: u16, error: bool, results: &[&str]) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(intended);
        let at = now.saturating_duration_since(self.engine.start);
        let sample = Sample { kind, latency, status, error, results, at };
        lock(&self.engine.shards[self.shard]).record(sample);
    }
}

/// A planned transfer between account indexes `(debit, credit)`.
pub fn transfer(
    workload: &Workload,
    id: Uuid,
    (debit, credit): (u32, u32),
    amount: u64,
    flags: &[&'static str],
    effect: Effect,
) -> Planned {
    let (debit_id, credit_id) =
        (workload.accounts[debit as usize], workload.accounts[credit as usize]);
    let body = NewTransfer {
        id,
        debit_account_id: Some(debit_id),
        credit_account_id: Some(credit_id),
        amount: Some(amount),
        ledger: Some(workload.ledger),
        code: Some(TRANSFER_CODE),
        flags: flags.to_vec(),
        pending_id: None,
    };
    let expected = Transfer {
        id,
        debit_account_id: debit_id,
        credit_account_id: credit_id,
        amount,
        ledger: workload.ledger,
        code: TRANSFER_CODE,
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        pending_id: None,
    };
    Planned { body, debit, credit, effect, expected }
}

/// How events are put in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One object (exactly one event).
    Single,
    /// An array.
    Array,
}

/// The JSON body of `events`.
pub fn encode(events: &[Planned], shape: Shape) -> Bytes {
    let encoded = match (shape, events) {
        (Shape::Single, [one]) => serde_json::to_vec(&one.body),
        _ => serde_json::to_vec(&events.iter().map(|e| &e.body).collect::<Vec<_>>()),
    };
    Bytes::from(encoded.unwrap_or_default())
}

/// Classifies a create's answer.
pub fn interpret(
    response: &Result<Response, TransportError>,
    shape: Shape,
    events: usize,
) -> Answer {
    let Ok(response) = response else { return Answer::Unknown };
    let status = response.status.as_u16();
    match status {
        500.. => Answer::Unknown,
        200 if shape == Shape::Array || events > 1 => array_results(&response.body, events),
        200 | 201 | 404 | 409 | 422 => single_result(&response.body),
        _ => Answer::Refused(status),
    }
}

fn single_result(body: &[u8]) -> Answer {
    match serde_json::from_slice::<CreateResult>(body) {
        Ok(result) => Answer::Results(vec![result.result]),
        Err(_) => Answer::Unknown,
    }
}

fn array_results(body: &[u8], events: usize) -> Answer {
    let Ok(parsed) = serde_json::from_slice::<CreateResults>(body) else { return Answer::Unknown };
    let mut results = vec![String::new(); events];
    for item in parsed.results {
        match results.get_mut(item.index) {
            Some(slot) => *slot = item.result,
            None => return Answer::Unknown,
        }
    }
    if results.iter().any(String::is_empty) {
        return Answer::Unknown;
    }
    Answer::Results(results)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn response(status: u16, body: &str) -> Result<Response, TransportError> {
        let status = StatusCode::from_u16(status).expect("a valid status");
        Ok(Response { status, body: Bytes::from(body.to_owned()) })
    }

    fn results(codes: &[&str]) -> Answer {
        Answer::Results(codes.iter().map(|c| (*c).to_owned()).collect())
    }

    #[test]
    fn answers_are_classified() {
        let array = r#"{"results":[{"index":1,"id":"x","result":"exceeds_credits"},{"index":0,"id":"y","result":"ok"}]}"#;
        let cases = [
            (response(201, r#"{"id":"x","result":"ok"}"#), Shape::Single, 1, results(&["ok"])),
            (
                response(422, r#"{"result":"exceeds_credits"}"#),
                Shape::Single,
                1,
                results(&["exceeds_credits"]),
            ),
            (response(200, array), Shape::Array, 2, results(&["ok", "exceeds_credits"])),
            (response(200, r#"{"results":[]}"#), Shape::Array, 1, Answer::Unknown),
            (response(200, "not json"), Shape::Single, 1, Answer::Unknown),
            (response(503, "{}"), Shape::Single, 1, Answer::Unknown),
            (response(400, "{}"), Shape::Array, 3, Answer::Refused(400)),
            (response(429, "{}"), Shape::Single, 1, Answer::Refused(429)),
            (Err(TransportError::Timeout), Shape::Single, 1, Answer::Unknown),
        ];
        for (response, shape, events, expected) in cases {
            assert_eq!(interpret(&response, shape, events), expected, "{response:?}");
        }
    }
}
