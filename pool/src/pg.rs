//! Per-core PostgreSQL connections: one [`Connector`] per process, and from it each core
//! builds its own bounded [`deadpool_postgres::Pool`] ([`core_pool`]) and its own flush
//! connection, so no connection is ever used by two cores.
//!
//! Every connection made here goes to a writable primary (`target_session_attrs =
//! read-write`: after an Aurora failover the old writer's address may briefly point at a
//! reader), has a connect timeout, and gets `statement_timeout` and
//! `idle_in_transaction_session_timeout` set before it is handed out. TLS is rustls with
//! the server certificate always verified (against a configured CA bundle, or the
//! webpki roots); `sslmode=require` turns it on, and a connection never falls back to
//! plain text once TLS was asked for.
//!
//! The database URL may change while the process runs (a rotated secret): [`Connector::
//! set_config`] swaps it, and every connection made afterwards uses the new one.
//!
//! This module never logs (a URL may carry a password) and never reads configuration
//! itself: the caller passes what it parsed.

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::task::JoinHandle;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Limits every connection of a [`Connector`] has.
#[derive(Clone, Copy, Debug)]
pub struct ConnectLimits {
    /// Bound on establishing one connection (TCP, TLS, authentication, session set-up).
    pub connect_timeout: Duration,
    /// `statement_timeout` of every session: no statement (lock waits included) runs longer.
    pub statement_timeout: Duration,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused, failed or closed the connection.
    #[error("postgres connection failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Connecting took longer than `connect_timeout`.
    #[error("postgres connection timed out after {0:?}")]
    Timeout(Duration),
    /// rustls refused the TLS settings.
    #[error("TLS set-up failed: {0}")]
    TlsSetup(String),
    /// The CA bundle could not be read or holds no usable certificate.
    #[error("CA bundle {path}: {reason}")]
    CaBundle {
        /// The bundle's path.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// How connections are encrypted.
#[derive(Clone)]
pub enum Tls {
    /// Plain TCP or Unix socket (`sslmode` disable or prefer: Protea does not encrypt
    /// without verifying, so `prefer` means plain).
    Off,
    /// rustls, verifying the server's certificate chain and host name.
    Verified(MakeRustlsConnect),
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "Tls::Off",
            Self::Verified(_) => "Tls::Verified",
        })
    }
}

impl Tls {
    /// TLS for `config`: verified rustls when it says `sslmode=require`, else off. The
    /// trust anchors are the certificates in `ca_bundle` (PEM), or the webpki roots.
    pub fn for_config(
        config: &tokio_postgres::Config,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, ConnectError> {
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Self::Off);
        }
        let roots = match ca_bundle {
            Some(path) => roots_from_pem(path)?,
            None => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectError::TlsSetup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::Verified(MakeRustlsConnect::new(tls)))
    }
}

/// The server's SQLSTATE and message when there is one, else the client-side error with
/// its causes (tokio-postgres' `Display` leaves the cause out, such as why a TLS
/// handshake failed).
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} {}", db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// Whether `error` is the server's certificate failing verification (unknown issuer,
/// wrong host name, expired...): a setting to fix, not an outage to wait out.
pub fn is_certificate_rejection(error: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            let io = error.downcast_ref::<std::io::Error>()?;
            io.get_ref()?.downcast_ref::<rustls::Error>()
        });
        if matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Parses a PostgreSQL URL or key=value string. libpq's `sslmode=verify-full` and
/// `verify-ca` (which tokio-postgres does not know) mean `require` here: Protea verifies
/// the chain and the host name whenever it encrypts.
pub fn parse_config(text: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let text = text.replace("sslmode=verify-full", "sslmode=require");
    text.replace("sslmode=verify-ca", "sslmode=require").parse()
}

/// The trust anchors in a PEM bundle (for Aurora: the RDS global bundle).
fn roots_from_pem(path: &Path) -> Result<rustls::RootCertStore, ConnectError> {
    let failure =
        |reason: String| ConnectError::CaBundle { path: path.display().to_string(), reason };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| failure(e.to_string()))? {
        let cert = cert.map_err(|e| failure(e.to_string()))?;
        roots.add(cert).map_err(|e| failure(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failure("no certificates in the bundle".into()));
    }
    Ok(roots)
}

/// Makes connections to one database; shared by every core, each of which uses the
/// connections it made on its own runtime only.
pub struct Connector {
    target: ArcSwap<Target>,
    limits: ConnectLimits,
}

/// Where connections go and how they are encrypted, swapped together.
struct Target {
    config: tokio_postgres::Config,
    tls: Tls,
}

impl Target {
    /// Every connection must land on a primary that accepts writes.
    fn writable(mut config: tokio_postgres::Config, tls: Tls) -> Self {
        config.target_session_attrs(TargetSessionAttrs::ReadWrite);
        Self { config, tls }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config may hold a password: show only where it points.
        let target = self.target.load();
        f.debug_struct("Connector")
            .field("hosts", &target.config.get_hosts().len())
            .field("dbname", &target.config.get_dbname())
            .field("tls", &target.tls)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Connector {
    /// A connector for `config`, encrypted as `tls` says.
    pub fn new(config: tokio_postgres::Config, tls: Tls, limits: ConnectLimits) -> Self {
        Self { target: ArcSwap::from_pointee(Target::writable(config, tls)), limits }
    }

    /// Replaces the database config (for example after a secret rotation); connections
    /// made from now on use it, existing ones stay as they are.
    pub fn set_config(&self, config: tokio_postgres::Config, tls: Tls) {
        self.target.store(Arc::new(Target::writable(config, tls)));
    }

    /// The limits every connection has.
    pub fn limits(&self) -> ConnectLimits {
        self.limits
    }

    /// A new session on the current runtime (its I/O task is spawned there), with the
    /// session timeouts set. Fails after `connect_timeout`.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let timeout = self.limits.connect_timeout;
        let (client, _io) = tokio::time::timeout(timeout, self.connect_unbounded())
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        Ok(client)
    }

    /// A session and its I/O task; no timeout of its own.
    async fn connect_unbounded(&self) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
        let target = self.target.load_full();
        let (client, io) = match &target.tls {
            Tls::Off => spawn_io(target.config.connect(NoTls).await?),
            Tls::Verified(tls) => spawn_io(target.config.connect(tls.clone()).await?),
        };
        let statement_ms = self.limits.statement_timeout.as_millis();
        client
            .batch_execute(&format!(
                "SET statement_timeout = {statement_ms}; \
                 SET idle_in_transaction_session_timeout = {}",
                statement_ms.saturating_mul(2)
            ))
            .await?;
        Ok((client, io))
    }
}

/// Runs a connection's I/O on the current runtime. When the connection ends, the client
/// reports `is_closed`; the error itself reaches the caller through the client's next
/// call. The I/O task ends when the client is dropped (or the handle aborted).
fn spawn_io<S, T>(
    (client, connection): (Client, tokio_postgres::Connection<S, T>),
) -> (Client, JoinHandle<()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = tokio::spawn(async move {
        let _ended = connection.await;
    });
    (client, io)
}

/// Lets deadpool make connections through a shared [`Connector`].
struct PoolConnect(Arc<Connector>);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        _ignored: &tokio_postgres::Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        // deadpool bounds the whole creation with its `create` timeout.
        Box::pin(self.0.connect_unbounded())
    }
}

/// One core's pool: at most `size_max` connections, each made through `connector` on
/// this core's runtime, with statements prepared once per connection
/// (`prepare_cached`). Waiting for a free connection is bounded by `wait_timeout`.
///
/// # Errors
/// Only when deadpool rejects the configuration (a zero size).
pub fn core_pool(
    connector: Arc<Connector>,
    size_max: usize,
    wait_timeout: Duration,
) -> Result<Pool, deadpool_postgres::BuildError> {
    let limits = connector.limits();
    let placeholder = tokio_postgres::Config::new();
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = Manager::from_connect(placeholder, PoolConnect(connector), manager_config);
    Pool::builder(manager)
        .max_size(size_max)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(wait_timeout),
            create: Some(limits.connect_timeout),
            recycle: Some(limits.connect_timeout),
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_verify_modes_mean_verified_tls() {
        for mode in ["verify-full", "verify-ca", "require"] {
            let config = parse_config(&format!("postgres://u@db.example/x?sslmode={mode}"));
            assert_eq!(config.unwrap().get_ssl_mode(), SslMode::Require, "{mode}");
            let config = parse_config(&format!("host=db.example user=u sslmode={mode}"));
            assert_eq!(config.unwrap().get_ssl_mode(), SslMode::Require, "{mode}");
        }
        let plain = parse_config("postgres://u@db.example/x").unwrap();
        assert!(matches!(Tls::for_config(&plain, None), Ok(Tls::Off)));
        let verified = parse_config("postgres://u@db.example/x?sslmode=verify-full").unwrap();
        assert!(matches!(Tls::for_config(&verified, None), Ok(Tls::Verified(_))));
        assert!(parse_config("postgres://u@db.example/x?sslmode=sometimes").is_err());
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("protea-pg-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let config = parse_config("postgres://u@db.example/x?sslmode=require").unwrap();
        let error = Tls::for_config(&config, Some(&empty)).unwrap_err().to_string();
        assert!(error.contains("empty.pem"), "{error}");
        let missing = Tls::for_config(&config, Some(&dir.join("missing.pem")));
        assert!(missing.unwrap_err().to_string().contains("missing.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
