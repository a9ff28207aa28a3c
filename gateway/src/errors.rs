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
    /// Missing or wrong credentials (the reason is logged and counted, never sent).
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// The operator's role may not call this route.
    #[error("your role may not call this route")]
    Forbidden,
    /// The tenant (or, for sign-in, the client address) is over its rate limit.
    #[error("rate limit exceeded; retry after the Retry-After header's seconds")]
    RateLimited {
        /// Whole seconds until a request would conform (at least 1).
        retry_after_s: u64,
    },
    /// The request target is longer than the limit.
    #[error("the request target is longer than {limit} bytes")]
    UriTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// More header fields than the limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The request conflicts with what is recorded (a notification recorded already).
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `already_notified`.
        code: &'static str,
        /// Fixed message.
        message: &'static str,
    },
    /// A security component is at capacity (replay cache, password hashing slots).
    #[error("the gateway is at capacity")]
    SecurityBusy,
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
    /// A field of a body is invalid; `param` is its path (`fields.email`).
    #[error("{message}")]
    InvalidField {
        /// The field's path.
        param: String,
        /// What is wrong (never the value).
        message: String,
    },
    /// The resource existed and is gone for good (an erased subject).
    #[error("{message}")]
    Gone {
        /// Stable code, e.g. `subject_erased`.
        code: &'static str,
        /// Fixed message.
        message: &'static str,
    },
    /// The vault could not seal or open personal information (details are logged).
    #[error("vault: {0}")]
    Vault(crate::popia::seal::SealError),
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
    /// The session store failed (details are logged, never sent).
    #[error("sessions failed: {0}")]
    Sessions(storage::sessions::SessionError),
    /// The audit trail could not record the action (details are logged, never sent).
    #[error("audit trail unavailable: {0}")]
    Audit(#[from] crate::audit::AuditError),
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
            Self::Forbidden => simple(S::FORBIDDEN, "permission_error", "forbidden"),
            Self::RateLimited { .. } => {
                simple(S::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited")
            }
            Self::UriTooLong { .. } => {
                simple(S::URI_TOO_LONG, "invalid_request_error", "uri_too_long")
            }
            Self::TooManyHeaders { .. } => Shape {
                status: S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                kind: "invalid_request_error",
                code: "too_many_headers",
                param: None,
            },
            Self::SecurityBusy => simple(S::SERVICE_UNAVAILABLE, "api_error", "overloaded"),
            Self::Conflict { code, .. } => simple(S::CONFLICT, "invalid_request_error", code),
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
            Self::InvalidField { param, .. } => Shape {
                status: S::BAD_REQUEST,
                kind: "invalid_request_error",
                code: "invalid_field",
                param: Some(param.clone()),
            },
            Self::Gone { code, .. } => simple(S::GONE, "invalid_request_error", code),
            Self::Vault(crate::popia::seal::SealError::NoBlindIndexKey) => {
                simple(S::SERVICE_UNAVAILABLE, "api_error", "vault_unavailable")
            }
            Self::Vault(_) => simple(S::INTERNAL_SERVER_ERROR, "api_error", "internal_error"),
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
            Self::Storage(e) => storage_shape(e),
            Self::Sessions(_) => simple(S::SERVICE_UNAVAILABLE, "api_error", "storage_unavailable"),
            Self::Audit(_) => simple(S::SERVICE_UNAVAILABLE, "api_error", "audit_unavailable"),
        }
    }

    /// What the client reads: never internals (a storage refusal's text is a fixed phrase
    /// or names a rule, never a value).
    fn client_message(&self) -> String {
        match self {
            Self::Storage(e) if e.is_retryable() => {
                "storage is unavailable; retry with the same ids".into()
            }
            Self::Storage(e) => storage_message(e).into(),
            Self::Sessions(_) => "sessions are unavailable; retry shortly".into(),
            Self::Audit(_) => "the audit trail is unavailable; retry shortly".into(),
            Self::Vault(crate::popia::seal::SealError::NoBlindIndexKey) => {
                "the vault's blind-index key is not configured".into()
            }
            Self::Vault(_) => "internal error; the request id identifies it in the logs".into(),
            Self::TooManyEvents { max } => format!("a request may carry at most {max} events"),
            Self::Wire(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The HTTP response, logging what the client does not see.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let shape = self.shape();
        match &self {
            Self::Storage(error) => {
                tracing::error!(request_id, %error, kind = error.kind(), "storage error");
            }
            Self::Sessions(error) => tracing::error!(request_id, %error, "session store error"),
            Self::Audit(error) => tracing::error!(request_id, %error, "audit trail error"),
            Self::Vault(error) => tracing::error!(request_id, %error, "vault error"),
            _ => {}
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
                let challenge = "Protea-HMAC-SHA256, Bearer";
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Self::RateLimited { retry_after_s } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

/// Storage refusals the client caused (a name taken, a key limit, a missing tenant, a
/// broken rule) and, for everything else, 500.
fn storage_shape(error: &StoreError) -> Shape {
    use StatusCode as S;
    let conflict =
        |code| Shape { status: S::CONFLICT, kind: "invalid_request_error", code, param: None };
    match error {
        StoreError::TenantExists(_) => conflict("tenant_exists"),
        StoreError::KeyExists => conflict("key_exists"),
        StoreError::TooManyKeys => conflict("too_many_keys"),
        StoreError::OperatorExists => conflict("operator_exists"),
        StoreError::SubjectExists => conflict("subject_exists"),
        StoreError::NotFound(_) => Shape {
            status: S::NOT_FOUND,
            kind: "invalid_request_error",
            code: "tenant_not_found",
            param: None,
        },
        StoreError::Invalid(_) => Shape {
            status: S::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_parameter",
            param: None,
        },
        _ => Shape {
            status: S::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            code: "internal_error",
            param: None,
        },
    }
}

fn storage_message(error: &StoreError) -> &'static str {
    match error {
        StoreError::TenantExists(_) => "a tenant with this name exists already",
        StoreError::KeyExists => "a key with this id exists already",
        StoreError::TooManyKeys => {
            "the tenant has two active keys; revoke one before creating another"
        }
        StoreError::OperatorExists => "an operator with this username exists already",
        StoreError::SubjectExists => "a subject with this id exists already",
        StoreError::NotFound(_) => "no tenant with this name",
        StoreError::Invalid(rule) => rule,
        _ => "internal error; the request id identifies it in the logs",
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
