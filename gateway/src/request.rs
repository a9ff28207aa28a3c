//! One request, from hyper to a handler and back: request limits, routing, the
//! authentication each route's [`Access`] asks for, rate limits, then the handler; and on
//! the way out the common security headers, metrics and one log line.
//!
//! The order is the security model: limits and routing first (cheap, no credentials
//! needed), then credentials from the headers (an unknown key or no credentials fails
//! before any body is read), then the body (bounded in size and time), then the
//! signature over it and its nonce, then the tenant's rate limit, and only then the path
//! id is parsed, so an unauthenticated caller learns nothing about ids. Nothing here
//! touches storage except through handlers, and nothing here logs a credential or body.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use storage::ratelimit::Decision;
use tracing::Instrument;

use crate::app::Core;
use crate::auth::{AuthError, Received};
use crate::conn::ConnInfo;
use crate::errors::{ApiError, Body};
use crate::handlers::{self, Target};
use crate::metrics::{AuthLabels, RequestLabels};
use crate::operator_auth;
use crate::popia::subjects;
use crate::router::{self, Access, Matched, NoRoute};
use crate::telemetry;
use crate::wire;

/// Serves one request; never fails (errors become responses).
///
/// With tracing on (`--otlp-endpoint`), the request runs inside a `request` span that
/// continues the caller's `traceparent`; without, no span is created.
pub async fn serve(
    core: Arc<Core>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = request_id(&core, &request);
    let method = static_method(request.method());
    if !core.app.tracing {
        return Ok(serve_request(&core, &conn, request, (request_id, method, started)).await);
    }
    let span = telemetry::request_span(method, &request_id, request.headers());
    let served = serve_request(&core, &conn, request, (request_id, method, started));
    Ok(served.instrument(span).await)
}

async fn serve_request(
    core: &Core,
    conn: &ConnInfo,
    request: Request<Incoming>,
    (request_id, method, started): (String, &'static str, Instant),
) -> Response<Body> {
    let (route_label, result) = route_and_handle(core, conn, request, &request_id).await;
    let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
    add_common_headers(&mut response, &request_id, conn.tls);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if core.app.tracing {
        telemetry::finish_request_span(&tracing::Span::current(), method, route_label, status);
    }
    let labels = RequestLabels { route: route_label, method, status };
    core.app.metrics.observe_request(&labels, elapsed);
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(request_id, route = route_label, status, latency_us, "request failed");
    } else {
        tracing::debug!(request_id, route = route_label, status, latency_us, "request");
    }
    response
}

async fn route_and_handle(
    core: &Core,
    conn: &ConnInfo,
    request: Request<Incoming>,
    request_id: &str,
) -> (&'static str, Result<Response<Body>, ApiError>) {
    if let Err(error) = check_limits(core, &request) {
        return ("unmatched", Err(error));
    }
    let (parts, body) = request.into_parts();
    // The route borrows the path; the handlers take the parts (a `Uri` clone is a few
    // reference counts).
    let uri = parts.uri.clone();
    let matched = match router::route(&parts.method, uri.path()) {
        Ok(matched) => matched,
        Err(NoRoute::NotFound) => return ("unmatched", Err(ApiError::RouteNotFound)),
        Err(NoRoute::MethodNotAllowed { allow }) => {
            return ("unmatched", Err(ApiError::MethodNotAllowed { allow }));
        }
    };
    let label = matched.route.template().1;
    let result = match matched.route.access() {
        Access::Public => Ok(handlers::public(core, matched.route)),
        Access::Tenant => {
            let origin = client_address(core, &parts, conn);
            tenant_request(core, conn, matched, parts, body, (request_id, origin)).await
        }
        // Off the hot path: boxed, so the tenant path's future stays small.
        Access::SignIn => {
            let origin = client_address(core, &parts, conn);
            let body = read_body(core, &parts, body).await;
            match body {
                Ok(body) => Box::pin(operator_auth::sign_in(core, origin, body, request_id)).await,
                Err(error) => Err(error),
            }
        }
        Access::Operator(roles) => {
            let origin = client_address(core, &parts, conn);
            let call = operator_auth::Call { matched, roles, request_id, origin };
            Box::pin(operator_auth::serve(core, call, parts, body)).await
        }
    };
    (label, result)
}

/// The request target and header count against their limits (header bytes are bounded
/// by hyper: the HTTP/1.1 read buffer and HTTP/2's header list size).
fn check_limits(core: &Core, request: &Request<Incoming>) -> Result<(), ApiError> {
    let security = &core.app.config.security;
    let target_len = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if target_len > security.url_bytes_max {
        return Err(ApiError::UriTooLong { limit: security.url_bytes_max });
    }
    if request.headers().len() > security.headers_max {
        return Err(ApiError::TooManyHeaders { limit: security.headers_max });
    }
    Ok(())
}

async fn tenant_request(
    core: &Core,
    conn: &ConnInfo,
    matched: Matched<'_>,
    parts: Parts,
    body: Incoming,
    (request_id, origin): (&str, IpAddr),
) -> Result<Response<Body>, ApiError> {
    let app = &core.app;
    let security = &app.config.security;
    let claim = app
        .credentials
        .claim(&parts.headers, &conn.identity, security.allow_bearer_keys)
        .map_err(|failure| auth_failed(core, "tenant", failure.code()))?;
    let body = read_body(core, &parts, body).await?;
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        body: &body,
    };
    let verified =
        claim.verify(&received, unix_now_s(), security.signature_window_seconds, &app.replay);
    let tenant = match verified {
        Ok(tenant) => tenant,
        Err(AuthError::Refused(failure)) => {
            return Err(auth_failed(core, "tenant", failure.code()));
        }
        Err(AuthError::ReplayCacheFull) => return Err(ApiError::SecurityBusy),
    };
    rate_limit(core, tenant).await?;
    let id = path_id(matched.id)?;
    if matched.route.is_vault() {
        let call = subjects::Call {
            route: matched.route,
            tenant,
            subject: id,
            sub: matched.sub,
            request_id,
            origin,
        };
        return Box::pin(subjects::handle(core, call, &parts, body)).await;
    }
    handlers::tenant(core, matched.route, Target { tenant, id }, &parts, body).await
}

/// Counts and logs a refused credential (`reason` is a fixed code); the client gets one
/// undifferentiated 401. The log line is at `debug`, so a flood of bad credentials cannot
/// flood the logs; the counter `protea_auth_failures_total` always moves.
pub fn auth_failed(core: &Core, scheme: &'static str, reason: &'static str) -> ApiError {
    core.app.metrics.auth_failures.get_or_create(&AuthLabels { scheme, reason }).inc();
    tracing::debug!(scheme, reason, "authentication refused");
    ApiError::Unauthenticated
}

/// The tenant's rate limit (local, or global through Redis).
async fn rate_limit(core: &Core, tenant: u64) -> Result<(), ApiError> {
    let app = &core.app;
    let decision =
        app.limiter.check(tenant, app.config.security.tenant_quota, app.clock_ns()).await;
    limited(core, "tenant", decision)
}

/// A rate-limit decision as a result: 429 with whole seconds to wait when limited.
pub fn limited(core: &Core, kind: &'static str, decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Limited { retry_after } => {
            core.app
                .metrics
                .rate_limited
                .get_or_create(&crate::metrics::LimitLabels { kind })
                .inc();
            let retry_after_s = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            Err(ApiError::RateLimited { retry_after_s: retry_after_s.max(1) })
        }
    }
}

/// Reads the whole body within `body_read_timeout`, refusing more than `body_bytes_max`
/// bytes (up front when the client declares a larger Content-Length).
pub async fn read_body(core: &Core, parts: &Parts, body: Incoming) -> Result<Vec<u8>, ApiError> {
    let config = &core.app.config;
    let read = read_body_limited(parts, body, config.body_bytes_max);
    tokio::time::timeout(config.body_read_timeout, read).await.map_err(|_| ApiError::BodyTimeout)?
}

async fn read_body_limited(
    parts: &Parts,
    body: Incoming,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Vec::from(collected.to_bytes())),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(_) => Err(ApiError::BodyRead),
    }
}

/// The client's address: with `--trusted-proxy-hops N`, the N-th address from the right
/// of `X-Forwarded-For` (each trusted proxy appends the address it saw); the
/// connection's peer without, or when the header has fewer entries or a malformed one.
fn client_address(core: &Core, parts: &Parts, conn: &ConnInfo) -> IpAddr {
    let hops = core.app.config.security.trusted_proxy_hops;
    forwarded_address(&parts.headers, hops).unwrap_or(conn.peer.ip())
}

fn forwarded_address(headers: &http::HeaderMap, hops: usize) -> Option<IpAddr> {
    let from_right = hops.checked_sub(1)?;
    let mut addresses = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or("").rsplit(',').map(str::trim));
    addresses.nth(from_right)?.parse().ok()
}

/// The `{id}` segment as a 128-bit id (zero for routes without one).
fn path_id(segment: &str) -> Result<u128, ApiError> {
    if segment.is_empty() {
        return Ok(0);
    }
    wire::parse_uuid(segment).ok_or(ApiError::InvalidParam {
        param: "id",
        message: "id must be a UUID like 0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60",
    })
}

/// Seconds since the Unix epoch (the signature window's clock).
pub fn unix_now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// The client's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(core: &Core, request: &Request<Incoming>) -> String {
    let given = request.headers().get("x-request-id").and_then(|v| v.to_str().ok());
    let plain = |id: &&str| {
        (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match given.filter(plain) {
        Some(id) => id.to_owned(),
        None => core.next_request_id(),
    }
}

/// Headers on every response: the request id, and the OWASP REST security headers (an
/// API answers JSON only, is never framed or cached, and over TLS pins HTTPS).
fn add_common_headers(response: &mut Response<Body>, request_id: &str, tls: bool) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    let fixed = [
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-resource-policy", "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if tls {
        let hsts = HeaderValue::from_static("max-age=63072000; includeSubDomains");
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
}

fn static_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_counted_from_the_right() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 1.2.3.4"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        let at = |hops| forwarded_address(&headers, hops);
        assert_eq!(at(0), None, "no trusted proxy: the header is ignored");
        assert_eq!(at(1), Some("10.0.0.9".parse().unwrap()));
        assert_eq!(at(2), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(at(4), None, "fewer entries than hops: the peer");
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(forwarded_address(&headers, 1), None);
    }

    #[test]
    fn path_ids_parse_or_name_the_parameter() {
        assert_eq!(path_id("").unwrap(), 0);
        assert_eq!(path_id("00000000-0000-0000-0000-00000000002a").unwrap(), 42);
        assert!(matches!(path_id("42"), Err(ApiError::InvalidParam { param: "id", .. })));
    }
}
