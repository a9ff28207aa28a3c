//! The server: one current-thread runtime per core, each with its own SO_REUSEPORT
//! listener, hyper connections (HTTP/1.1 and h2c) and batcher.
//!
//! Shutdown (SIGTERM/SIGINT): `/readyz` turns 503, every core stops accepting, open
//! connections finish their in-flight requests (up to `drain_timeout`), each core's
//! batcher flushes what it accepted, and the store's writer commits the last batch
//! before the process exits 0. Nothing here parses bodies or touches the ledger.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pool::batcher::{BatcherConfig, batcher};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{App, Core, StoreFlusher};
use crate::errors::{ApiError, Body};
use crate::handlers::{self, Target};
use crate::metrics::{CoreFlushObserver, CoreLabels, RequestLabels};
use crate::router::{self, NoRoute, RouteId};
use crate::wire;

/// Runs one core until `shutdown` flips, then drains it.
pub async fn run_core(
    app: Arc<App>,
    index: usize,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = BatcherConfig {
        batch_size_max: app.config.batch_size_max,
        queue_depth_max: app.config.queue_depth_max,
    };
    let core_labels = CoreLabels { core: u32::try_from(index).unwrap_or(u32::MAX) };
    let observer =
        Arc::new(CoreFlushObserver { metrics: app.metrics.clone(), core: core_labels.clone() });
    let store = match app.store.core() {
        Ok(store) => Arc::new(store),
        Err(error) => {
            tracing::error!(core = index, %error, "this core's store could not be set up");
            return;
        }
    };
    if let Ok(mut cores) = app.core_stores.lock() {
        cores.push((core_labels.clone(), store.clone()));
    }
    let flusher =
        StoreFlusher { store: store.clone(), metrics: app.metrics.clone(), core: core_labels };
    let (handle, batcher_loop) = batcher(flusher, config, observer);
    let batcher_task = tokio::task::spawn_local(batcher_loop);
    let core = Arc::new(Core::new(app.clone(), index, handle, store));
    match TcpListener::from_std(listener) {
        Ok(listener) => accept_until_shutdown(&core, &listener, &mut shutdown).await,
        Err(error) => tracing::error!(core = index, %error, "listener could not join the runtime"),
    }
    drop(core);
    if batcher_task.await.is_err() {
        tracing::error!(core = index, "batcher stopped abnormally");
    }
}

async fn accept_until_shutdown(
    core: &Arc<Core>,
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = connection_builder(&core.app);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_connection(core, &builder, &graceful, &mut connections, stream),
                Err(error) => tracing::warn!(core = core.index, %error, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drain(core, graceful, connections).await;
}

/// Lets open connections finish their requests for `drain_timeout`, then closes the
/// rest, so shutdown is bounded whatever the clients do.
async fn drain(core: &Core, graceful: GracefulShutdown, mut connections: JoinSet<()>) {
    let drain_timeout = core.app.config.drain_timeout;
    if tokio::time::timeout(drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            core = core.index,
            open = connections.len(),
            "drain timeout passed; closing remaining connections"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

fn connection_builder(app: &App) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    builder
}

/// Counts an open connection; the count drops when the guard does.
struct ConnectionGuard(Arc<App>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.connections_open.dec();
    }
}

fn admit(app: &Arc<App>) -> Option<ConnectionGuard> {
    let open = app.connections.fetch_add(1, Ordering::Relaxed);
    app.metrics.connections_open.inc();
    let guard = ConnectionGuard(app.clone());
    if open >= app.config.connections_max {
        app.metrics.connections_refused.inc();
        return None;
    }
    Some(guard)
}

fn serve_connection(
    core: &Arc<Core>,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    connections: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
) {
    let Some(guard) = admit(&core.app) else { return };
    let _ = stream.set_nodelay(true);
    let core = core.clone();
    let service = service_fn(move |request| serve_request(core.clone(), request));
    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
    let connection = graceful.watch(connection);
    connections.spawn_local(async move {
        let _ = connection.await;
        drop(guard);
    });
}

async fn serve_request(
    core: Arc<Core>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = request_id(&core, &request);
    let method = request.method().clone();
    let (route_label, result) = route_and_handle(&core, request).await;
    let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
    add_common_headers(&mut response, &request_id);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = RequestLabels { route: route_label, method: static_method(&method), status };
    core.app.metrics.observe_request(&labels, elapsed);
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(request_id, route = route_label, status, latency_us, "request failed");
    } else {
        tracing::debug!(request_id, route = route_label, status, latency_us, "request");
    }
    Ok(response)
}

async fn route_and_handle(
    core: &Core,
    request: Request<Incoming>,
) -> (&'static str, Result<Response<Body>, ApiError>) {
    let matched = match router::route(request.method(), request.uri().path()) {
        Ok(matched) => matched,
        Err(NoRoute::NotFound) => return ("unmatched", Err(ApiError::RouteNotFound)),
        Err(NoRoute::MethodNotAllowed { allow }) => {
            return ("unmatched", Err(ApiError::MethodNotAllowed { allow }));
        }
    };
    let route = matched.route;
    let label = route.template().1;
    let target = match target(core, route, matched.id, &request) {
        Ok(target) => target,
        Err(error) => return (label, Err(error)),
    };
    (label, handlers::handle(core, route, target, request).await)
}

/// Authenticates (where the route needs it) and only then parses the path id, so an
/// unauthenticated caller learns nothing about ids.
fn target(
    core: &Core,
    route: RouteId,
    id_segment: &str,
    request: &Request<Incoming>,
) -> Result<Target, ApiError> {
    let tenant =
        if route.is_authenticated() { core.app.keys.authenticate(request.headers())? } else { 0 };
    Ok(Target { tenant, id: path_id(id_segment)? })
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

fn add_common_headers(response: &mut Response<Body>, request_id: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
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

/// Marks the process as draining and tells every core to stop accepting.
pub fn begin_shutdown(app: &App, shutdown: &watch::Sender<bool>) {
    app.draining.store(true, Ordering::Relaxed);
    let _ = shutdown.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_parse_or_name_the_parameter() {
        assert_eq!(path_id("").unwrap(), 0);
        assert_eq!(path_id("00000000-0000-0000-0000-00000000002a").unwrap(), 42);
        assert!(matches!(path_id("42"), Err(ApiError::InvalidParam { param: "id", .. })));
    }
}
