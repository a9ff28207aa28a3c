//! The group-commit batcher: one per core, generic over what a flush does.
//!
//! [`batcher`] returns a [`BatcherHandle`] and the batcher loop, a future the caller
//! spawns on the same core (e.g. with `tokio::task::spawn_local`). Request tasks call
//! [`BatcherHandle::submit`]; the loop takes the first waiting request, adds every request
//! already queued behind it while the total stays within `batch_size_max` events, hands
//! them to [`Flusher::flush`] as one batch, and answers each request with its own slice
//! of the outcomes.
//!
//! - **No timers.** When nothing is in flight, a request is flushed at once. While a flush
//!   is in flight, arrivals wait in the queue and go together in the next flush.
//! - **Bounded.** At most `queue_depth_max` requests wait (plus at most one request held
//!   over because it did not fit the previous batch); a submit over that bound fails at
//!   once with [`SubmitError::QueueFull`] and never waits for space. A request is never
//!   split across flushes, so a request of more than `batch_size_max` events is refused
//!   with [`SubmitError::TooLarge`].
//! - **Shutdown by dropping.** There is no `close`: once every [`BatcherHandle`] is
//!   dropped, the loop flushes and answers everything still queued, then its future
//!   completes. To shut a core down, stop accepting, let in-flight requests finish (they
//!   hold the handles), drop the core's handles, and await the loop.
//! - **Spans only when traced.** When a request is submitted inside a span (the gateway's
//!   request span, which exists only with tracing on), the request gets a `batch` span,
//!   child of it, that ends when the request is answered; the flush gets a root `flush`
//!   span, and the two are linked both ways with `follows_from` (span links in
//!   OpenTelemetry). Outside any span nothing is created, so untraced requests pay one
//!   thread-local look-up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span};

/// The bounds of one batcher. Validate them where the configuration is read; [`batcher`]
/// asserts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most events in one flush; also the largest request accepted. At least 1.
    pub batch_size_max: usize,
    /// Most requests waiting in the queue. At least 1 and at most
    /// `tokio::sync::Semaphore::MAX_PERMITS`.
    pub queue_depth_max: usize,
}

/// Applies a batch of events, e.g. as one database transaction.
///
/// The returned future runs on the batcher's core and need not be `Send`; only one flush
/// of a batcher is in flight at a time.
pub trait Flusher: 'static {
    /// One item of a request (e.g. one transfer).
    type Event: Send + 'static;
    /// The result for one event (e.g. `ok` or why it was rejected).
    type Outcome: Send + 'static;
    /// A failure of a whole batch (e.g. the transaction did not commit); every request in
    /// that batch receives a clone.
    type Error: Clone + Send + 'static;

    /// Applies one batch; returns one outcome per event, in order, or an error for the whole batch.
    ///
    /// Returning a different number of outcomes than events is a programmer error: the
    /// batcher loop panics.
    fn flush(
        &self,
        events: Vec<Self::Event>,
    ) -> impl Future<Output = Result<Vec<Self::Outcome>, Self::Error>>;
}

/// Receives the size and latency of every flush (successful or not), e.g. for metrics.
///
/// Called on the batcher's core right after each flush, before the requests are answered:
/// keep it cheap and non-blocking.
pub trait FlushObserver: Send + Sync + 'static {
    /// One flush of `requests` requests holding `events` events took `latency`.
    fn flushed(&self, requests: usize, events: usize, latency: Duration);
}

/// Why [`BatcherHandle::submit`] did not return outcomes.
///
/// The gateway maps `QueueFull` and `ShuttingDown` to 503 with `Retry-After`, `TooLarge`
/// to 413, and `Flush` according to the flusher's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError<E> {
    /// `queue_depth_max` requests are already waiting; the request was not queued.
    #[error("batcher queue is full")]
    QueueFull,
    /// The request has more events than one flush may hold; it was not queued.
    #[error("request of {events} events exceeds batch_size_max {batch_size_max}")]
    TooLarge {
        /// Events in the request.
        events: usize,
        /// The batcher's `batch_size_max`.
        batch_size_max: usize,
    },
    /// The batcher loop has ended (or panicked); the request was not flushed.
    #[error("batcher is shutting down")]
    ShuttingDown,
    /// The flush holding this request failed as a whole.
    #[error("batch flush failed")]
    Flush(#[source] E),
}

type Answer<F> = Result<Vec<<F as Flusher>::Outcome>, <F as Flusher>::Error>;

/// One submitted request, as it travels through the queue.
struct Request<F: Flusher> {
    events: Vec<F::Event>,
    reply: oneshot::Sender<Answer<F>>,
    /// The request's `batch` span ([`Span::none`] when the submitter is not traced).
    span: Span,
}

/// Submits requests to one batcher. Cheap to clone; the loop ends once every clone is
/// dropped and the queue is drained.
pub struct BatcherHandle<F: Flusher> {
    sender: mpsc::Sender<Request<F>>,
    batch_size_max: usize,
}

impl<F: Flusher> Clone for BatcherHandle<F> {
    fn clone(&self) -> Self {
        Self { sender: self.sender.clone(), batch_size_max: self.batch_size_max }
    }
}

impl<F: Flusher> std::fmt::Debug for BatcherHandle<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatcherHandle")
            .field("queue_depth", &self.queue_depth())
            .field("batch_size_max", &self.batch_size_max)
            .finish()
    }
}

impl<F: Flusher> BatcherHandle<F> {
    /// Queues `events` as one request and waits for its outcomes, one per event, in order.
    ///
    /// Never waits for queue space. An empty request returns `Ok(vec![])` without
    /// queueing. If the caller stops awaiting after the request was queued, the events are
    /// still flushed; only the answer is lost.
    ///
    /// # Errors
    ///
    /// See [`SubmitError`]: `TooLarge` and `QueueFull` before queueing, `ShuttingDown` if
    /// the loop has ended (before or after queueing), `Flush` if the flush failed.
    pub async fn submit(
        &self,
        events: Vec<F::Event>,
    ) -> Result<Vec<F::Outcome>, SubmitError<F::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.check_size(events.len())?;
        let (reply, answer) = oneshot::channel();
        let span = batch_span(events.len());
        self.sender.try_send(Request { events, reply, span }).map_err(queue_error)?;
        match answer.await {
            Ok(answer) => answer.map_err(SubmitError::Flush),
            Err(oneshot::error::RecvError { .. }) => Err(SubmitError::ShuttingDown),
        }
    }

    /// Requests waiting in the queue now (not counting the batch in flight, nor a request
    /// held over for the next flush).
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    fn check_size(&self, events: usize) -> Result<(), SubmitError<F::Error>> {
        if events > self.batch_size_max {
            return Err(SubmitError::TooLarge { events, batch_size_max: self.batch_size_max });
        }
        Ok(())
    }
}

/// A `batch` span, child of the submitter's span, or none when the submitter has none.
fn batch_span(events: usize) -> Span {
    let parent = Span::current();
    if parent.is_none() {
        return Span::none();
    }
    tracing::info_span!(
        parent: &parent,
        "batch",
        events,
        batch.requests = tracing::field::Empty,
        batch.events = tracing::field::Empty,
    )
}

fn queue_error<T, E>(error: mpsc::error::TrySendError<T>) -> SubmitError<E> {
    match error {
        mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
        mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
    }
}

/// Creates a batcher: the handle to submit with, and the loop to spawn on the same core.
///
/// The loop must be polled for requests to be answered; it completes once every handle is
/// dropped and every queued request is flushed and answered.
///
/// # Panics
///
/// If `config.batch_size_max` or `config.queue_depth_max` is 0, or `queue_depth_max`
/// exceeds tokio's channel limit. The returned loop panics if the flusher returns a number
/// of outcomes different from the number of events.
pub fn batcher<F: Flusher>(
    flusher: F,
    config: BatcherConfig,
    observer: Arc<dyn FlushObserver>,
) -> (BatcherHandle<F>, impl Future<Output = ()>) {
    assert!(config.batch_size_max > 0, "BatcherConfig::batch_size_max must be at least 1");
    assert!(config.queue_depth_max > 0, "BatcherConfig::queue_depth_max must be at least 1");
    let (sender, receiver) = mpsc::channel(config.queue_depth_max);
    let handle = BatcherHandle { sender, batch_size_max: config.batch_size_max };
    let loop_ = Loop { flusher, receiver, batch_size_max: config.batch_size_max, observer };
    (handle, loop_.run())
}

/// The batcher loop's state.
struct Loop<F: Flusher> {
    flusher: F,
    receiver: mpsc::Receiver<Request<F>>,
    batch_size_max: usize,
    observer: Arc<dyn FlushObserver>,
}

/// Requests taken together for one flush.
struct Batch<F: Flusher> {
    /// Every request's events, concatenated in queue order.
    events: Vec<F::Event>,
    /// Per request, in the same order: how many events it has and where to answer.
    waiters: Vec<(usize, oneshot::Sender<Answer<F>>)>,
    /// The requests' `batch` spans that exist (traced requests only).
    spans: Vec<Span>,
}

impl<F: Flusher> Loop<F> {
    async fn run(mut self) {
        let mut held_over = None;
        loop {
            let first = match held_over.take() {
                Some(request) => request,
                None => match self.receiver.recv().await {
                    Some(request) => request,
                    None => return, // Every handle dropped and the queue drained.
                },
            };
            let batch;
            (batch, held_over) = self.collect(first);
            self.flush(batch).await;
        }
    }

    /// Starts a batch with `first` and adds the requests already queued while they fit;
    /// returns the batch and the request that did not fit, if any.
    ///
    /// Bounded: every queued request has at least one event, so at most `batch_size_max`
    /// requests are taken.
    fn collect(&mut self, first: Request<F>) -> (Batch<F>, Option<Request<F>>) {
        let mut batch = Batch::new(first);
        while let Ok(request) = self.receiver.try_recv() {
            if batch.events.len() + request.events.len() > self.batch_size_max {
                return (batch, Some(request));
            }
            batch.push(request);
        }
        (batch, None)
    }

    async fn flush(&self, batch: Batch<F>) {
        assert!(batch.events.len() <= self.batch_size_max, "batch exceeds batch_size_max");
        let (requests, events) = (batch.waiters.len(), batch.events.len());
        let started = Instant::now();
        let flush_span = flush_span(&batch.spans, requests, events);
        // Entering a disabled span is a no-op: untraced flushes pay nothing for this.
        let answer = self.flusher.flush(batch.events).instrument(flush_span.clone()).await;
        let latency = started.elapsed();
        self.observer.flushed(requests, events, latency);
        if !flush_span.is_none() {
            let duration_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            flush_span.record("duration_us", duration_us);
            flush_span.record("ok", answer.is_ok());
        }
        drop(flush_span);
        match answer {
            Ok(outcomes) => answer_outcomes::<F>(batch.waiters, outcomes, events),
            Err(error) => answer_error::<F>(batch.waiters, &error),
        }
    }
}

impl<F: Flusher> Batch<F> {
    fn new(first: Request<F>) -> Self {
        let waiters = vec![(first.events.len(), first.reply)];
        let spans = if first.span.is_none() { Vec::new() } else { vec![first.span] };
        Self { events: first.events, waiters, spans }
    }

    fn push(&mut self, request: Request<F>) {
        self.waiters.push((request.events.len(), request.reply));
        self.events.extend(request.events);
        if !request.span.is_none() {
            self.spans.push(request.span);
        }
    }
}

/// The root `flush` span, linked both ways to the `batch` span of every traced request
/// in it; none when no request in the batch is traced.
fn flush_span(batch_spans: &[Span], requests: usize, events: usize) -> Span {
    if batch_spans.is_empty() {
        return Span::none();
    }
    let flush = tracing::info_span!(
        parent: None,
        "flush",
        requests,
        events,
        traced_requests = batch_spans.len(),
        rows = tracing::field::Empty,
        duration_us = tracing::field::Empty,
        ok = tracing::field::Empty,
    );
    for batch in batch_spans {
        batch.record("batch.requests", requests);
        batch.record("batch.events", events);
        flush.follows_from(batch);
        batch.follows_from(&flush);
    }
    flush
}

/// Gives each waiter its own slice of `outcomes`, in order.
///
/// A send error means the client went away; its events are committed all the same.
fn answer_outcomes<F: Flusher>(
    waiters: Vec<(usize, oneshot::Sender<Answer<F>>)>,
    outcomes: Vec<F::Outcome>,
    events: usize,
) {
    assert!(
        outcomes.len() == events,
        "Flusher::flush returned {} outcomes for {events} events; it must return one per event",
        outcomes.len(),
    );
    let mut outcomes = outcomes.into_iter();
    for (count, reply) in waiters {
        let _ = reply.send(Ok(outcomes.by_ref().take(count).collect()));
    }
}

/// Gives every waiter of a failed batch a clone of the error.
fn answer_error<F: Flusher>(waiters: Vec<(usize, oneshot::Sender<Answer<F>>)>, error: &F::Error) {
    for (_, reply) in waiters {
        let _ = reply.send(Err(error.clone()));
    }
}
