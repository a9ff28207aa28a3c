//! The gateway's lifecycle: open the store, load keys, bind, start the cores, wait for a
//! signal, drain, close the store. `main` calls [`serve`]; tests run the real binary.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use storage::embedded::{Embedded, EmbeddedConfig};
use tokio::sync::watch;

use crate::admin;
use crate::app::App;
use crate::auth::KeyCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::server;

/// Listen backlog of each core's socket.
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the gateway until SIGTERM or SIGINT, then drains and returns.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let store = Arc::new(Embedded::open(&store_config(&config))?);
    let admin_listener = admin::bind(&config.data_dir).context("binding the admin socket")?;
    let keys = KeyCache::new(store.api_keys()?);
    let listeners = pool::listener::bind_reuseport(config.listen, config.threads, LISTEN_BACKLOG)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listeners.first().map(|l| l.local_addr()).transpose()?.context("no listener")?;
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        keys,
        metrics: Arc::new(Metrics::new()),
        connections: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let cores = start_cores(&app, listeners, &shutdown_rx)?;
    tracing::info!(%addr, threads = config.threads, data_dir = %config.data_dir.display(), "listening");
    wait_for_signal(&app, admin_listener)?;
    tracing::info!("shutting down: draining connections and batches");
    server::begin_shutdown(&app, &shutdown_tx);
    let joined = cores.join();
    drop(app);
    store.close();
    joined.context("a core failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The store's settings: every core may have one batch in flight at the writer, plus
/// admin jobs, so the writer's queue never refuses a core's flush.
fn store_config(config: &Config) -> EmbeddedConfig {
    let mut store = EmbeddedConfig::in_dir(&config.data_dir);
    store.writer_queue_max = store.writer_queue_max.max(config.threads * 2);
    store
}

fn start_cores(
    app: &Arc<App>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<pool::cores::Cores> {
    let slots: Arc<Mutex<Vec<Option<std::net::TcpListener>>>> =
        Arc::new(Mutex::new(listeners.into_iter().map(Some).collect()));
    let (app, shutdown) = (app.clone(), shutdown.clone());
    let cores = pool::cores::spawn_cores(app.config.threads, "protea-core", move |index| {
        let listener = slots.lock().ok().and_then(|mut slots| slots.get_mut(index)?.take());
        let (app, shutdown) = (app.clone(), shutdown.clone());
        async move {
            match listener {
                Some(listener) => server::run_core(app, index, listener, shutdown).await,
                None => tracing::error!(core = index, "no listener for this core"),
            }
        }
    })?;
    Ok(cores)
}

/// Serves the admin socket until SIGTERM or SIGINT, then removes the socket.
fn wait_for_signal(
    app: &Arc<App>,
    listener: std::os::unix::net::UnixListener,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result?,
            () = admin::serve(app.clone(), listener) => {}
        }
        anyhow::Ok(())
    });
    let _ = std::fs::remove_file(admin::socket_path(&app.config.data_dir));
    result
}
