//! The server: one current-thread runtime per core, each with its own SO_REUSEPORT
//! listener, connections (plain HTTP/1.1 and h2c, or TLS with ALPN h2 and http/1.1) and
//! batcher. Each connection runs on the core that accepted it, bounded by the header-read
//! timeout, the TLS handshake timeout and the idle timeout.
//!
//! Shutdown (SIGTERM/SIGINT): `/readyz` turns 503, every core stops accepting, open
//! connections finish their in-flight requests (up to `drain_timeout`), each core's
//! batcher flushes what it accepted, and the store's writer commits the last batch
//! before the process exits 0. Nothing here parses bodies, authenticates or touches the
//! ledger: [`crate::request`] serves each request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use pool::batcher::{BatcherConfig, batcher};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{App, Core, StoreFlusher};
use crate::conn::{self, Activity, ConnInfo, Tracked};
use crate::metrics::{CoreFlushObserver, CoreLabels, TlsLabels};
use crate::request;
use crate::tls::ClientIdentity;

/// The smallest HTTP/1.1 read buffer hyper accepts (it also bounds the request head).
const HTTP1_READ_BUFFER_MIN: usize = 8192;
/// How often an HTTP/2 connection is pinged to detect a dead peer.
const H2_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const H2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    let builder = std::rc::Rc::new(connection_builder(&core.app));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    serve_connection(core, &builder, &graceful, &mut connections, stream, peer);
                }
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

/// HTTP/1.1 and HTTP/2 settings: header-read timeout (also the HTTP/1.1 keep-alive idle
/// bound), header count and size limits, stream limits and keep-alive pings.
fn connection_builder(app: &App) -> auto::Builder<TokioExecutor> {
    let security = &app.config.security;
    let header_bytes_max = u32::try_from(security.header_bytes_max).unwrap_or(u32::MAX);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout)
        .max_headers(security.headers_max)
        .max_buf_size(security.header_bytes_max.max(HTTP1_READ_BUFFER_MIN));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(header_bytes_max)
        .max_pending_accept_reset_streams(Some(64))
        .keep_alive_interval(Some(H2_PING_INTERVAL))
        .keep_alive_timeout(H2_PING_TIMEOUT);
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
    builder: &std::rc::Rc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
    connections: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let Some(guard) = admit(&core.app) else { return };
    let _ = stream.set_nodelay(true);
    let (core, builder, watcher) = (core.clone(), builder.clone(), graceful.watcher());
    connections.spawn_local(async move {
        let activity = Activity::new();
        let stream = Tracked::new(stream, activity.clone());
        let idle_timeout = core.app.config.security.idle_timeout;
        let served = async {
            match core.app.tls.clone() {
                None => {
                    let info = ConnInfo { peer, tls: false, identity: ClientIdentity::None };
                    serve_http(&core, &builder, watcher, stream, info).await;
                }
                Some(acceptor) => {
                    let timeout = core.app.config.header_read_timeout;
                    match conn::accept_tls(&acceptor, stream, timeout).await {
                        Ok((tls, identity)) => {
                            let info = ConnInfo { peer, tls: true, identity };
                            serve_http(&core, &builder, watcher, tls, info).await;
                        }
                        Err(error) => handshake_failed(&core, &error),
                    }
                }
            }
        };
        tokio::select! {
            () = served => {}
            () = activity.idle(idle_timeout) => {}
        }
        drop(guard);
    });
}

async fn serve_http<IO>(
    core: &Arc<Core>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    stream: IO,
    info: ConnInfo,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (core, info) = (core.clone(), Arc::new(info));
    let service = service_fn(move |request| request::serve(core.clone(), info.clone(), request));
    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
    let _ = watcher.watch(connection).await;
}

fn handshake_failed(core: &Core, error: &conn::HandshakeError) {
    let reason = match error {
        conn::HandshakeError::Timeout => "timeout",
        conn::HandshakeError::Failed(_) => "failed",
    };
    core.app.metrics.tls_handshake_failures.get_or_create(&TlsLabels { reason }).inc();
    tracing::debug!(core = core.index, %error, "TLS handshake did not complete");
}

/// Marks the process as draining and tells every core to stop accepting.
pub fn begin_shutdown(app: &App, shutdown: &watch::Sender<bool>) {
    app.draining.store(true, Ordering::Relaxed);
    let _ = shutdown.send(true);
}
