//! Opening the configured store, and keeping a PostgreSQL store current while the
//! gateway runs: the database URL resolved from `--storage` and the secret, the schema
//! migrated (retrying while the database comes up), API keys and readiness refreshed
//! every second, and the URL swapped when the secret rotates.
//!
//! Never logs a URL, a password or a secret value: logs name the secret's source only.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pool::pg::{Connector, Tls};
use storage::StoreError;
use storage::postgres::{PgAdmin, PgSettings, PgStore};
use storage::secrets::{SecretValue, SecretsProvider, database_config};
use storage::tenants::{ApiKeyRecord, Tenant};

use crate::app::App;
use crate::config::PostgresConfig;

/// How often a PostgreSQL gateway reloads API keys; the same query is its readiness probe.
pub const KEYS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long start-up waits for the database (an Aurora failover takes about 30 s).
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// Most expired pending transfers a flush releases.
const EXPIRE_BATCH_MAX: usize = 1024;

/// A PostgreSQL store, with the secret it came from (to watch for rotation).
pub struct Postgres {
    /// The store.
    pub store: Arc<PgStore>,
    /// The secret's provider and the value in force, when the URL comes from a secret.
    pub secret: Option<(SecretsProvider, SecretValue)>,
}

/// Reads the secret (if any), builds the connector and the store. Connects to nothing.
pub async fn postgres(config: &PostgresConfig) -> anyhow::Result<Postgres> {
    let secret = match &config.secret {
        Some(source) => {
            let provider = SecretsProvider::new(source.clone()).await?;
            let value = provider.read().await?;
            Some((provider, value))
        }
        None => None,
    };
    let (url, tls) = url_and_tls(config, secret.as_ref().map(|(_, value)| value))?;
    let connector = Arc::new(Connector::new(url, tls, config.limits));
    let settings = PgSettings {
        read_pool_size_max: config.pool_size_max,
        pool_wait_timeout: config.pool_wait_timeout,
        expire_batch_max: EXPIRE_BATCH_MAX,
    };
    Ok(Postgres { store: Arc::new(PgStore::new(connector, settings)), secret })
}

/// The database URL from `--storage` and the secret, and its TLS settings.
fn url_and_tls(
    config: &PostgresConfig,
    secret: Option<&SecretValue>,
) -> anyhow::Result<(tokio_postgres::Config, Tls)> {
    let url = match (secret, &config.url) {
        (Some(value), base) => database_config(base.as_ref(), value)?,
        (None, Some(url)) => url.clone(),
        (None, None) => anyhow::bail!("no database URL: give --storage a URL or a secret"),
    };
    let tls = Tls::for_config(&url, config.ca_file.as_deref())?;
    Ok((url, tls))
}

/// Connects and migrates, retrying for up to a minute while the database is unreachable;
/// returns the administrative connection.
pub async fn connect_and_migrate(store: &PgStore) -> anyhow::Result<PgAdmin> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut admin = store.admin().await?;
            let report = admin.migrate().await?;
            if !report.applied.is_empty() {
                tracing::info!(applied = ?report.applied, version = report.version, "schema migrated");
            }
            Ok::<_, StoreError>(admin)
        };
        match attempt.await {
            Ok(admin) => return Ok(admin),
            Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error).context("connecting to and migrating PostgreSQL"),
        }
    }
}

/// Every [`KEYS_REFRESH_INTERVAL`]: reloads the API keys and tenant names into the app's
/// credentials (so a key created or revoked by any process takes effect within the
/// interval) and records whether the database answered, reconnecting the administrative
/// connection when it broke. Runs until the runtime stops.
pub async fn refresh_keys_and_readiness(store: Arc<PgStore>, admin: PgAdmin, app: Arc<App>) {
    let mut admin = Some(admin);
    let mut ticks = tokio::time::interval(KEYS_REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let was_ready = store.is_ready();
        match load_keys(&store, &mut admin).await {
            Ok((records, tenants)) => {
                app.credentials.replace(records, tenants, &app.keys.load().kek);
                store.set_ready(true);
                if !was_ready {
                    tracing::info!("storage reachable: ready");
                }
            }
            Err(error) => {
                store.set_ready(false);
                admin = None;
                if was_ready {
                    tracing::warn!(%error, "storage unreachable: not ready");
                }
            }
        }
    }
}

/// Every active API key and every tenant, through `admin` (made anew when missing or
/// broken), within five refresh intervals.
async fn load_keys(
    store: &PgStore,
    admin: &mut Option<PgAdmin>,
) -> Result<(Vec<ApiKeyRecord>, Vec<Tenant>), StoreError> {
    if admin.as_ref().is_none_or(PgAdmin::is_closed) {
        *admin = Some(store.admin().await?);
    }
    let admin = admin.as_ref().ok_or(StoreError::Closed)?;
    let both = async { Ok((admin.api_keys().await?, admin.tenants().await?)) };
    match tokio::time::timeout(KEYS_REFRESH_INTERVAL * 5, both).await {
        Ok(loaded) => loaded,
        Err(_) => Err(StoreError::Io("key refresh timed out".into())),
    }
}

/// Re-reads the secret every `interval` and points new connections at the new URL.
pub fn watch_secret(
    config: PostgresConfig,
    store: &Arc<PgStore>,
    provider: SecretsProvider,
    current: SecretValue,
) -> tokio::task::JoinHandle<()> {
    let (store, interval) = (store.clone(), config.secret_refresh);
    let source = provider.source().to_string();
    storage::secrets::watch(provider, interval, current, move |value| {
        match url_and_tls(&config, Some(&value)) {
            Ok((url, tls)) => {
                store.connector().set_config(url, tls);
                tracing::info!(%source, "database secret rotated; new connections use it");
            }
            Err(error) => tracing::error!(%source, %error, "rotated database secret unusable"),
        }
    })
}
