//! The HTTP clients: one pooled hyper client (HTTP/1.1 keep-alive or h2c) for pre-flight,
//! setup and verification, and [`Connection`]s for the load itself, each owned by one
//! worker on one generator thread (HTTP/1.1: [`crate::http1`] over the worker's own
//! socket; h2c: a stream on its thread's hyper connection; no pool, no lock shared
//! across threads). Both send a bearer key and honour a per-request timeout, which
//! covers connecting, sending and reading the whole body.
//!
//! It only moves bytes and statuses; it must never interpret ledger results or retry
//! on its own (a retry is a workload decision, with the same id).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::http1::Http1;
use tokio::net::TcpStream;

/// A transport failure: no HTTP status was received.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// No answer within `--timeout`.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed during the exchange.
    #[error("{0}")]
    Broken(String),
}

/// A status and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Bytes,
}

/// A cloneable client for one target.
#[derive(Clone, Debug)]
pub struct Client {
    hyper: Hyper<HttpConnector, Full<Bytes>>,
    base: String,
    authorization: Option<String>,
    timeout: Duration,
    target: Arc<Target>,
}

/// Where and how the load's connections connect, shared by all of them (read only).
#[derive(Debug)]
struct Target {
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    host: HeaderValue,
    /// `http://host:port`, for HTTP/2's absolute URIs.
    base: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    http2: bool,
}

impl Target {
    fn new(base: &str, authorization: Option<&str>, timeout: Duration, http2: bool) -> Target {
        let uri: Option<Uri> = base.parse().ok();
        let authority = uri.as_ref().and_then(Uri::authority);
        let host = authority.map_or("localhost", |a| a.host());
        let port = authority.and_then(|a| a.port_u16()).unwrap_or(80);
        let host_header = authority.map_or("localhost", |a| a.as_str());
        Target {
            address: format!("{host}:{port}"),
            host: HeaderValue::from_str(host_header)
                .unwrap_or(HeaderValue::from_static("localhost")),
            base: base.to_owned(),
            authorization: authorization.and_then(|a| HeaderValue::from_str(a).ok()),
            timeout,
            http2,
        }
    }
}

impl Client {
    /// A client for `base` (no trailing slash).
    pub fn new(
        base: &str,
        key: Option<&str>,
        timeout: Duration,
        connections: usize,
        http2: bool,
    ) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let hyper = Hyper::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .http2_only(http2)
            .build(connector);
        let authorization = key.map(|key| format!("Bearer {key}"));
        let target = Arc::new(Target::new(base, authorization.as_deref(), timeout, http2));
        Client { hyper, base: base.to_owned(), authorization, timeout, target }
    }

    /// A new, not yet connected connection of the load. HTTP/2 connections made from
    /// one [`Http2Slot`] share its one connection as streams.
    pub fn connection(&self, slot: &Http2Slot) -> Connection {
        let lane = match self.target.http2 {
            true => Lane::Http2(slot.clone()),
            false => Lane::Http1 { connection: None, request: Vec::new() },
        };
        Connection { target: self.target.clone(), lane }
    }

    /// The target's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` with the key.
    pub async fn get(&self, path: &str) -> Result<Response, TransportError> {
        self.send(Method::GET, path, None).await
    }

    /// GET `path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> Result<Response, TransportError> {
        let request = self.request(Method::GET, path, None, false)?;
        self.exchange(request).await
    }

    /// POST a JSON body to `path` with the key.
    pub async fn post(&self, path: &str, body: Bytes) -> Result<Response, TransportError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response, TransportError> {
        let request = self.request(method, path, body, true)?;
        self.exchange(request).await
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authorised: bool,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let (true, Some(value)) = (authorised, &self.authorization) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| TransportError::Broken(e.to_string()))
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Response, TransportError> {
        let exchange = async {
            let response = self.hyper.request(request).await.map_err(classify)?;
            let status = response.status();
            let body = Limited::new(response.into_body(), RESPONSE_BYTES_MAX).collect().await;
            let body = body.map_err(|e| TransportError::Broken(e.to_string()))?.to_bytes();
            Ok(Response { status, body })
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(TransportError::Timeout))
    }
}

/// Largest response body read: an 8190-event result array is about 1 MiB.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

fn classify(error: hyper_util::client::legacy::Error) -> TransportError {
    let text = error_chain(&error);
    if error.is_connect() { TransportError::Connect(text) } else { TransportError::Broken(text) }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP/2 connection the workers of one generator thread share (h2c, one per thread).
pub type Http2Slot = Arc<tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>>;

/// One worker's connection: HTTP/1.1 keep-alive on its own socket ([`crate::http1`],
/// reconnected after a failure), or a stream on its thread's HTTP/2 connection.
#[derive(Debug)]
pub struct Connection {
    target: Arc<Target>,
    lane: Lane,
}

#[derive(Debug)]
enum Lane {
    Http1 { connection: Option<Http1>, request: Vec<u8> },
    Http2(Http2Slot),
}

impl Connection {
    /// GET `path` with the key.
    pub async fn get(&mut self, path: &str) -> Result<Response, TransportError> {
        self.exchange(Method::GET, path, None, true).await
    }

    /// GET `path` without credentials.
    pub async fn get_anonymous(&mut self, path: &str) -> Result<Response, TransportError> {
        self.exchange(Method::GET, path, None, false).await
    }

    /// POST a JSON body to `path` with the key.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Response, TransportError> {
        self.exchange(Method::POST, path, Some(body), true).await
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authorised: bool,
    ) -> Result<Response, TransportError> {
        let target = self.target.clone();
        let authorization = target.authorization.as_ref().filter(|_| authorised);
        match &mut self.lane {
            Lane::Http1 { connection, request } => {
                request.clear();
                let authorization = authorization.map(HeaderValue::as_bytes);
                let host = target.host.as_bytes();
                crate::http1::encode(request, &method, path, host, authorization, body.as_deref());
                exchange_http1(&target, connection, request).await
            }
            Lane::Http2(slot) => {
                let request = http2_request(&target, method, path, body, authorization)?;
                let exchange = async {
                    let mut sender = ready_http2(&target, slot).await?;
                    read(sender.send_request(request).await.map_err(broken)?).await
                };
                within(target.timeout, exchange).await
            }
        }
    }
}

async fn within(
    timeout: Duration,
    exchange: impl Future<Output = Result<Response, TransportError>>,
) -> Result<Response, TransportError> {
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(TransportError::Timeout))
}

/// One exchange on the worker's HTTP/1.1 connection (made first if there is none). After
/// a failure the connection is dropped: its state is unknown.
async fn exchange_http1(
    target: &Target,
    slot: &mut Option<Http1>,
    request: &[u8],
) -> Result<Response, TransportError> {
    if slot.as_ref().is_some_and(|c| c.closed) {
        *slot = None;
    }
    let exchange = async {
        if slot.is_none() {
            let connection = Http1::connect(&target.address)
                .await
                .map_err(|e| TransportError::Connect(format!("{}: {e}", target.address)))?;
            *slot = Some(connection);
        }
        let connection =
            slot.as_mut().ok_or_else(|| TransportError::Broken("no connection".to_owned()))?;
        let (status, body) = connection
            .exchange(request, RESPONSE_BYTES_MAX)
            .await
            .map_err(TransportError::Broken)?;
        let status =
            StatusCode::from_u16(status).map_err(|e| TransportError::Broken(e.to_string()))?;
        Ok(Response { status, body })
    };
    let answer = within(target.timeout, exchange).await;
    if answer.is_err() {
        *slot = None;
    }
    answer
}

fn http2_request(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    authorization: Option<&HeaderValue>,
) -> Result<Request<Full<Bytes>>, TransportError> {
    let uri = Uri::try_from(format!("{}{path}", target.base))
        .map_err(|e| TransportError::Broken(e.to_string()))?;
    let mut request = Request::new(Full::new(body.clone().unwrap_or_default()));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    if let Some(value) = authorization {
        headers.insert(header::AUTHORIZATION, value.clone());
    }
    if body.is_some() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(request)
}

/// A status and the whole body of `response`.
async fn read(response: http::Response<Incoming>) -> Result<Response, TransportError> {
    let status = response.status();
    let body = Limited::new(response.into_body(), RESPONSE_BYTES_MAX).collect().await;
    let body = body.map_err(|e| TransportError::Broken(e.to_string()))?.to_bytes();
    Ok(Response { status, body })
}

async fn ready_http2(
    target: &Target,
    slot: &Http2Slot,
) -> Result<http2::SendRequest<Full<Bytes>>, TransportError> {
    let mut slot = slot.lock().await;
    if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
        return Ok(sender.clone());
    }
    *slot = None;
    let stream = connect(target).await?;
    let (sender, connection) =
        http2::handshake(TokioExecutor::new(), stream).await.map_err(broken)?;
    tokio::spawn(connection);
    *slot = Some(sender.clone());
    Ok(sender)
}

async fn connect(target: &Target) -> Result<TokioIo<TcpStream>, TransportError> {
    let stream = TcpStream::connect(&target.address)
        .await
        .map_err(|e| TransportError::Connect(format!("{}: {e}", target.address)))?;
    stream.set_nodelay(true).map_err(|e| TransportError::Connect(e.to_string()))?;
    Ok(TokioIo::new(stream))
}

fn broken(error: hyper::Error) -> TransportError {
    TransportError::Broken(error_chain(&error))
}
