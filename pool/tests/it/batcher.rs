//! The group-commit batcher, driven step by step: the test flusher reports each batch as
//! it starts and then waits on a semaphore the test releases, so every interleaving below
//! is forced, not timed.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pool::batcher::{BatcherConfig, BatcherHandle, FlushObserver, Flusher, SubmitError, batcher};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, LocalSet};

/// An event that makes its whole batch fail.
const POISON: u32 = 13;
/// An event for which the flusher (wrongly) returns no outcomes.
const SHORT: u32 = 99;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct Failed(&'static str);

/// Reports each batch when its flush starts, then waits for one permit of `gate`.
struct Gated {
    started: mpsc::UnboundedSender<Vec<u32>>,
    gate: Rc<Semaphore>,
}

impl Flusher for Gated {
    type Event = u32;
    type Outcome = u32;
    type Error = Failed;

    async fn flush(&self, events: Vec<u32>) -> Result<Vec<u32>, Failed> {
        self.started.send(events.clone()).expect("test holds the receiver");
        self.gate.acquire().await.expect("gate never closes").forget();
        if events.contains(&POISON) {
            return Err(Failed("poisoned batch"));
        }
        if events.contains(&SHORT) {
            return Ok(Vec::new());
        }
        Ok(events.iter().map(|event| event * 10).collect())
    }
}

/// Records (requests, events) of every flush; latency is not asserted.
#[derive(Default)]
struct Recorder(Mutex<Vec<(usize, usize)>>);

impl FlushObserver for Recorder {
    fn flushed(&self, requests: usize, events: usize, _latency: Duration) {
        self.0.lock().expect("not poisoned").push((requests, events));
    }
}

/// Everything of a test batcher but its handle (kept apart so submits can borrow it).
struct Rig {
    started: mpsc::UnboundedReceiver<Vec<u32>>,
    gate: Rc<Semaphore>,
    recorder: Arc<Recorder>,
    run: JoinHandle<()>,
}

impl Rig {
    /// A batcher whose loop runs as a local task; call inside a `LocalSet`.
    fn new(batch_size_max: usize, queue_depth_max: usize) -> (BatcherHandle<Gated>, Self) {
        let (started_tx, started) = mpsc::unbounded_channel();
        let gate = Rc::new(Semaphore::new(0));
        let recorder = Arc::new(Recorder::default());
        let flusher = Gated { started: started_tx, gate: Rc::clone(&gate) };
        let config = BatcherConfig { batch_size_max, queue_depth_max };
        let observer: Arc<dyn FlushObserver> = recorder.clone();
        let (handle, run) = batcher(flusher, config, observer);
        (handle, Self { started, gate, recorder, run: tokio::task::spawn_local(run) })
    }

    /// Waits until a flush has started and returns its events.
    async fn flush_started(&mut self) -> Vec<u32> {
        self.started.recv().await.expect("batcher loop alive")
    }

    fn release(&self, flushes: usize) {
        self.gate.add_permits(flushes);
    }

    fn observed(&self) -> Vec<(usize, usize)> {
        self.recorder.0.lock().expect("not poisoned").clone()
    }
}

type Answer = Result<Vec<u32>, SubmitError<Failed>>;
type Submitted<'a> = Pin<Box<dyn Future<Output = Answer> + 'a>>;

/// Polls a submit once, so it is queued (or refused) now, in program order.
fn poll_once<'a>(submit: impl Future<Output = Answer> + 'a) -> (Submitted<'a>, Poll<Answer>) {
    let mut submit: Submitted<'a> = Box::pin(submit);
    let poll = submit.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    (submit, poll)
}

/// Queues a submit now; await the result for its answer.
fn enqueue<'a>(submit: impl Future<Output = Answer> + 'a) -> Submitted<'a> {
    let (submit, poll) = poll_once(submit);
    assert!(poll.is_pending(), "answered before its flush was released: {poll:?}");
    submit
}

async fn on_local<T>(test: impl Future<Output = T>) -> T {
    LocalSet::new().run_until(test).await
}

#[test]
fn handle_is_send_sync_clone_even_when_the_flusher_is_not() {
    fn check<T: Send + Sync + Clone>() {}
    check::<BatcherHandle<Gated>>();
}

#[tokio::test(flavor = "current_thread")]
async fn idle_batcher_flushes_a_single_request_at_once() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(handle.submit(vec![1, 2]));
        assert_eq!(rig.flush_started().await, [1, 2]);
        rig.release(1);
        assert_eq!(a.await, Ok(vec![10, 20]));
        assert_eq!(rig.observed(), [(1, 2)]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn arrivals_during_a_flush_go_together_in_the_next_flush() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(handle.submit(vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        let b = enqueue(handle.submit(vec![2, 3]));
        let c = enqueue(handle.submit(vec![4]));
        let d = enqueue(handle.submit(vec![5, 6, 7]));
        assert_eq!(handle.queue_depth(), 3);
        rig.release(2);
        assert_eq!(a.await, Ok(vec![10]));
        assert_eq!(rig.flush_started().await, [2, 3, 4, 5, 6, 7]);
        assert_eq!(b.await, Ok(vec![20, 30]));
        assert_eq!(c.await, Ok(vec![40]));
        assert_eq!(d.await, Ok(vec![50, 60, 70]));
        assert_eq!(rig.observed(), [(1, 1), (3, 6)]);
        assert_eq!(handle.queue_depth(), 0);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_never_splits_and_batch_size_max_holds() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(handle.submit(vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        let b = enqueue(handle.submit(vec![2; 6]));
        let c = enqueue(handle.submit(vec![3; 6]));
        let d = enqueue(handle.submit(vec![4; 4]));
        rig.release(3);
        assert_eq!(rig.flush_started().await, [2; 6]);
        let mut third = vec![3; 6];
        third.extend([4; 4]);
        assert_eq!(rig.flush_started().await, third, "exactly batch_size_max fits");
        assert_eq!(a.await, Ok(vec![10]));
        assert_eq!(b.await, Ok(vec![20; 6]));
        assert_eq!(c.await, Ok(vec![30; 6]));
        assert_eq!(d.await, Ok(vec![40; 4]));
        assert_eq!(rig.observed(), [(1, 1), (1, 6), (2, 10)]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_refuses_at_once() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 2);
        let a = enqueue(handle.submit(vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        let b = enqueue(handle.submit(vec![2]));
        let c = enqueue(handle.submit(vec![3]));
        assert_eq!(handle.queue_depth(), 2);
        let (_, refused) = poll_once(handle.submit(vec![4]));
        assert_eq!(refused, Poll::Ready(Err(SubmitError::QueueFull)));
        assert_eq!(handle.queue_depth(), 2);
        rig.release(2);
        assert_eq!(a.await, Ok(vec![10]));
        assert_eq!(b.await, Ok(vec![20]));
        assert_eq!(c.await, Ok(vec![30]));
        assert_eq!(rig.observed(), [(1, 1), (2, 2)]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn too_large_and_empty_requests_are_never_queued() {
    on_local(async {
        let (handle, mut rig) = Rig::new(3, 10);
        let too_large = handle.submit(vec![1, 2, 3, 4]).await;
        assert_eq!(too_large, Err(SubmitError::TooLarge { events: 4, batch_size_max: 3 }));
        let message = too_large.expect_err("refused").to_string();
        assert_eq!(message, "request of 4 events exceeds batch_size_max 3");
        assert_eq!(handle.submit(Vec::new()).await, Ok(Vec::new()));
        assert_eq!(handle.queue_depth(), 0);
        let a = enqueue(handle.submit(vec![1, 2, 3]));
        assert_eq!(rig.flush_started().await, [1, 2, 3], "the first flush is the full one");
        rig.release(1);
        assert_eq!(a.await, Ok(vec![10, 20, 30]));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_flush_error_reaches_every_request_of_that_batch_only() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(handle.submit(vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        let b = enqueue(handle.submit(vec![2]));
        let c = enqueue(handle.submit(vec![POISON]));
        let d = enqueue(handle.submit(vec![3, 4]));
        rig.release(2);
        assert_eq!(a.await, Ok(vec![10]));
        let failed = Err(SubmitError::Flush(Failed("poisoned batch")));
        assert_eq!(b.await, failed);
        assert_eq!(c.await, failed);
        assert_eq!(d.await, failed);
        let e = enqueue(handle.submit(vec![5]));
        rig.release(1);
        assert_eq!(e.await, Ok(vec![50]));
        assert_eq!(rig.observed(), [(1, 1), (3, 4), (1, 1)]);
    })
    .await;
}

/// A submit that owns a clone of the handle, so the caller may drop its own.
fn owned(handle: &BatcherHandle<Gated>, events: Vec<u32>) -> impl Future<Output = Answer> + use<> {
    let handle = handle.clone();
    async move { handle.submit(events).await }
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_every_handle_drains_the_queue_then_ends_the_loop() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(owned(&handle, vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        let b = enqueue(owned(&handle, vec![2]));
        let c = enqueue(owned(&handle, vec![3, 4]));
        drop(handle);
        rig.release(2);
        assert_eq!(a.await, Ok(vec![10]));
        assert_eq!(b.await, Ok(vec![20]));
        assert_eq!(c.await, Ok(vec![30, 40]));
        assert_eq!(rig.observed(), [(1, 1), (2, 3)]);
        rig.run.await.expect("loop ends without panicking");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn submit_after_the_loop_is_gone_is_shutting_down() {
    let flusher = Gated { started: mpsc::unbounded_channel().0, gate: Rc::new(Semaphore::new(0)) };
    let config = BatcherConfig { batch_size_max: 10, queue_depth_max: 10 };
    let (handle, run) = batcher(flusher, config, Arc::new(Recorder::default()));
    drop(run);
    assert_eq!(handle.submit(vec![1]).await, Err(SubmitError::ShuttingDown));
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_outcome_count_panics_the_loop_and_waiters_see_shutting_down() {
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let a = enqueue(handle.submit(vec![SHORT]));
        assert_eq!(rig.flush_started().await, [SHORT]);
        rig.release(1);
        assert_eq!(a.await, Err(SubmitError::ShuttingDown));
        let panic = rig.run.await.expect_err("loop panicked").into_panic();
        let message = panic.downcast_ref::<String>().expect("formatted panic message");
        let expected =
            "Flusher::flush returned 0 outcomes for 1 events; it must return one per event";
        assert_eq!(message, expected);
        assert_eq!(handle.submit(vec![1]).await, Err(SubmitError::ShuttingDown));
    })
    .await;
}

/// A subscriber that records the spans created (name, explicit parent), the
/// `follows_from` links between them, and which span is entered, so `Span::current()`
/// works as with any real subscriber.
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<SpanLogInner>>);

#[derive(Default)]
struct SpanLogInner {
    created: Vec<(&'static str, Option<u64>)>,
    metadata: Vec<&'static tracing::Metadata<'static>>,
    follows: Vec<(u64, u64)>,
    entered: Vec<u64>,
}

impl SpanLog {
    fn inner(&self) -> std::sync::MutexGuard<'_, SpanLogInner> {
        self.0.lock().expect("not poisoned")
    }

    fn names(&self) -> Vec<&'static str> {
        self.inner().created.iter().map(|(name, _)| *name).collect()
    }
}

impl tracing::Subscriber for SpanLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut inner = self.inner();
        let parent = span.parent().map(tracing::span::Id::into_u64);
        inner.created.push((span.metadata().name(), parent));
        inner.metadata.push(span.metadata());
        tracing::span::Id::from_u64(inner.created.len() as u64)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.inner().follows.push((span.into_u64(), follows.into_u64()));
    }

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, span: &tracing::span::Id) {
        self.inner().entered.push(span.into_u64());
    }

    fn exit(&self, _: &tracing::span::Id) {
        self.inner().entered.pop();
    }

    fn current_span(&self) -> tracing_core::span::Current {
        let inner = self.inner();
        match inner.entered.last() {
            Some(&id) => {
                let metadata = inner.metadata[usize::try_from(id - 1).expect("small ids")];
                tracing_core::span::Current::new(tracing::span::Id::from_u64(id), metadata)
            }
            None => tracing_core::span::Current::none(),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn untraced_requests_create_no_span_and_traced_ones_link_their_flush() {
    use tracing::Instrument;
    let log = SpanLog::default();
    let _default = tracing::subscriber::set_default(log.clone());
    on_local(async {
        let (handle, mut rig) = Rig::new(10, 10);
        let untraced = enqueue(handle.submit(vec![1]));
        assert_eq!(rig.flush_started().await, [1]);
        rig.release(1);
        assert_eq!(untraced.await, Ok(vec![10]));
        assert!(log.names().is_empty(), "no span for an untraced request: {:?}", log.names());

        let request = tracing::info_span!("request");
        let traced = enqueue(handle.submit(vec![2, 3]).instrument(request));
        assert_eq!(rig.flush_started().await, [2, 3]);
        rig.release(1);
        assert_eq!(traced.await, Ok(vec![20, 30]));
    })
    .await;
    let inner = log.inner();
    let names: Vec<_> = inner.created.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["request", "batch", "flush"]);
    let (request, batch, flush) = (1, 2, 3);
    assert_eq!(inner.created[1].1, Some(request), "the batch span is the request's child");
    assert_eq!(inner.created[2].1, None, "the flush span is a root: it serves many traces");
    assert!(inner.follows.contains(&(flush, batch)), "the flush links the batch");
    assert!(inner.follows.contains(&(batch, flush)), "the batch links the flush");
}
