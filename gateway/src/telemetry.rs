//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `--otlp-endpoint` is set.
//!
//! [`init`] builds a tracer provider whose only processor is a [`BoundedSpanProcessor`]:
//! finished spans go into a bounded queue (a full queue drops the span and counts it in
//! `protea_trace_spans_dropped_total`) and one background thread exports them in batches,
//! so a request never waits for the collector. The request span ([`request_span`])
//! continues an incoming W3C `traceparent`; the batcher (in `pool`) opens the batch and
//! flush spans and links them with `follows_from`, which `tracing-opentelemetry` turns
//! into span links.
//!
//! Without an endpoint nothing here runs: no layer is installed, [`request_span`] is never
//! called and the request path allocates nothing for tracing. Nothing here may put a
//! request body, a credential or personal information on a span.

use std::sync::LazyLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use prometheus_client::metrics::counter::Counter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::ObservabilityConfig;

/// Most finished spans waiting for export; past it, spans are dropped and counted.
pub const SPAN_QUEUE_MAX: usize = 4096;
/// Most spans in one OTLP export request.
pub const EXPORT_BATCH_SPANS_MAX: usize = 512;
/// Longest a finished span waits before its batch is exported.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Time one export request may take (connect, send, answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most links one span keeps (a flush links the requests it committed).
pub const SPAN_LINKS_MAX: u32 = 256;

/// Spans dropped because the export queue was full (shared with [`crate::metrics`]).
pub static SPANS_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);
/// Spans the collector accepted.
pub static SPANS_EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);
/// Export requests that failed (the spans in them are lost, never retried unboundedly).
pub static EXPORT_FAILURES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter: {0}")]
    Exporter(String),
    /// The export thread could not be started.
    #[error("starting the span export thread: {0}")]
    Thread(std::io::Error),
}

/// A running tracer provider; [`Telemetry::shutdown`] exports what is queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The tracer spans are created with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("protea-gateway")
    }

    /// Exports the spans still queued (bounded by the export timeout) and stops.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("span export did not shut down cleanly: {error}");
        }
    }
}

/// Starts span export when `config` names an endpoint; `None` when tracing is off.
pub fn init(config: &ObservabilityConfig) -> Result<Option<Telemetry>, TelemetryError> {
    let Some(endpoint) = &config.otlp_endpoint else { return Ok(None) };
    let resource = Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(std::collections::HashMap::new())
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    exporter.set_resource(&resource);
    let processor = BoundedSpanProcessor::start(exporter)?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_max_links_per_span(SPAN_LINKS_MAX)
        .with_span_processor(processor)
        .build();
    Ok(Some(Telemetry { provider }))
}

/// The span of one HTTP request, continuing the caller's trace when the request carries
/// a valid W3C `traceparent`. Route and status are recorded when known.
pub fn request_span(
    method: &'static str,
    request_id: &str,
    headers: &http::HeaderMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = method,
        otel.kind = "server",
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if opentelemetry::trace::TraceContextExt::has_active_span(&parent) {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records a finished request's route template and status on its span.
pub fn finish_request_span(
    span: &tracing::Span,
    method: &'static str,
    route: &'static str,
    status: u16,
) {
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    // The span is already started (a log line or the parent asked for its context), so
    // its name is changed on the OpenTelemetry span itself.
    let context = span.context();
    opentelemetry::trace::TraceContextExt::span(&context).update_name(format!("{method} {route}"));
}

/// Reads W3C trace-context headers from a request.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// What the export thread receives.
enum Message {
    Span(Box<SpanData>),
    /// Export everything queued, then answer.
    Flush(SyncSender<()>),
    /// Export everything queued, answer, and stop.
    Shutdown(SyncSender<()>),
}

/// A span processor with a bounded queue and one export thread. `on_end` never blocks:
/// when [`SPAN_QUEUE_MAX`] spans are waiting, the span is dropped and counted.
#[derive(Debug)]
pub struct BoundedSpanProcessor {
    queue: SyncSender<Message>,
}

impl BoundedSpanProcessor {
    /// Starts the export thread for `exporter`.
    pub fn start<E: SpanExporter + 'static>(exporter: E) -> Result<Self, TelemetryError> {
        let (queue, receiver) = sync_channel(SPAN_QUEUE_MAX);
        std::thread::Builder::new()
            .name("protea-span-export".into())
            .spawn(move || export_loop(&exporter, &receiver))
            .map_err(TelemetryError::Thread)?;
        Ok(Self { queue })
    }

    fn control(&self, message: fn(SyncSender<()>) -> Message, timeout: Duration) -> OTelSdkResult {
        let (done, wait) = sync_channel(1);
        self.queue.send(message(done)).map_err(|_| OTelSdkError::AlreadyShutdown)?;
        wait.recv_timeout(timeout).map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl opentelemetry_sdk::trace::SpanProcessor for BoundedSpanProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                SPANS_DROPPED.inc();
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Message::Flush, EXPORT_TIMEOUT * 2)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.control(Message::Shutdown, timeout)
    }
}

/// Collects spans into batches of at most [`EXPORT_BATCH_SPANS_MAX`] and exports each
/// batch once it is full or its first span has waited [`EXPORT_DELAY`].
fn export_loop<E: SpanExporter>(exporter: &E, receiver: &Receiver<Message>) {
    let mut batch = Vec::with_capacity(EXPORT_BATCH_SPANS_MAX);
    let mut deadline = None;
    loop {
        let wait =
            deadline.map_or(EXPORT_DELAY, |d: Instant| d.saturating_duration_since(Instant::now()));
        match receiver.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                deadline.get_or_insert_with(|| Instant::now() + EXPORT_DELAY);
                batch.push(*span);
                if batch.len() >= EXPORT_BATCH_SPANS_MAX {
                    export(exporter, &mut batch);
                    deadline = None;
                }
            }
            Ok(Message::Flush(done)) => {
                drain_queued(exporter, receiver, &mut batch);
                deadline = None;
                let _ = done.send(());
            }
            Ok(Message::Shutdown(done)) => {
                drain_queued(exporter, receiver, &mut batch);
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(exporter, &mut batch);
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(exporter, &mut batch);
                return;
            }
        }
    }
}

/// Exports `batch` and the spans already queued behind it (bounded: the queue holds at
/// most [`SPAN_QUEUE_MAX`]).
fn drain_queued<E: SpanExporter>(
    exporter: &E,
    receiver: &Receiver<Message>,
    batch: &mut Vec<SpanData>,
) {
    for _ in 0..SPAN_QUEUE_MAX {
        match receiver.try_recv() {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= EXPORT_BATCH_SPANS_MAX {
                    export(exporter, batch);
                }
            }
            Ok(Message::Flush(done) | Message::Shutdown(done)) => {
                let _ = done.send(());
            }
            Err(_) => break,
        }
    }
    export(exporter, batch);
}

fn export<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::replace(batch, Vec::with_capacity(EXPORT_BATCH_SPANS_MAX));
    let count = spans.len() as u64;
    match block_on(exporter.export(spans)) {
        Ok(()) => {
            SPANS_EXPORTED.inc_by(count);
        }
        Err(error) => {
            EXPORT_FAILURES.inc();
            tracing::warn!(spans = count, error = %error, "span export failed; spans dropped");
        }
    }
}

/// Wakes the export thread when the export future it waits on can progress.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread (the export thread has no runtime: the
/// OTLP client is blocking, so the future is normally ready at its first poll).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let waker = Waker::from(std::sync::Arc::new(ThreadWaker(std::thread::current())));
    let mut context = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// The tracer of a running [`Telemetry`], as the logging layer needs it.
pub fn layer<S>(telemetry: &Telemetry) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(telemetry.tracer())
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}
