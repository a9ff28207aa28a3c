//! The HTTP clients: one pooled hyper client (HTTP/1.1 keep-alive or HTTP/2; TLS through
//! hyper-rustls for `https://` targets) for pre-flight, setup and verification, and
//! [`Connection`]s for the load itself, each owned by one worker on one generator thread
//! (HTTP/1.1: [`crate::http1`] over the worker's own connection; HTTP/2: a stream on its
//! thread's hyper connection; no pool, no lock shared across threads). Both
//! authenticate with the run's [`Credentials`] (a signature made per request, or a
//! bearer key) and honour a per-request timeout, which covers connecting, the TLS
//! handshake, sending and reading the whole body.
//!
//! A request is signed over its target exactly as it goes on the wire: the path string
//! [`crate::http1`] writes, or the path and query of the URI hyper sends.
//!
//! It only moves bytes and statuses; it must never interpret ledger results or retry
//! on its own (a retry is a workload decision, with the same id).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::auth::Credentials;
use crate::http1::Http1;
use crate::tls::{self, Tls};
use crate::transport::{self, Stream};

/// A transport failure: no HTTP status was received.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// No answer within `--timeout`.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made (TCP or the TLS handshake).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed during the exchange (or the request could not be made).
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

/// What a [`Client`] is made from, once per run.
#[derive(Debug)]
pub struct Settings {
    /// Base URL without a trailing slash: `http://HOST[:PORT]` or `https://HOST[:PORT]`.
    pub base: String,
    /// The tenant's credentials; without them no request carries `Authorization`.
    pub credentials: Option<Credentials>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Idle connections the pooled client keeps.
    pub connections: usize,
    /// HTTP/2: with prior knowledge on `http://`, by ALPN `h2` on `https://`.
    pub http2: bool,
    /// TLS: required for an `https://` base (without it nothing is trusted and every
    /// handshake fails), `None` for `http://`.
    pub tls: Option<Tls>,
}

/// A cloneable client for one target.
#[derive(Clone, Debug)]
pub struct Client {
    hyper: Hyper<HttpsConnector<HttpConnector>, Full<Bytes>>,
    target: Arc<Target>,
}

/// Where and how every request connects and authenticates, shared by all (read only).
#[derive(Debug)]
struct Target {
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    host: HeaderValue,
    /// The base URL, for hyper's absolute URIs.
    base: String,
    credentials: Option<Credentials>,
    timeout: Duration,
    http2: bool,
    tls: Option<Tls>,
}

impl Target {
    fn new(settings: Settings) -> Target {
        let uri: Option<Uri> = settings.base.parse().ok();
        let authority = uri.as_ref().and_then(Uri::authority);
        let host = authority.map_or("localhost", |a| a.host());
        let default_port = if settings.tls.is_some() { 443 } else { 80 };
        let port = authority.and_then(|a| a.port_u16()).unwrap_or(default_port);
        let host_header = authority.map_or("localhost", |a| a.as_str());
        Target {
            address: format!("{host}:{port}"),
            host: HeaderValue::from_str(host_header)
                .unwrap_or(HeaderValue::from_static("localhost")),
            base: settings.base,
            credentials: settings.credentials,
            timeout: settings.timeout,
            http2: settings.http2,
            tls: settings.tls,
        }
    }

    /// The `Authorization` value of a request to `target` (path and query as sent) with
    /// `body`, or none for an anonymous request or a run without credentials.
    fn authorization(
        &self,
        authorised: bool,
        method: &Method,
        target: &str,
        body: &[u8],
    ) -> Result<Option<HeaderValue>, TransportError> {
        match (&self.credentials, authorised) {
            (Some(credentials), true) => credentials
                .authorization(method, target, body)
                .map(Some)
                .map_err(|e| TransportError::Broken(e.to_string())),
            _ => Ok(None),
        }
    }
}

impl Client {
    /// A client for `settings.base`.
    pub fn new(settings: Settings) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout));
        connector.enforce_http(false);
        let config = match &settings.tls {
            Some(tls) => tls.config(),
            None => Arc::new(tls::plain_target_config()),
        };
        let hyper = Hyper::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.connections)
            .http2_only(settings.http2)
            .build(HttpsConnector::from((connector, config)));
        Client { hyper, target: Arc::new(Target::new(settings)) }
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
        &self.target.base
    }

    /// GET `path` (and query) with the credentials.
    pub async fn get(&self, path: &str) -> Result<Response, TransportError> {
        self.send(Method::GET, path, None, true).await
    }

    /// GET `path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> Result<Response, TransportError> {
        self.send(Method::GET, path, None, false).await
    }

    /// POST a JSON body to `path` with the credentials.
    pub async fn post(&self, path: &str, body: Bytes) -> Result<Response, TransportError> {
        self.send(Method::POST, path, Some(body), true).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authorised: bool,
    ) -> Result<Response, TransportError> {
        let exchange = async {
            let request = hyper_request(&self.target, method, path, body, authorised)?;
            let response = self.hyper.request(request).await.map_err(classify)?;
            read(response).await
        };
        within(self.target.timeout, exchange).await
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

/// The HTTP/2 connection the workers of one generator thread share (h2c, or h2 over TLS;
/// one per thread).
pub type Http2Slot = Arc<tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>>;

/// One worker's connection: HTTP/1.1 keep-alive on its own TCP or TLS connection
/// ([`crate::http1`], reconnected after a failure), or a stream on its thread's HTTP/2
/// connection. A request that has to make the connection includes the connect and the
/// TLS handshake in its latency; the requests after it on the connection do not.
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
    /// GET `path` (and query) with the credentials.
    pub async fn get(&mut self, path: &str) -> Result<Response, TransportError> {
        self.exchange(Method::GET, path, None, true).await
    }

    /// GET `path` without credentials.
    pub async fn get_anonymous(&mut self, path: &str) -> Result<Response, TransportError> {
        self.exchange(Method::GET, path, None, false).await
    }

    /// POST a JSON body to `path` with the credentials.
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
        match &mut self.lane {
            Lane::Http1 { connection, request } => {
                let sent = body.as_deref().unwrap_or_default();
                let authorization = target.authorization(authorised, &method, path, sent)?;
                let authorization = authorization.as_ref().map(HeaderValue::as_bytes);
                request.clear();
                let host = target.host.as_bytes();
                crate::http1::encode(request, &method, path, host, authorization, body.as_deref());
                exchange_http1(&target, connection, request).await
            }
            Lane::Http2(slot) => {
                let exchange = async {
                    let request = hyper_request(&target, method, path, body, authorised)?;
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
            let stream = transport::connect(&target.address, target.tls.as_ref())
                .await
                .map_err(TransportError::Connect)?;
            *slot = Some(Http1::new(stream));
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

/// A request for hyper (the pooled client or an HTTP/2 stream), signed over the path
/// and query of the URI it sends.
fn hyper_request(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    authorised: bool,
) -> Result<Request<Full<Bytes>>, TransportError> {
    let uri = Uri::try_from(format!("{}{path}", target.base))
        .map_err(|e| TransportError::Broken(e.to_string()))?;
    let on_the_wire = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let sent = body.as_deref().unwrap_or_default();
    let authorization = target.authorization(authorised, &method, on_the_wire, sent)?;
    let has_body = body.is_some();
    let mut request = Request::new(Full::new(body.unwrap_or_default()));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    if let Some(value) = authorization {
        headers.insert(header::AUTHORIZATION, value);
    }
    if has_body {
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

async fn connect(target: &Target) -> Result<TokioIo<Stream>, TransportError> {
    let stream = transport::connect(&target.address, target.tls.as_ref())
        .await
        .map_err(TransportError::Connect)?;
    Ok(TokioIo::new(stream))
}

fn broken(error: hyper::Error) -> TransportError {
    TransportError::Broken(error_chain(&error))
}
