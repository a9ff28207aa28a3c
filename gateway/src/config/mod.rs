//! Configuration: clap flags with environment fallbacks (the raw layer), validated into a
//! typed [`Config`]. Every key is documented in `docs/configuration.md`; a bad value is a
//! [`ConfigError`] naming the key, which `main` turns into exit code 64. Nothing here
//! opens files or sockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use storage::secrets::SecretSource;

use crate::wire::EVENTS_MAX as REQUEST_EVENTS_MAX;

pub mod observability;
pub mod popia;
pub mod security;

pub use observability::{ObservabilityArgs, ObservabilityConfig, OtlpEndpoint};
pub use popia::{PopiaArgs, PopiaConfig};
pub use security::{ClientAuth, SecurityArgs, SecurityConfig, TlsConfig};

/// Protea: a transaction gateway for payment networks.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server flags (for `serve`, or when no command is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve(Box<ServeArgs>),
    /// Manage tenants (payment networks) and their API keys.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create operators (the first admin; later ones through the admin API).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Print a new keys document (a key-encryption key and a token signing key) for
    /// --keys-secret: store it in Secrets Manager or a 0600 file, never in the image.
    KeysGenerate,
    /// Bring the PostgreSQL schema to this build's version, then exit (`serve` does it too).
    Migrate {
        /// Storage flags.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Probe a running gateway over plain HTTP: GET --url (its /livez on localhost by
    /// default) and exit 0 on a 200, 1 otherwise. The container image's HEALTHCHECK.
    Healthcheck(crate::healthcheck::HealthcheckArgs),
    /// Archive the audit trail to an S3 bucket with Object Lock: every complete chunk
    /// after the archived ones (verified first), one NDJSON object per chunk.
    AuditArchive(Box<crate::audit_archive::AuditArchiveArgs>),
}

/// Tenant commands. On the embedded store they go through a running gateway's admin
/// socket, or open the store when none runs; on PostgreSQL they write the database, and
/// running gateways pick up new keys within a second.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first API key (the secret is shown only once).
    Create {
        /// Unique name: 1-64 characters of a-z, 0-9, '_' and '-'.
        name: String,
        /// Storage flags.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tenants.
    List {
        /// Storage flags.
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// Operator commands, for bootstrapping: the first admin of a fresh install.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator and print their TOTP enrolment (shown only once). The password
    /// is read from the first line of stdin, or of --password-file.
    Create {
        /// Sign-in name: 3-64 characters of a-z, 0-9, '.', '_' and '-'.
        username: String,
        /// `admin`, `operator`, `auditor` or `information_officer`.
        #[arg(long)]
        role: String,
        /// A file whose first line is the password (instead of stdin).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Storage flags.
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// Where the data lives.
#[derive(Clone, Debug, Args)]
pub struct StorageArgs {
    /// `embedded` (a redb file in --data-dir), a PostgreSQL URL
    /// (`postgres://user@host:5432/db?sslmode=require`), or `postgres` when the whole URL
    /// comes from --storage-secret.
    #[arg(long, env = "PROTEA_STORAGE", default_value = "embedded", hide_env_values = true)]
    pub storage: String,
    /// Where the database URL or credentials come from: `env:VAR`, `file:PATH` or
    /// `aws-secretsmanager:SECRET_ID`; re-read every --storage-secret-refresh-seconds.
    #[arg(long, env = "PROTEA_STORAGE_SECRET")]
    pub storage_secret: Option<String>,
    /// Seconds between re-reads of --storage-secret (a rotation needs no restart).
    #[arg(long, env = "PROTEA_STORAGE_SECRET_REFRESH_SECONDS", default_value_t = 300)]
    pub storage_secret_refresh_seconds: u64,
    /// PEM bundle of the CAs that sign the database's certificate (Aurora: the RDS global
    /// bundle); default: the webpki roots. Used when the URL says `sslmode=require`.
    #[arg(long, env = "PROTEA_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Seconds allowed to open one database connection (TCP, TLS, authentication).
    #[arg(long, env = "PROTEA_DATABASE_CONNECT_TIMEOUT_SECONDS", default_value_t = 5)]
    pub database_connect_timeout_seconds: u64,
    /// Seconds any one statement may run, lock waits included (`statement_timeout`).
    #[arg(long, env = "PROTEA_DATABASE_STATEMENT_TIMEOUT_SECONDS", default_value_t = 10)]
    pub database_statement_timeout_seconds: u64,
    /// Read connections per core (each core's flush has one more of its own).
    #[arg(long, env = "PROTEA_DATABASE_POOL_SIZE_MAX", default_value_t = 4)]
    pub database_pool_size_max: usize,
    /// Milliseconds a read waits for a free pooled connection before answering 503.
    #[arg(long, env = "PROTEA_DATABASE_POOL_WAIT_TIMEOUT_MS", default_value_t = 2000)]
    pub database_pool_wait_timeout_ms: u64,
    /// Directory of the embedded store (created if missing).
    #[arg(long = "data-dir", env = "PROTEA_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Where the key-encryption key and the operator-token signing keys come from
    /// (`env:VAR`, `file:PATH` or `aws-secretsmanager:SECRET_ID`). Required on PostgreSQL;
    /// on the embedded store the default is `DATA_DIR/keys.json`, created at first use.
    #[arg(long, env = "PROTEA_KEYS_SECRET")]
    pub keys_secret: Option<String>,
}

impl StorageArgs {
    /// Where the sealing and token keys come from: `--keys-secret`, or on the embedded
    /// store the `keys.json` file in the data directory (created when missing).
    pub fn keys_source(&self) -> Result<KeysSource, ConfigError> {
        let storage = self.validate()?;
        match (&self.keys_secret, storage) {
            (Some(text), _) => text
                .parse::<SecretSource>()
                .map(KeysSource::Secret)
                .map_err(|e| invalid("keys-secret", e.to_string())),
            (None, StorageConfig::Embedded) => {
                Ok(KeysSource::DataDirFile(self.data_dir.join(crate::keys::KEYS_FILE)))
            }
            (None, StorageConfig::Postgres(_)) => Err(invalid(
                "keys-secret",
                "required with PostgreSQL: every gateway must open the same sealed keys",
            )),
        }
    }
}

/// Where the key-encryption key and token signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysSource {
    /// A secret (env, file or Secrets Manager), maintained by the operator.
    Secret(SecretSource),
    /// The embedded store's default: a file in the data directory, generated when missing.
    DataDirFile(PathBuf),
}

/// The validated storage choice.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// The redb file in the data directory.
    Embedded,
    /// PostgreSQL / Aurora.
    Postgres(Box<PostgresConfig>),
}

/// How to reach PostgreSQL. `Debug` never shows a password (tokio-postgres redacts it).
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// The URL given with `--storage`; `None` when the secret holds the whole URL.
    pub url: Option<tokio_postgres::Config>,
    /// Where credentials (or the whole URL) come from.
    pub secret: Option<SecretSource>,
    /// Interval of secret re-reads.
    pub secret_refresh: Duration,
    /// CA bundle for TLS.
    pub ca_file: Option<PathBuf>,
    /// Connect and statement timeouts.
    pub limits: pool::pg::ConnectLimits,
    /// Read connections per core.
    pub pool_size_max: usize,
    /// Longest wait for a pooled connection.
    pub pool_wait_timeout: Duration,
}

impl StorageArgs {
    /// Validates the storage flags.
    pub fn validate(&self) -> Result<StorageConfig, ConfigError> {
        let secret = self
            .storage_secret
            .as_deref()
            .map(|text| text.parse::<SecretSource>())
            .transpose()
            .map_err(|e| invalid("storage-secret", e.to_string()))?;
        let url = match self.storage.as_str() {
            "embedded" if secret.is_some() => {
                return Err(invalid("storage-secret", "needs --storage postgres or a URL"));
            }
            "embedded" => return Ok(StorageConfig::Embedded),
            "postgres" if secret.is_none() => {
                return Err(invalid("storage", "`postgres` needs --storage-secret"));
            }
            "postgres" => None,
            text if text.starts_with("postgres://") || text.starts_with("postgresql://") => {
                // Never echo the URL: it may hold a password.
                Some(pool::pg::parse_config(text).map_err(|_| {
                    invalid("storage", "not a valid PostgreSQL URL (postgres://user@host/db)")
                })?)
            }
            _ => return Err(invalid("storage", "expected embedded, postgres or postgres://...")),
        };
        let seconds = |key: &'static str, value: u64, max: u64| {
            if (1..=max).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(invalid(key, format!("must be from 1 to {max}")))
            }
        };
        let limits = pool::pg::ConnectLimits {
            connect_timeout: seconds(
                "database-connect-timeout-seconds",
                self.database_connect_timeout_seconds,
                300,
            )?,
            statement_timeout: seconds(
                "database-statement-timeout-seconds",
                self.database_statement_timeout_seconds,
                3600,
            )?,
        };
        let wait_ms = self.database_pool_wait_timeout_ms;
        if !(1..=60_000).contains(&wait_ms) {
            return Err(invalid("database-pool-wait-timeout-ms", "must be from 1 to 60000"));
        }
        Ok(StorageConfig::Postgres(Box::new(PostgresConfig {
            url,
            secret,
            secret_refresh: seconds(
                "storage-secret-refresh-seconds",
                self.storage_secret_refresh_seconds,
                86_400,
            )?,
            ca_file: self.database_ca_file.clone(),
            limits,
            pool_size_max: within("database-pool-size-max", self.database_pool_size_max, 1..=256)?,
            pool_wait_timeout: Duration::from_millis(wait_ms),
        })))
    }
}

/// Raw server flags, before validation.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (HTTP/1.1 and h2c, or TLS with --tls-cert-file).
    #[arg(long, env = "PROTEA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Storage flags.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Security and hardening flags.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// POPIA flags (retention, key re-wrap).
    #[command(flatten)]
    pub popia: PopiaArgs,
    /// Observability flags (traces, CloudWatch embedded metrics).
    #[command(flatten)]
    pub observability: ObservabilityArgs,
    /// Cores to run (one runtime, listener and batcher each); default: all cores.
    #[arg(long, env = "PROTEA_THREADS")]
    pub threads: Option<usize>,
    /// Most events in one group commit (at least 8190, the largest request).
    #[arg(long, env = "PROTEA_BATCH_SIZE_MAX", default_value_t = 8190)]
    pub batch_size_max: usize,
    /// Most requests waiting for a core's batcher; past it, 503 with Retry-After.
    #[arg(long, env = "PROTEA_QUEUE_DEPTH_MAX", default_value_t = 1024)]
    pub queue_depth_max: usize,
    /// Largest request body in bytes; past it, 413.
    #[arg(long, env = "PROTEA_BODY_BYTES_MAX", default_value_t = 4 * 1024 * 1024)]
    pub body_bytes_max: usize,
    /// Most open client connections per process; past it, new ones are closed.
    #[arg(long, env = "PROTEA_CONNECTIONS_MAX", default_value_t = 10_000)]
    pub connections_max: usize,
    /// Seconds to wait for in-flight requests after SIGTERM before closing connections.
    #[arg(long, env = "PROTEA_DRAIN_TIMEOUT_SECONDS", default_value_t = 25)]
    pub drain_timeout_seconds: u64,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "PROTEA_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to send a request's body once its headers arrived; past it, 408.
    #[arg(long, env = "PROTEA_BODY_READ_TIMEOUT_SECONDS", default_value_t = 30)]
    pub body_read_timeout_seconds: u64,
    /// Log filter (tracing syntax, e.g. `info` or `gateway=debug`).
    #[arg(long, env = "PROTEA_LOG", default_value = "info")]
    pub log: String,
}

/// Validated server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded store (and of the admin socket).
    pub data_dir: PathBuf,
    /// Which store, and how to reach it.
    pub storage: StorageConfig,
    /// Where the sealing and token keys come from.
    pub keys: KeysSource,
    /// TLS, credentials, rate limits, sessions and request limits.
    pub security: SecurityConfig,
    /// The POPIA jobs' schedule.
    pub popia: PopiaConfig,
    /// Service name, span export and CloudWatch embedded metrics.
    pub observability: ObservabilityConfig,
    /// Cores to run.
    pub threads: usize,
    /// Most events in one group commit.
    pub batch_size_max: usize,
    /// Most requests waiting per core.
    pub queue_depth_max: usize,
    /// Largest request body.
    pub body_bytes_max: usize,
    /// Most open connections per process.
    pub connections_max: usize,
    /// Grace period for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// Time allowed to send request headers.
    pub header_read_timeout: Duration,
    /// Time allowed to send a request body.
    pub body_read_timeout: Duration,
    /// Log filter.
    pub log: String,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The flag's name (its environment variable is `PROTEA_` + upper case).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { key, message: message.into() }
}

fn within(
    key: &'static str,
    value: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(key, format!("{value} is outside {}..={}", range.start(), range.end())))
    }
}

impl ServeArgs {
    /// Validates the flags into a [`Config`]; `cores` is the machine's core count.
    pub fn validate(&self, cores: usize) -> Result<Config, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            invalid("listen", format!("{:?} is not an address like 127.0.0.1:8080", self.listen))
        })?;
        let threads = within("threads", self.threads.unwrap_or(cores), 1..=1024)?;
        let batch_size_max =
            within("batch-size-max", self.batch_size_max, REQUEST_EVENTS_MAX..=1_000_000)?;
        if self.drain_timeout_seconds > 3600 {
            return Err(invalid("drain-timeout-seconds", "must be at most 3600"));
        }
        if !(1..=600).contains(&self.header_read_timeout_seconds) {
            return Err(invalid("header-read-timeout-seconds", "must be from 1 to 600"));
        }
        if !(1..=600).contains(&self.body_read_timeout_seconds) {
            return Err(invalid("body-read-timeout-seconds", "must be from 1 to 600"));
        }
        Ok(Config {
            listen,
            data_dir: self.storage.data_dir.clone(),
            storage: self.storage.validate()?,
            keys: self.storage.keys_source()?,
            security: self.security.validate()?,
            popia: self.popia.validate()?,
            observability: self.observability.validate()?,
            threads,
            batch_size_max,
            queue_depth_max: within("queue-depth-max", self.queue_depth_max, 1..=1_000_000)?,
            body_bytes_max: within(
                "body-bytes-max",
                self.body_bytes_max,
                1024..=256 * 1024 * 1024,
            )?,
            connections_max: within("connections-max", self.connections_max, 1..=1_000_000)?,
            drain_timeout: Duration::from_secs(self.drain_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_seconds),
            log: self.log.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().serve
    }

    #[test]
    fn defaults_validate() {
        let config = args(&[]).validate(4).unwrap();
        assert_eq!(config.threads, 4);
        assert_eq!(config.batch_size_max, REQUEST_EVENTS_MAX);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(&[&str], &str); 24] = [
            (&["--listen", "nowhere"], "listen"),
            (&["--threads", "0"], "threads"),
            (&["--batch-size-max", "100"], "batch-size-max"),
            (&["--queue-depth-max", "0"], "queue-depth-max"),
            (&["--body-bytes-max", "10"], "body-bytes-max"),
            (&["--storage", "mysql://x"], "storage"),
            (&["--storage", "postgres://u:p@[::1"], "storage"),
            (&["--storage", "postgres"], "storage"),
            (&["--storage-secret", "vault:x"], "storage-secret"),
            (&["--storage-secret", "env:DB_URL"], "storage-secret"),
            (
                &["--storage", "postgres://h/db", "--database-pool-size-max", "0"],
                "database-pool-size-max",
            ),
            (&["--storage", "postgres://h/db"], "keys-secret"),
            (&["--keys-secret", "vault:x"], "keys-secret"),
            (&["--tls-cert-file", "c.pem"], "tls-key-file"),
            (&["--tls-key-file", "k.pem"], "tls-cert-file"),
            (&["--tls-client-ca-file", "ca.pem"], "tls-client-ca-file"),
            (
                &["--tls-cert-file", "c", "--tls-key-file", "k", "--tls-client-auth", "required"],
                "tls-client-auth",
            ),
            (&["--signature-window-seconds", "0"], "signature-window-seconds"),
            (&["--rate-limit-per-second", "0"], "rate-limit-per-second"),
            (&["--redis-url", "http://x"], "redis-url"),
            (&["--sessions-table", "a b"], "sessions-table"),
            (&["--headers-max", "1"], "headers-max"),
            (&["--url-bytes-max", "10"], "url-bytes-max"),
            (&["--idle-timeout-seconds", "0"], "idle-timeout-seconds"),
        ];
        for (flags, key) in cases {
            let error = args(flags).validate(2).unwrap_err();
            assert_eq!(error.key, key, "{flags:?}");
        }
    }

    #[test]
    fn postgres_storage_validates_without_echoing_the_password() {
        let url = "postgres://protea:hunter2@db.example:5432/ledger?sslmode=require";
        let config = args(&["--storage", url, "--keys-secret", "env:KEYS"]).validate(2).unwrap();
        let StorageConfig::Postgres(postgres) = &config.storage else { panic!("postgres") };
        assert!(postgres.url.is_some() && postgres.secret.is_none());
        assert!(!format!("{config:?}").contains("hunter2"));
        let bad = args(&["--storage", "postgres://protea:hunter2@db/x?sslmode=nonsense"]);
        assert!(!bad.validate(2).unwrap_err().to_string().contains("hunter2"));
        let from_secret = [
            "--storage",
            "postgres",
            "--storage-secret",
            "aws-secretsmanager:db",
            "--keys-secret",
            "aws-secretsmanager:keys",
        ];
        assert!(matches!(
            args(&from_secret).validate(2).unwrap().storage,
            StorageConfig::Postgres(_)
        ));
    }

    #[test]
    fn security_defaults_and_keys_source() {
        let config = args(&[]).validate(2).unwrap();
        let security = &config.security;
        assert!(security.tls.is_none() && !security.allow_bearer_keys);
        assert_eq!(security.signature_window_seconds, 300);
        assert_eq!(config.keys, KeysSource::DataDirFile(PathBuf::from("data/keys.json")));
        let tls =
            args(&["--tls-cert-file", "c", "--tls-key-file", "k", "--tls-client-ca-file", "ca"]);
        let tls = tls.validate(2).unwrap().security.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Optional);
        let redis = args(&["--redis-url", "redis://:hunter2@cache:6379"]).validate(2).unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
    }

    #[test]
    fn tenant_create_parses() {
        let cli = Cli::try_parse_from(["gateway", "tenant", "create", "acme", "--data-dir", "/x"])
            .unwrap();
        let Some(Command::Tenant(TenantCommand::Create { name, storage })) = cli.command else {
            panic!("expected tenant create");
        };
        assert_eq!(name, "acme");
        assert_eq!(storage.data_dir, PathBuf::from("/x"));
    }
}
