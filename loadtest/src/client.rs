//! The HTTP client: one pooled hyper client (HTTP/1.1 keep-alive or h2c), a bearer key
//! and a per-request timeout.
//!
//! It only moves bytes and statuses; it must never interpret ledger results or retry
//! on its own (a retry is a workload decision, with the same id).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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
        Client { hyper, base: base.to_owned(), authorization, timeout }
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
