//! The gateway's lifecycle: open the store, load keys, bind, start the cores, wait for a
//! signal, drain, close the store. `main` calls [`serve`]; tests run the real binary.
//!
//! The main thread runs a small runtime of its own for what is off the request path:
//! signals, the admin socket (embedded store), and on PostgreSQL the key/readiness
//! refresh and the secret watch.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use storage::Store;
use storage::embedded::{Embedded, EmbeddedConfig};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::admin;
use crate::app::App;
use crate::auth::KeyCache;
use crate::backend;
use crate::config::{Config, PostgresConfig, StorageConfig};
use crate::metrics::Metrics;
use crate::server;

/// Listen backlog of each core's socket.
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the gateway until SIGTERM or SIGINT, then drains and returns.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let keys = Arc::new(KeyCache::new(Vec::new()));
    let (store, admin_listener) = match &config.storage {
        StorageConfig::Embedded => {
            let store = Arc::new(Embedded::open(&store_config(&config))?);
            let admin_listener =
                admin::bind(&config.data_dir).context("binding the admin socket")?;
            keys.replace(store.api_keys()?);
            (Store::Embedded(store), Some(admin_listener))
        }
        StorageConfig::Postgres(postgres) => (open_postgres(&runtime, postgres, &keys)?, None),
    };
    let listeners = pool::listener::bind_reuseport(config.listen, config.threads, LISTEN_BACKLOG)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listeners.first().map(|l| l.local_addr()).transpose()?.context("no listener")?;
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        core_stores: Mutex::new(Vec::new()),
        keys,
        metrics: Arc::new(Metrics::new()),
        connections: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let cores = start_cores(&app, listeners, &shutdown_rx)?;
    tracing::info!(%addr, threads = config.threads, storage = store.backend(), "listening");
    wait_for_signal(&runtime, &app, admin_listener)?;
    tracing::info!("shutting down: draining connections and batches");
    server::begin_shutdown(&app, &shutdown_tx);
    let joined = cores.join();
    drop(app);
    if let Store::Embedded(store) = &store {
        store.close();
    }
    joined.context("a core failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Connects, migrates and loads the keys, then keeps keys, readiness and the secret
/// current on `runtime` while the gateway runs.
fn open_postgres(
    runtime: &Runtime,
    config: &PostgresConfig,
    keys: &Arc<KeyCache>,
) -> anyhow::Result<Store> {
    let postgres = runtime.block_on(backend::postgres(config))?;
    let store = postgres.store;
    let admin = runtime.block_on(backend::connect_and_migrate(&store))?;
    keys.replace(runtime.block_on(admin.api_keys())?);
    store.set_ready(true);
    runtime.spawn(backend::refresh_keys_and_readiness(store.clone(), admin, keys.clone()));
    if let Some((provider, value)) = postgres.secret {
        let _guard = runtime.enter();
        backend::watch_secret(config.clone(), &store, provider, value);
    }
    Ok(Store::Postgres(store))
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

/// Serves the admin socket (when there is one) and the background tasks until SIGTERM
/// or SIGINT, then removes the socket.
fn wait_for_signal(
    runtime: &Runtime,
    app: &Arc<App>,
    listener: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    let has_socket = listener.is_some();
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let admin = async {
            match listener {
                Some(listener) => admin::serve(app.clone(), listener).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result?,
            () = admin => {}
        }
        anyhow::Ok(())
    });
    if has_socket {
        let _ = std::fs::remove_file(admin::socket_path(&app.config.data_dir));
    }
    result
}
