//! The one place where errors become HTTP responses.
//!
//! Every client-facing error has the shape `{"error": {"type", "code", "message",
//! "param"}}`. Messages are fixed text or come from the wire decoder (which never echoes
//! more than a short excerpt of input): storage errors, paths and other internals are
//! logged here with the request id and never sent to the client.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use pool::batcher::SubmitError;
use storage::StoreError;
use storage::ledger::ResultCode;

use crate::wire::{self, WireError};

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a valid request.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The body is larger than the limit.
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client stopped sending the body.
    #[error("the request body could not be read")]
    BodyRead,
    /// Missing or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// A named resource does not exist for this tenant.
    #[error("{message}")]
    NotFound {
        /// Stable code, e.g. `account_not_found`.
        code: &'static str,
        /// Fixed message.
        message: &'static str,
    },
    /// No route has this path.
    #[error("no such route")]
    RouteNotFound,
    /// The path exists, but not with this method.
    #[error("method not allowed; this path takes {allow}")]
    MethodNotAllowed {
        /// The method the path takes.
        allow: &'static str,
    },
    /// The client did not send the body in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A path or query parameter is invalid.
    #[error("{message}")]
    InvalidParam {
        /// The parameter's name.
        param: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// This core's queue is full.
    #[error("the gateway is at capacity")]
    Busy,
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// More events than one batch can hold.
    #[error("too many events in one request")]
    TooManyEvents {
        /// The limit.
        max: usize,
    },
    /// Storage failed (details are logged, never sent).
    #[error("storage failed: {0}")]
    Storage(#[from] StoreError),
}

impl From<SubmitError<StoreError>> for ApiError {
    fn from(error: SubmitError<StoreError>) -> Self {
        match error {
            SubmitError::QueueFull => Self::Busy,
            SubmitError::ShuttingDown => Self::ShuttingDown,
            SubmitError::TooLarge { batch_size_max, .. } => {
                Self::TooManyEvents { max: batch_size_max }
            }
            SubmitError::Flush(store) => Self::Storage(store),
        }
    }
}

struct Shape {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<String>,
}

impl ApiError {
    fn shape(&self) -> Shape {
        use StatusCode as S;
        let simple = |status, kind, code| Shape { status, kind, code, param: None };
        match self {
            Self::Wire(e) => Shape {
                status: S::BAD_REQUEST,
                kind: "invalid_request_error",
                code: e.code,
                param: e.param.clone(),
            },
            Self::BodyTooLarge { .. } => {
                simple(S::PAYLOAD_TOO_LARGE, "invalid_request_error", "body_too_large")
            }
            Self::BodyRead => simple(S::BAD_REQUEST, "invalid_request_error", "body_unreadable"),
            Self::Unauthenticated => {
                simple(S::UNAUTHORIZED, "authentication_error", "invalid_credentials")
            }
            Self::NotFound { code, .. } => Shape {
                status: S::NOT_FOUND,
                kind: "invalid_request_error",
                code,
                param: Some("id".into()),
            },
            Self::RouteNotFound => simple(S::NOT_FOUND, "invalid_request_error", "route_not_found"),
            Self::MethodNotAllowed { .. } => {
                simple(S::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed")
            }
            Self::BodyTimeout => {
                simple(S::REQUEST_TIMEOUT, "invalid_request_error", "body_timeout")
            }
            Self::InvalidParam { param, .. } => Shape {
                status: S::BAD_REQUEST,
                kind: "invalid_request_error",
                code: "invalid_parameter",
                param: Some((*param).into()),
            },
            Self::Busy => simple(S::SERVICE_UNAVAILABLE, "api_error", "overloaded"),
            Self::ShuttingDown => simple(S::SERVICE_UNAVAILABLE, "api_error", "shutting_down"),
            Self::TooManyEvents { .. } => {
                simple(S::BAD_REQUEST, "invalid_request_error", "too_many_events")
            }
            Self::Storage(e) if e.is_retryable() => {
                simple(S::SERVICE_UNAVAILABLE, "api_error", "storage_unavailable")
            }
            Self::Storage(_) => simple(S::INTERNAL_SERVER_ERROR, "api_error", "internal_error"),
        }
    }

    /// What the client reads: never internals.
    fn client_message(&self) -> String {
        match self {
            Self::Storage(e) if e.is_retryable() => {
                "storage is unavailable; retry with the same ids".into()
            }
            Self::Storage(_) => "internal error; the request id identifies it in the logs".into(),
            Self::TooManyEvents { max } => format!("a request may carry at most {max} events"),
            Self::Wire(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The HTTP response, logging what the client does not see.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let shape = self.shape();
        if let Self::Storage(error) = &self {
            tracing::error!(request_id, %error, kind = error.kind(), "storage error");
        }
        let mut body = Vec::with_capacity(160);
        body.extend_from_slice(b"{\"error\":{\"type\":\"");
        body.extend_from_slice(shape.kind.as_bytes());
        body.extend_from_slice(b"\",\"code\":\"");
        body.extend_from_slice(shape.code.as_bytes());
        body.extend_from_slice(b"\",\"message\":");
        wire::write_str(&mut body, &self.client_message());
        body.extend_from_slice(b",\"param\":");
        match &shape.param {
            Some(param) => wire::write_str(&mut body, param),
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(b"}}");
        let mut response = json_response(shape.status, body);
        let headers = response.headers_mut();
        if shape.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        match self {
            Self::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

/// A JSON response with `status` and `body` (a newline is appended, for terminals).
pub fn json_response(status: StatusCode, mut body: Vec<u8>) -> Response<Body> {
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The status of a single-object create, from its ledger result: 201 created, 200 for an
/// identical retry, 409 for an id reused with other fields, 404 when a named account or
/// pending transfer does not exist, 422 for every other rejection.
pub fn result_status(code: ResultCode) -> StatusCode {
    match code {
        ResultCode::Ok => StatusCode::CREATED,
        ResultCode::Exists => StatusCode::OK,
        ResultCode::ExistsWithDifferentFields => StatusCode::CONFLICT,
        ResultCode::DebitAccountNotFound
        | ResultCode::CreditAccountNotFound
        | ResultCode::PendingTransferNotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}
