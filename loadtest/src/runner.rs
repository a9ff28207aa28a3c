//! The phases of a run: pre-flight, setup (the run's accounts and their funding), the
//! load itself (open or closed loop) and the live progress line.
//!
//! The load runs on generator threads (`--threads`), like wrk's: each is a
//! current-thread tokio runtime owning its share of the connections (worker `w` runs on
//! thread `w % threads`) and records into its own shard of the measurements, so no lock
//! or counter is shared across threads per request. In the open loop each thread
//! dispatches its own share of the starts (request `i` on thread `i % threads`) into its
//! own backlog of `BACKLOG_MAX / threads`.
//!
//! The open loop starts requests at their intended times whatever the server does: a
//! start that finds the backlog full is counted as missed, never delayed. This module
//! must never wait for a response before scheduling the next start.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Error;
use crate::api::{self, NewAccount};
use crate::client::{Client, Http2Slot, TransportError};
use crate::config::BATCH_EVENTS_MAX;
use crate::engine::{Answer, Engine, Shape, Worker, Workload, encode, interpret, lock, transfer};
use crate::model::{Effect, Model};
use crate::schedule::Schedule;
use crate::stats::quantile_ms;
use crate::workload::ACCOUNTS;

/// Open-loop starts that may wait for a free connection; beyond, starts are missed.
pub const BACKLOG_MAX: usize = 16_384;
/// Funding credited to each unlimited account at setup.
const FUNDING: u64 = 1_000_000_000;
/// Funding of accounts flagged `debits_must_not_exceed_credits`.
const FUNDING_LIMITED: u64 = 50_000;
/// Every this many accounts, one is flagged `debits_must_not_exceed_credits`.
const LIMITED_EVERY: usize = 10;
const ACCOUNT_CODE: u16 = 1;

/// A start handed to a worker.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Request number.
    pub index: u64,
    /// Intended start.
    pub intended: Instant,
}

/// Calls `emit` for each of the schedule's starts at its intended time, until the
/// schedule ends or `emit` answers false.
pub async fn dispatch(schedule: &Schedule, start: Instant, emit: impl FnMut(Job) -> bool) {
    dispatch_share(schedule, start, Share { first: 0, step: 1 }, emit).await;
}

/// Which of the schedule's starts one generator thread dispatches.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// The first request number.
    pub first: u64,
    /// Every this many after it.
    pub step: u64,
}

/// [`dispatch`] for the starts `share.first`, `share.first + share.step`, ...
pub async fn dispatch_share(
    schedule: &Schedule,
    start: Instant,
    share: Share,
    mut emit: impl FnMut(Job) -> bool,
) {
    assert!(share.step > 0, "a share advances");
    let mut index = share.first;
    while let Some(offset) = schedule.offset(index) {
        let intended = start + offset;
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        if !emit(Job { index, intended }) {
            return;
        }
        index += share.step;
    }
}

/// Checks the target answers at all: GET /livez.
pub async fn preflight(client: &Client) -> Result<(), Error> {
    match client.get_anonymous("/livez").await {
        Ok(_) => Ok(()),
        Err(error) => Err(Error::Connect { url: client.base().to_owned(), reason: reason(error) }),
    }
}

fn reason(error: TransportError) -> String {
    match error {
        TransportError::Connect(text) | TransportError::Broken(text) => text,
        TransportError::Timeout => "timed out".to_owned(),
    }
}

/// The run's account ids: the funding account first.
pub fn account_ids(workload_accounts: u32, ids: &crate::workload::Ids) -> Vec<uuid::Uuid> {
    (0..=u64::from(workload_accounts)).map(|i| ids.id(ACCOUNTS, i)).collect()
}

fn account_flags(index: usize) -> Vec<&'static str> {
    if index > 0 && index.is_multiple_of(LIMITED_EVERY) {
        vec!["debits_must_not_exceed_credits"]
    } else {
        Vec::new()
    }
}

/// Creates the run's accounts and funds them; the funding goes into the model.
pub async fn setup(engine: &Engine) -> Result<(), Error> {
    let workload = &engine.workload;
    let accounts: Vec<NewAccount> = workload
        .accounts
        .iter()
        .enumerate()
        .map(|(i, id)| NewAccount {
            id: *id,
            ledger: workload.ledger,
            code: ACCOUNT_CODE,
            flags: account_flags(i),
        })
        .collect();
    for chunk in accounts.chunks(BATCH_EVENTS_MAX) {
        let body = serde_json::to_vec(chunk).unwrap_or_default();
        let response = engine.client.post("/v1/accounts", body.into()).await;
        check_setup(&engine.client, response, chunk.len(), "account")?;
    }
    fund(engine).await
}

async fn fund(engine: &Engine) -> Result<(), Error> {
    let workload = &engine.workload;
    let funding = (1..workload.accounts.len()).map(|i| {
        let amount = if account_flags(i).is_empty() { FUNDING } else { FUNDING_LIMITED };
        let id = workload.ids.id(crate::workload::TRANSFERS, u64::MAX - i as u64);
        transfer(workload, id, (0, i as u32), amount, &[], Effect::Plain)
    });
    let funding: Vec<_> = funding.collect();
    for chunk in funding.chunks(BATCH_EVENTS_MAX) {
        let response = engine.client.post("/v1/transfers", encode(chunk, Shape::Array)).await;
        check_setup(&engine.client, response, chunk.len(), "funding transfer")?;
        let mut model = lock(&engine.model);
        chunk.iter().for_each(|planned| model.acknowledge(planned));
    }
    Ok(())
}

fn check_setup(
    client: &Client,
    response: Result<crate::client::Response, TransportError>,
    events: usize,
    what: &str,
) -> Result<(), Error> {
    let url = client.base().to_owned();
    let response = response.map_err(|e| Error::Connect { url, reason: reason(e) })?;
    if response.status == 401 {
        return Err(Error::KeyRefused);
    }
    let status = response.status.as_u16();
    let answer = interpret(&Ok(response), Shape::Array, events);
    let Answer::Results(results) = answer else {
        return Err(Error::Setup(format!("creating {what}s answered HTTP {status}")));
    };
    match results.iter().find(|r| !api::is_applied(r)) {
        Some(bad) => Err(Error::Setup(format!("creating {what}s answered `{bad}`"))),
        None => Ok(()),
    }
}

/// Builds the engine of a run whose load runs on `threads` generator threads (at most
/// the load's connections: every thread needs one).
pub fn engine(client: Client, workload: Workload, timeout: Duration, threads: usize) -> Engine {
    assert!(threads > 0, "at least one generator thread");
    let model = Model::new(workload.accounts.len(), workload.seed);
    Engine {
        client,
        workload,
        recorder: Default::default(),
        shards: (0..threads).map(|_| Default::default()).collect(),
        model: std::sync::Mutex::new(model),
        start: Instant::now(),
        timeout,
        stop: AtomicBool::new(false),
    }
}

/// Open loop: starts from `schedule`, served by `connections` workers.
pub async fn open_loop(engine: Arc<Engine>, schedule: &Schedule, connections: usize) {
    generate(engine, Plan::Open(schedule.clone()), connections).await;
}

/// Closed loop: `connections` workers back to back until `duration` has passed.
pub async fn closed_loop(engine: Arc<Engine>, duration: Duration, connections: usize) {
    let deadline = engine.start + duration;
    generate(engine, Plan::Closed(deadline), connections).await;
}

/// What the generator threads do.
#[derive(Debug, Clone)]
enum Plan {
    /// Starts from a schedule.
    Open(Schedule),
    /// Back to back until the deadline.
    Closed(Instant),
}

/// Runs the plan on one generator thread per shard and waits for all of them.
async fn generate(engine: Arc<Engine>, plan: Plan, connections: usize) {
    let threads = engine.shards.len();
    assert!(threads <= connections, "every generator thread has a connection");
    let generators: Vec<_> = (0..threads)
        .map(|shard| {
            let (engine, plan) = (engine.clone(), plan.clone());
            std::thread::Builder::new()
                .name(format!("loadtest-{shard}"))
                .spawn(move || generator(&engine, shard, &plan, connections))
                .expect("spawning a generator thread")
        })
        .collect();
    let joined = tokio::task::spawn_blocking(move || {
        generators.into_iter().map(std::thread::JoinHandle::join).all(|j| j.is_ok())
    });
    assert!(joined.await.unwrap_or(false), "a generator thread panicked");
}

fn generator(engine: &Arc<Engine>, shard: usize, plan: &Plan, connections: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = runtime.expect("building a generator thread's runtime");
    let threads = engine.shards.len();
    let workers: Vec<u64> = (shard..connections).step_by(threads).map(|w| w as u64).collect();
    runtime.block_on(async {
        match plan {
            Plan::Closed(deadline) => {
                closed_share(engine, shard, &workers, connections as u64, *deadline).await
            }
            Plan::Open(schedule) => open_share(engine, shard, workers.len(), schedule).await,
        }
    });
}

/// Worker `w` sends requests `w`, `w + connections`, ... back to back.
async fn closed_share(
    engine: &Arc<Engine>,
    shard: usize,
    workers: &[u64],
    connections: u64,
    deadline: Instant,
) {
    let slot = Http2Slot::default();
    let mut tasks = JoinSet::new();
    for &first in workers {
        let (engine, slot) = (engine.clone(), slot.clone());
        tasks.spawn(async move {
            let mut worker = Worker::new(&engine, shard, &slot);
            let mut index = first;
            while Instant::now() < deadline && !engine.stopped() {
                worker.execute(index, Instant::now()).await;
                index += connections;
            }
        });
    }
    tasks.join_all().await;
}

/// This thread's share of the starts, served by `workers` workers from its backlog.
async fn open_share(engine: &Arc<Engine>, shard: usize, workers: usize, schedule: &Schedule) {
    let threads = engine.shards.len();
    let (sender, receiver) = mpsc::channel::<Job>(BACKLOG_MAX / threads);
    let receiver = Arc::new(AsyncMutex::new(receiver));
    let slot = Http2Slot::default();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (engine, receiver, slot) = (engine.clone(), receiver.clone(), slot.clone());
        tasks.spawn(async move { open_worker(&engine, shard, &receiver, &slot).await });
    }
    let share = Share { first: shard as u64, step: threads as u64 };
    dispatch_share(schedule, engine.start, share, |job| {
        if sender.try_send(job).is_err() {
            lock(&engine.shards[shard]).miss();
        }
        !engine.stopped()
    })
    .await;
    drop(sender);
    tasks.join_all().await;
}

async fn open_worker(
    engine: &Engine,
    shard: usize,
    receiver: &AsyncMutex<mpsc::Receiver<Job>>,
    slot: &Http2Slot,
) {
    let mut worker = Worker::new(engine, shard, slot);
    loop {
        let job = receiver.lock().await.recv().await;
        match job {
            Some(job) => worker.execute(job.index, job.intended).await,
            None => return,
        }
    }
}

/// Prints one progress line per second on stderr until aborted.
pub async fn progress(engine: Arc<Engine>, rate: Option<Schedule>) {
    let terminal = std::io::stderr().is_terminal();
    let mut ticks =
        tokio::time::interval_at(engine.start + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let elapsed = engine.start.elapsed();
        let line = progress_line(&engine, elapsed, rate.as_ref());
        let mut stderr = std::io::stderr().lock();
        let _ =
            if terminal { write!(stderr, "\r\x1b[2K{line}") } else { writeln!(stderr, "{line}") };
        let _ = stderr.flush();
    }
}

fn progress_line(engine: &Engine, elapsed: Duration, rate: Option<&Schedule>) -> String {
    let recorder = engine.collect(elapsed);
    let (second, last) = recorder.windows.last().map_or((0, 0), |w| (w.second, w.requests));
    let at = Duration::from_secs(second);
    let target = rate.map(|s| format!(" (target {}/s)", s.rate_at(at))).unwrap_or_default();
    format!(
        "{:>5.0}s  {last:>7} req/s{target}  p99 {:.2} ms  errors {}  missed {}",
        elapsed.as_secs_f64(),
        quantile_ms(&recorder.overall.histogram, 0.99),
        recorder.overall.errors,
        recorder.missed,
    )
}

/// First Ctrl-C: stop starting requests, then report and verify as usual. Second: exit 130.
pub async fn interrupt(engine: Arc<Engine>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("\nloadtest: interrupted; finishing in-flight requests (Ctrl-C again to quit)");
    engine.stop();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}
