//! The gateway's lifecycle: load the gateway's keys, open the store, set up TLS, rate
//! limits and sessions, load tenants' keys, bind, start the cores, wait for a signal,
//! drain, close the store. `main` calls [`serve`]; tests run the real binary.
//!
//! The main thread runs a small runtime of its own for what is off the request path:
//! signals, the admin socket (embedded store), and on PostgreSQL the key/readiness
//! refresh and the secret watch.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use arc_swap::ArcSwap;
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::postgres::PgAdmin;
use storage::ratelimit::{LocalLimiter, RateLimiter, RedisLimiter, RedisSettings};
use storage::secrets::{AwsSettings, SecretValue, SecretsProvider};
use storage::sessions::{DynamoSessions, DynamoSessionsConfig, Sessions};
use storage::{Store, StoreError};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::app::App;
use crate::audit::AuditTrail;
use crate::auth::Credentials;
use crate::backend;
use crate::config::{Config, PostgresConfig, StorageConfig};
use crate::keys;
use crate::metrics::Metrics;
use crate::operator_auth::SessionStore;
use crate::replay::ReplayCache;
use crate::server;
use crate::tls;

/// Listen backlog of each core's socket.
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the gateway until SIGTERM or SIGINT, then drains and returns.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let loaded =
        runtime.block_on(keys::load(&config.keys)).context("loading the gateway's keys")?;
    let opened = open_store(&runtime, &config)?;
    let tls = match &config.security.tls {
        Some(tls) => Some(TlsAcceptor::from(tls::server_config(tls)?)),
        None => None,
    };
    let limiter = runtime.block_on(rate_limiter(&config))?;
    let sessions = runtime.block_on(session_store(&config))?;
    let listeners = pool::listener::bind_reuseport(config.listen, config.threads, LISTEN_BACKLOG)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listeners.first().map(|l| l.local_addr()).transpose()?.context("no listener")?;
    let store = opened.store.clone();
    let metrics = Arc::new(Metrics::new());
    metrics.set_limits(&metric_limits(&config));
    let (audit, audit_writer) = {
        let _guard = runtime.enter();
        AuditTrail::start(store.core()?, config.security.audit_queue_max, metrics.clone())
    };
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        core_stores: Mutex::new(Vec::new()),
        credentials: Arc::new(Credentials::empty()),
        keys: Arc::new(ArcSwap::from_pointee(loaded.keys)),
        replay: ReplayCache::new(config.security.replay_cache_entries_max),
        limiter,
        sessions,
        audit,
        inventory: crate::popia::inventory::Inventory::embedded()?,
        tls,
        password_slots: tokio::sync::Semaphore::new(PASSWORD_SLOTS),
        metrics,
        tracing: config.observability.otlp_endpoint.is_some(),
        connections: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
        started: std::time::Instant::now(),
    });
    let admin_listener = start_upkeep(&runtime, &app, opened)?;
    watch_keys(&runtime, &app, (loaded.provider, loaded.value));
    start_popia_jobs(&runtime, &app)?;
    runtime.spawn(probe_redis(app.clone()));
    if let Some(interval) = config.observability.cloudwatch_emf_interval {
        let service = config.observability.service_name.clone();
        runtime.spawn(crate::emf::run(app.clone(), interval, service));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let cores = start_cores(&app, listeners, &shutdown_rx)?;
    let scheme = if app.tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, threads = config.threads, storage = store.backend(), "listening");
    wait_for_signal(&runtime, &app, admin_listener)?;
    tracing::info!("shutting down: draining connections and batches");
    server::begin_shutdown(&app, &shutdown_tx);
    let joined = cores.join();
    app.audit.shutdown();
    drain_audit(&runtime, audit_writer);
    drop(app);
    if let Store::Embedded(store) = &store {
        store.close();
    }
    joined.context("a core failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for the audit writer to append what is queued.
const AUDIT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for the audit writer to drain its queue (bounded).
fn drain_audit(runtime: &Runtime, writer: tokio::task::JoinHandle<()>) {
    match runtime.block_on(async { tokio::time::timeout(AUDIT_DRAIN_TIMEOUT, writer).await }) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => tracing::error!("the audit writer stopped abnormally"),
        Err(_) => tracing::error!("the audit writer did not drain within 10 s"),
    }
}

/// Password hashes computed at once (each takes tens of milliseconds of CPU and 19 MiB).
const PASSWORD_SLOTS: usize = 4;
/// Most tenants and client addresses the local limiter tracks at once.
const RATE_LIMIT_KEYS_MAX: usize = 100_000;

/// A PostgreSQL store's administrative connection, its secret (to watch) and settings.
type PostgresUpkeep = (PgAdmin, Option<(SecretsProvider, SecretValue)>, PostgresConfig);

/// The store as opened, with what its upkeep needs.
struct Opened {
    store: Store,
    admin_listener: Option<std::os::unix::net::UnixListener>,
    postgres: Option<PostgresUpkeep>,
}

fn open_store(runtime: &Runtime, config: &Config) -> anyhow::Result<Opened> {
    match &config.storage {
        StorageConfig::Embedded => {
            let store = Arc::new(Embedded::open(&store_config(config))?);
            let admin_listener =
                admin::bind(&config.data_dir).context("binding the admin socket")?;
            let store = Store::Embedded(store);
            Ok(Opened { store, admin_listener: Some(admin_listener), postgres: None })
        }
        StorageConfig::Postgres(postgres) => {
            let opened = runtime.block_on(backend::postgres(postgres))?;
            let admin = runtime.block_on(backend::connect_and_migrate(&opened.store))?;
            let upkeep = (admin, opened.secret, (**postgres).clone());
            let store = Store::Postgres(opened.store);
            Ok(Opened { store, admin_listener: None, postgres: Some(upkeep) })
        }
    }
}

/// Loads the tenants' keys, then keeps them, readiness and the database secret current
/// (PostgreSQL) on `runtime`. Returns the admin socket to serve (embedded).
fn start_upkeep(
    runtime: &Runtime,
    app: &Arc<App>,
    opened: Opened,
) -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    let kek = &app.keys.load().kek;
    match (&opened.store, opened.postgres) {
        (Store::Embedded(store), _) => {
            app.credentials.replace(store.api_keys()?, store.tenants()?, kek);
        }
        (Store::Postgres(store), Some((admin, secret, config))) => {
            let loaded =
                async { Ok::<_, StoreError>((admin.api_keys().await?, admin.tenants().await?)) };
            let (keys, tenants) = runtime.block_on(loaded)?;
            app.credentials.replace(keys, tenants, kek);
            store.set_ready(true);
            runtime.spawn(backend::refresh_keys_and_readiness(store.clone(), admin, app.clone()));
            if let Some((provider, value)) = secret {
                let _guard = runtime.enter();
                backend::watch_secret(config, store, provider, value);
            }
        }
        (Store::Postgres(_), None) => anyhow::bail!("PostgreSQL opened without its upkeep"),
    }
    Ok(opened.admin_listener)
}

/// Keeps the gateway's keys current: a rotated document replaces them, and the tenants'
/// signing secrets are opened again with the new key ring (on PostgreSQL the next key
/// refresh does it within a second).
fn watch_keys(runtime: &Runtime, app: &Arc<App>, loaded_from: (SecretsProvider, SecretValue)) {
    let _guard = runtime.enter();
    let watched = app.clone();
    keys::watch(loaded_from, app.config.security.keys_refresh, move |keys| {
        watched.keys.store(Arc::new(keys));
        if let Store::Embedded(store) = &watched.store {
            match (store.api_keys(), store.tenants()) {
                (Ok(keys), Ok(tenants)) => {
                    watched.credentials.replace(keys, tenants, &watched.keys.load().kek);
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "reloading tenant keys after a key rotation failed");
                }
            }
        }
        tracing::info!("gateway keys rotated");
    });
}

/// Starts the retention, key re-wrap and audit-chain verification jobs on `runtime`, each
/// with a store handle of its own.
fn start_popia_jobs(runtime: &Runtime, app: &Arc<App>) -> anyhow::Result<()> {
    use crate::popia::jobs;
    let _guard = runtime.enter();
    let popia = &app.config.popia;
    let (retention_store, rewrap_store) = (app.store.core()?, app.store.core()?);
    let (interval, batch_max) = (popia.retention_interval, popia.retention_batch_max);
    runtime.spawn(jobs::retention(app.clone(), retention_store, interval, batch_max));
    runtime.spawn(jobs::rewrap(app.clone(), rewrap_store, popia.rewrap_interval));
    let verify_store = app.store.core()?;
    runtime.spawn(jobs::verify_audit_chain(app.clone(), verify_store, popia.audit_verify_interval));
    Ok(())
}

/// While rate limits are degraded, tries Redis every probe interval, so the gateway turns
/// global again (and says so) even when no request arrives.
async fn probe_redis(app: Arc<App>) {
    let mut ticks = tokio::time::interval(storage::ratelimit::PROBE_INTERVAL);
    loop {
        ticks.tick().await;
        app.limiter.probe(app.clock_ns()).await;
    }
}

/// Local limits, or global ones through Redis (its connection task runs on the main
/// runtime) with a local fallback.
async fn rate_limiter(config: &Config) -> anyhow::Result<RateLimiter> {
    let local = LocalLimiter::new(RATE_LIMIT_KEYS_MAX);
    match &config.security.redis_url {
        None => Ok(RateLimiter::local(local)),
        Some(url) => {
            let redis =
                RedisLimiter::connect(&url.0, &RedisSettings::default()).map_err(|error| {
                    crate::config::ConfigError { key: "redis-url", message: error.to_string() }
                })?;
            Ok(RateLimiter::global(redis, local))
        }
    }
}

/// DynamoDB sessions (cached in Redis when configured), or sessions in the store.
async fn session_store(config: &Config) -> anyhow::Result<SessionStore> {
    let security = &config.security;
    let Some(table) = &security.sessions_table else { return Ok(SessionStore::Store) };
    let dynamo = DynamoSessions::connect(DynamoSessionsConfig {
        table: table.clone(),
        aws: AwsSettings::default(),
        redis_url: security.redis_url.as_ref().map(|url| url.0.clone()),
    })
    .await
    .context("connecting to the DynamoDB sessions table")?;
    if security.sessions_table_create {
        dynamo.ensure_table().await.context("creating the DynamoDB sessions table")?;
    }
    Ok(SessionStore::Dynamo(Sessions::from(dynamo)))
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

/// The configured bounds the alert rules compare usage to.
fn metric_limits(config: &Config) -> crate::metrics::Limits {
    crate::metrics::Limits {
        queue_depth_max: config.queue_depth_max,
        connections_max: config.connections_max,
        audit_queue_max: config.security.audit_queue_max,
        db_pool_size_max: match &config.storage {
            crate::config::StorageConfig::Embedded => None,
            crate::config::StorageConfig::Postgres(postgres) => Some(postgres.pool_size_max),
        },
        audit_verify_interval_s: config.popia.audit_verify_interval.as_secs(),
    }
}
