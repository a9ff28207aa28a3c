//! Traces and CloudWatch embedded metrics through the real binary.
//!
//! Traces go to a real OTLP/HTTP endpoint run by the test: a hyper server that accepts
//! `POST /v1/traces` and decodes each body as an `ExportTraceServiceRequest` with the
//! OpenTelemetry protocol's own prost types (there is no collector binary on these
//! machines; this is the protocol's receiving end, not a stand-in for a named service).
//! The tests check the request, batch and flush spans and their links, the caller's
//! `traceparent` becoming the parent, the trace id in the JSON log line of the same
//! request, and that without `--otlp-endpoint` nothing is sent and no log line carries a
//! trace id. EMF lines are read from the gateway's stdout as it prints them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

use crate::support::{self, Api, Gateway, Spawned, uuid};

const LEDGER: u64 = 840;
/// The W3C trace id and parent span id the client sends in `traceparent`.
const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT_ID: &str = "00f067aa0ba902b7";
/// How long the tests wait for something the gateway does on its own (an EMF line).
const WAIT: Duration = Duration::from_secs(20);

/// What the OTLP receiver got: every export request, decoded, with its resource's
/// `service.name`.
#[derive(Clone, Default)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Received {
    fn export_requests(&self) -> usize {
        self.requests.lock().expect("receiver lock").len()
    }

    /// Every span received, with the `service.name` of its resource.
    fn spans(&self) -> Vec<(String, Span)> {
        let requests = self.requests.lock().expect("receiver lock");
        let mut spans = Vec::new();
        for request in requests.iter() {
            for resource_spans in &request.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    spans.extend(scope.spans.iter().map(|s| (service.clone(), s.clone())));
                }
            }
        }
        spans
    }
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A span attribute as text (`None` when absent).
fn attribute(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    text(kv.value.as_ref()?.value.as_ref()?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts an OTLP/HTTP trace receiver on a kernel-chosen port; runs until the test ends.
async fn otlp_receiver() -> (SocketAddr, Received) {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the receiver");
    let addr = listener.local_addr().expect("the receiver's address");
    let received = Received::default();
    let shared = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let received = shared.clone();
            let service = service_fn(move |request| receive(received.clone(), request));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

/// Accepts `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`; anything else
/// is answered 404 or 400 (and so fails the gateway's export, visible in its metrics).
async fn receive(
    received: Received,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let answer = |status: StatusCode| {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert("content-type", "application/x-protobuf".parse().expect("a header value"));
        Ok(response)
    };
    if request.method() != Method::POST || request.uri().path() != "/v1/traces" {
        return answer(StatusCode::NOT_FOUND);
    }
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-protobuf") {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let Ok(body) = request.into_body().collect().await else {
        return answer(StatusCode::BAD_REQUEST);
    };
    match ExportTraceServiceRequest::decode(body.to_bytes()) {
        Ok(decoded) => {
            received.requests.lock().expect("receiver lock").push(decoded);
            answer(StatusCode::OK)
        }
        Err(_) => answer(StatusCode::BAD_REQUEST),
    }
}

fn account(id: u128) -> Value {
    json!({"id": uuid(id), "ledger": LEDGER, "code": 1})
}

fn transfer(id: u128) -> Value {
    json!({
        "id": uuid(id),
        "debit_account_id": uuid(1),
        "credit_account_id": uuid(2),
        "amount": 5,
        "ledger": LEDGER,
        "code": 1,
    })
}

/// POSTs `body` to `path` with a request id and, when given, a `traceparent`.
async fn post(
    api: &Api,
    auth: &str,
    path: &str,
    body: &Value,
    ids: (&str, Option<&str>),
) -> StatusCode {
    let (request_id, traceparent) = ids;
    let mut headers = vec![("authorization", auth), ("x-request-id", request_id)];
    if let Some(traceparent) = traceparent {
        headers.push(("traceparent", traceparent));
    }
    let bytes = serde_json::to_vec(body).expect("serialising a body");
    api.call(Method::POST, path, &headers, bytes).await.status
}

/// The gateway's JSON log line `message` for `request_id`.
fn log_line(stdout: &str, request_id: &str) -> Value {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["request_id"] == request_id && line["fields"]["message"] == "request"
        })
        .unwrap_or_else(|| panic!("no `request` log line for {request_id} in:\n{stdout}"))
}

/// SIGTERM and wait, off the runtime: the receiver must keep answering while the
/// gateway exports its last spans.
async fn stop(gateway: Gateway) -> support::Finished {
    tokio::task::spawn_blocking(move || gateway.stop()).await.expect("stopping the gateway")
}

fn find<'a>(spans: &'a [(String, Span)], what: &str, matches: impl Fn(&Span) -> bool) -> &'a Span {
    let found = spans.iter().map(|(_, span)| span).find(|span| matches(span));
    found.unwrap_or_else(|| {
        let names: Vec<_> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        panic!("no {what} among the spans received: {names:?}")
    })
}

#[tokio::test]
async fn request_batch_and_flush_spans_reach_an_otlp_receiver_linked_and_logged() {
    let (receiver, received) = otlp_receiver().await;
    let dir = support::data_dir();
    let auth = support::create_tenant(dir.path(), "acme");
    let endpoint = format!("http://{receiver}");
    let flags =
        ["--otlp-endpoint", &endpoint, "--service-name", "protea-it", "--log", "gateway=debug"];
    let gateway = Gateway::start(dir.path(), &flags);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let accounts = json!([account(1), account(2)]);
    assert_eq!(
        post(&api, &auth, "/v1/accounts", &accounts, ("otel-accounts", None)).await,
        StatusCode::OK
    );
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01");
    let status =
        post(&api, &auth, "/v1/transfers", &transfer(10), ("otel-transfer", Some(&traceparent)))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    // SIGTERM: the gateway exports the spans still queued before it exits.
    let finished = stop(gateway).await;
    assert!(
        finished.status.success(),
        "gateway exit {}; stderr:\n{}",
        finished.status,
        finished.stderr
    );
    let spans = received.spans();
    assert!(spans.iter().all(|(service, _)| service == "protea-it"), "service.name on every span");

    let request = find(&spans, "request span of otel-transfer", |s| {
        attribute(s, "request_id").as_deref() == Some("otel-transfer")
    });
    assert_eq!(request.name, "POST /v1/transfers");
    assert_eq!(attribute(request, "http.route").as_deref(), Some("/v1/transfers"));
    assert_eq!(attribute(request, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("201"));
    assert_eq!(hex(&request.trace_id), CLIENT_TRACE_ID, "the client's traceparent is continued");
    assert_eq!(hex(&request.parent_span_id), CLIENT_PARENT_ID, "the client's span is the parent");

    let batch = find(&spans, "batch span under the request", |s| {
        s.name == "batch" && s.parent_span_id == request.span_id
    });
    assert_eq!(batch.trace_id, request.trace_id);
    assert_eq!(attribute(batch, "events").as_deref(), Some("1"));
    let flush = find(&spans, "flush span linking the batch", |s| {
        s.name == "flush"
            && s.links.iter().any(|l| l.span_id == batch.span_id && l.trace_id == batch.trace_id)
    });
    assert!(flush.parent_span_id.is_empty(), "a flush serves many traces: it is a root span");
    assert!(batch.links.iter().any(|l| l.span_id == flush.span_id), "the batch links its flush");
    let flushed_events: u64 =
        attribute(flush, "events").and_then(|e| e.parse().ok()).expect("events on flush");
    assert!(flushed_events >= 1);
    assert_eq!(attribute(batch, "batch.events"), attribute(flush, "events"));
    assert!(attribute(flush, "requests").is_some() && attribute(flush, "duration_us").is_some());
    assert_eq!(attribute(flush, "ok").as_deref(), Some("true"));

    let untraced = find(&spans, "request span of otel-accounts", |s| {
        attribute(s, "request_id").as_deref() == Some("otel-accounts")
    });
    assert!(untraced.parent_span_id.is_empty(), "no traceparent: the request starts a trace");
    assert_ne!(hex(&untraced.trace_id), CLIENT_TRACE_ID);

    let line = log_line(&finished.stdout, "otel-transfer");
    assert_eq!(line["trace_id"], CLIENT_TRACE_ID, "the log line names the request's trace: {line}");
    assert_eq!(line["span_id"], hex(&request.span_id), "and its span: {line}");
    let accounts_line = log_line(&finished.stdout, "otel-accounts");
    assert_eq!(accounts_line["trace_id"], hex(&untraced.trace_id));
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_sent_and_logs_carry_no_trace_ids() {
    let (receiver, received) = otlp_receiver().await;
    let dir = support::data_dir();
    let auth = support::create_tenant(dir.path(), "acme");
    // The standard OpenTelemetry variables point at the receiver: only --otlp-endpoint
    // turns tracing on.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}")),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("http://{receiver}/v1/traces")),
    ];
    let gateway = Gateway::start_with_env(dir.path(), &["--log", "gateway=debug"], &env);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let accounts = json!([account(1), account(2)]);
    assert_eq!(
        post(&api, &auth, "/v1/accounts", &accounts, ("plain-accounts", None)).await,
        StatusCode::OK
    );
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01");
    let status =
        post(&api, &auth, "/v1/transfers", &transfer(10), ("plain-transfer", Some(&traceparent)))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let finished = stop(gateway).await;
    assert!(finished.status.success(), "gateway exit {}", finished.status);
    assert_eq!(received.export_requests(), 0, "no endpoint, no export");
    let line = log_line(&finished.stdout, "plain-transfer");
    assert!(line.get("trace_id").is_none() && line.get("span_id").is_none(), "{line}");
    assert!(!finished.stdout.contains("trace_id"), "no log line carries a trace id");
    assert!(!finished.stdout.contains("\"_aws\""), "EMF is off by default");
}

/// Starts a gateway with exactly `flags` (plus data dir, listen and threads) through
/// [`Spawned`], so its stdout can be read while it runs; returns it and its address.
fn spawn_reading(dir: &std::path::Path, flags: &[&str]) -> (Spawned, SocketAddr) {
    let dir = dir.to_str().expect("a UTF-8 temporary path");
    let mut args = vec!["--data-dir", dir, "--listen", "127.0.0.1:0", "--threads", "2"];
    args.extend_from_slice(flags);
    let mut spawned = Spawned::start(&args);
    let line =
        spawned.wait_for_line(WAIT, support::is_listening_line).expect("the gateway listens");
    let event: Value = serde_json::from_str(&line).expect("a JSON log line");
    let addr = event["fields"]["addr"].as_str().and_then(|a| a.parse().ok()).expect("an address");
    (spawned, addr)
}

fn emf_line(line: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).ok()?;
    value.get("_aws").is_some().then_some(value)
}

#[tokio::test]
async fn emf_lines_are_printed_every_interval_when_asked_and_never_when_not() {
    let (on_dir, off_dir) = (support::data_dir(), support::data_dir());
    let auth = support::create_tenant(on_dir.path(), "acme");
    let emf = [
        "--cloudwatch-emf",
        "--cloudwatch-emf-interval-seconds",
        "1",
        "--service-name",
        "protea-emf",
    ];
    let (mut on, addr) = spawn_reading(on_dir.path(), &emf);
    let (mut off, _) = spawn_reading(off_dir.path(), &["--cloudwatch-emf-interval-seconds", "1"]);
    let api = Api::http1(addr);
    api.wait_ready().await;
    let accounts = json!([account(1), account(2)]);
    assert_eq!(
        post(&api, &auth, "/v1/accounts", &accounts, ("emf-accounts", None)).await,
        StatusCode::OK
    );
    for id in 10..15 {
        assert_eq!(
            post(&api, &auth, "/v1/transfers", &transfer(id), ("emf", None)).await,
            StatusCode::CREATED
        );
    }
    // The five transfers may straddle two intervals: add up the route's lines until
    // they are all counted.
    let (mut requests, mut latency_counts, mut route) = (0.0, 0.0, Value::Null);
    while requests < 5.0 {
        let line = on
            .wait_for_line(WAIT, |line| {
                emf_line(line).is_some_and(|v| v["Route"] == "/v1/transfers")
            })
            .expect("an EMF line for /v1/transfers");
        route = emf_line(&line).expect("EMF JSON");
        requests += route["Requests"].as_f64().expect("Requests");
        let latency = &route["RequestLatency"];
        latency_counts += latency["Counts"]
            .as_array()
            .expect("Counts")
            .iter()
            .filter_map(Value::as_f64)
            .sum::<f64>();
        assert!(latency["Values"].as_array().expect("Values").len() <= 100);
        assert_eq!(route["Errors5xx"], 0.0);
    }
    assert_eq!((requests, latency_counts), (5.0, 5.0), "each transfer counted once: {route}");
    let directive = &route["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Protea");
    assert_eq!(directive["Dimensions"], json!([["Service", "Route"]]));
    assert_eq!(route["Service"], "protea-emf");
    assert!(route["_aws"]["Timestamp"].as_u64().is_some());
    let names: Vec<&str> = directive["Metrics"]
        .as_array()
        .expect("Metrics")
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert_eq!(names, ["Requests", "Errors5xx", "Errors4xx", "RateLimited", "RequestLatency"]);
    // The service line of the same interval comes first, then the routes.
    let service = on
        .seen()
        .iter()
        .filter_map(|line| emf_line(line))
        .filter(|v| v["Route"].is_null())
        .find(|v| v["_aws"]["Timestamp"] == route["_aws"]["Timestamp"])
        .expect("the service line of the same interval");
    assert_eq!(service["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service"]]));
    for name in ["FlushLatency", "BatchSize", "QueueDepth", "AuditQueueDepth", "Requests"] {
        assert!(service.get(name).is_some(), "{name} in the service line: {service}");
    }
    // A later interval prints again (at least one more service line).
    on.wait_for_line(WAIT, |line| {
        emf_line(line).is_some_and(|v| v["_aws"]["Timestamp"] != route["_aws"]["Timestamp"])
    })
    .expect("a line of a later interval");
    // Meanwhile the gateway without --cloudwatch-emf printed none.
    let _ = off.wait_for_line(Duration::ZERO, |_| false);
    assert!(off.seen().iter().all(|line| emf_line(line).is_none()), "EMF off: no line");
    assert!(off.try_status().is_none(), "the EMF-off gateway still runs");
    drop(on);
    drop(off);
}
