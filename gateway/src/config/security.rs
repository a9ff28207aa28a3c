//! The security and hardening flags of `serve` (the raw clap layer), validated into a
//! typed [`SecurityConfig`]: TLS and mTLS, which credentials tenants may use, the replay
//! window, rate limits, where sessions and shared state live, and the request limits
//! that keep slow or hostile clients bounded. Nothing here opens a file or a socket:
//! paths are checked when the server starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use storage::ratelimit::Quota;

use super::{ConfigError, invalid, within};

/// Raw security flags, before validation.
#[derive(Clone, Debug, Args)]
pub struct SecurityArgs {
    /// PEM certificate chain of the server; with --tls-key-file, the listener speaks TLS
    /// (ALPN h2 and http/1.1) instead of plain HTTP.
    #[arg(long, env = "PROTEA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert-file.
    #[arg(long, env = "PROTEA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates identify tenants (mTLS): the
    /// certificate's subject common name is the tenant's name.
    #[arg(long, env = "PROTEA_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Whether a TLS client must present a certificate (`required`) or may sign its
    /// requests instead (`optional`). Needs --tls-client-ca-file.
    #[arg(long, env = "PROTEA_TLS_CLIENT_AUTH", value_enum, default_value_t = ClientAuth::Optional)]
    pub tls_client_auth: ClientAuth,
    /// Accept `Authorization: Bearer KEYID.SECRET` as well as signed requests (for local
    /// tools; a bearer secret crosses the wire on every request).
    #[arg(long, env = "PROTEA_ALLOW_BEARER_KEYS")]
    pub allow_bearer_keys: bool,
    /// Seconds a signed request's timestamp may be from the gateway's clock, either way.
    #[arg(long, env = "PROTEA_SIGNATURE_WINDOW_SECONDS", default_value_t = 300)]
    pub signature_window_seconds: u64,
    /// Most signature nonces remembered per process (to refuse replays within the
    /// window), about 20-40 bytes each; past it, signed requests get 503 until old nonces
    /// age out. Size it to the signed requests per second times the window.
    #[arg(long, env = "PROTEA_REPLAY_CACHE_ENTRIES_MAX", default_value_t = 2_000_000)]
    pub replay_cache_entries_max: usize,
    /// Requests per second each tenant may sustain (GCRA); past it, 429 with Retry-After.
    #[arg(long, env = "PROTEA_RATE_LIMIT_PER_SECOND", default_value_t = 5_000)]
    pub rate_limit_per_second: u32,
    /// Requests a tenant may send at once after being idle.
    #[arg(long, env = "PROTEA_RATE_LIMIT_BURST", default_value_t = 10_000)]
    pub rate_limit_burst: u32,
    /// Sign-in attempts per minute from one client address (operators).
    #[arg(long, env = "PROTEA_SIGN_IN_PER_MINUTE", default_value_t = 20)]
    pub sign_in_per_minute: u32,
    /// Redis URL (`redis://` or `rediss://`): rate limits become global across gateway
    /// processes and the session cache is shared. Without it, limits are per process.
    #[arg(long, env = "PROTEA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// DynamoDB table of operator sessions (AWS settings from the standard environment);
    /// without it, sessions live in the store.
    #[arg(long, env = "PROTEA_SESSIONS_TABLE")]
    pub sessions_table: Option<String>,
    /// Create the DynamoDB sessions table at start when it is missing (local stacks and
    /// tests; in AWS, Terraform owns the table and the task role may not create it).
    #[arg(long, env = "PROTEA_SESSIONS_TABLE_CREATE")]
    pub sessions_table_create: bool,
    /// Minutes an operator token is valid (a session outlives it; refresh for another).
    #[arg(long, env = "PROTEA_TOKEN_LIFETIME_MINUTES", default_value_t = 10)]
    pub token_lifetime_minutes: u64,
    /// Longest request target (path and query), in bytes; past it, 414.
    #[arg(long, env = "PROTEA_URL_BYTES_MAX", default_value_t = 4096)]
    pub url_bytes_max: usize,
    /// Most header fields in one request; past it, 431.
    #[arg(long, env = "PROTEA_HEADERS_MAX", default_value_t = 64)]
    pub headers_max: usize,
    /// Most bytes of request line and headers together; past it, 431.
    #[arg(long, env = "PROTEA_HEADER_BYTES_MAX", default_value_t = 32 * 1024)]
    pub header_bytes_max: usize,
    /// Most audit records waiting for the trail's writer; past it, a request that must be
    /// audited waits up to 2 s, then gets 503.
    #[arg(long, env = "PROTEA_AUDIT_QUEUE_MAX", default_value_t = 10_000)]
    pub audit_queue_max: usize,
    /// Seconds between re-reads of the keys document (--keys-secret): a rotated
    /// key-encryption or token key takes effect without a restart.
    #[arg(long, env = "PROTEA_KEYS_REFRESH_SECONDS", default_value_t = 60)]
    pub keys_refresh_seconds: u64,
    /// Proxies in front of the gateway that append the client's address to
    /// X-Forwarded-For (an ALB: 1; CloudFront and an ALB: 2). The client address of the
    /// sign-in limit and audit records is the entry that many places from the right;
    /// 0 takes the connection's peer address and ignores the header.
    #[arg(long, env = "PROTEA_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
    /// Seconds a connection may stay open without sending a byte; then it is closed.
    #[arg(long, env = "PROTEA_IDLE_TIMEOUT_SECONDS", default_value_t = 120)]
    pub idle_timeout_seconds: u64,
}

/// Whether TLS clients must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientAuth {
    /// A certificate from the client CA identifies the tenant; without one, the request
    /// must be signed.
    Optional,
    /// The handshake fails without a certificate from the client CA.
    Required,
}

/// Validated TLS settings.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The client CA bundle, when mTLS is on.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required.
    pub client_auth: ClientAuth,
}

/// Validated security settings.
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// TLS, or `None` for plain HTTP (behind a TLS-terminating proxy, or local use).
    pub tls: Option<TlsConfig>,
    /// Whether Bearer keys are accepted.
    pub allow_bearer_keys: bool,
    /// Replay window of signed requests.
    pub signature_window_seconds: u64,
    /// Bound of the nonce cache.
    pub replay_cache_entries_max: usize,
    /// Each tenant's rate limit.
    pub tenant_quota: Quota,
    /// Sign-in attempts per client address.
    pub sign_in_quota: Quota,
    /// Redis, when configured (never printed: it may hold a password).
    pub redis_url: Option<RedisUrl>,
    /// DynamoDB sessions table, when configured.
    pub sessions_table: Option<String>,
    /// Whether to create it at start.
    pub sessions_table_create: bool,
    /// Lifetime of an operator token.
    pub token_lifetime: Duration,
    /// Longest request target.
    pub url_bytes_max: usize,
    /// Most header fields.
    pub headers_max: usize,
    /// Most header bytes.
    pub header_bytes_max: usize,
    /// Bound of the audit queue.
    pub audit_queue_max: usize,
    /// Interval of keys-document re-reads.
    pub keys_refresh: Duration,
    /// Proxies that append to X-Forwarded-For.
    pub trusted_proxy_hops: usize,
    /// Longest silence on a connection.
    pub idle_timeout: Duration,
}

/// A Redis URL whose `Debug` hides it (it may carry a password).
#[derive(Clone)]
pub struct RedisUrl(pub String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl([redacted])")
    }
}

impl SecurityArgs {
    /// Validates the security flags.
    pub fn validate(&self) -> Result<SecurityConfig, ConfigError> {
        if !(1..=3600).contains(&self.signature_window_seconds) {
            return Err(invalid("signature-window-seconds", "must be from 1 to 3600"));
        }
        let tenant_quota =
            Quota::new(self.rate_limit_per_second, self.rate_limit_burst).map_err(|e| {
                let key = match e {
                    storage::ratelimit::QuotaError::Rate(_) => "rate-limit-per-second",
                    _ => "rate-limit-burst",
                };
                invalid(key, e.to_string())
            })?;
        let sign_in_per_minute =
            within("sign-in-per-minute", self.sign_in_per_minute as usize, 1..=10_000)?;
        let sign_in_quota = sign_in_quota(sign_in_per_minute)?;
        if !(1..=60 * 24).contains(&self.token_lifetime_minutes) {
            return Err(invalid("token-lifetime-minutes", "must be from 1 to 1440"));
        }
        if !(1..=3600).contains(&self.idle_timeout_seconds) {
            return Err(invalid("idle-timeout-seconds", "must be from 1 to 3600"));
        }
        Ok(SecurityConfig {
            tls: self.tls()?,
            allow_bearer_keys: self.allow_bearer_keys,
            signature_window_seconds: self.signature_window_seconds,
            replay_cache_entries_max: within(
                "replay-cache-entries-max",
                self.replay_cache_entries_max,
                1024..=100_000_000,
            )?,
            tenant_quota,
            sign_in_quota,
            redis_url: self.redis_url()?,
            sessions_table: self.sessions_table()?,
            sessions_table_create: self.sessions_table_create,
            token_lifetime: Duration::from_secs(self.token_lifetime_minutes * 60),
            url_bytes_max: within("url-bytes-max", self.url_bytes_max, 256..=65_536)?,
            headers_max: within("headers-max", self.headers_max, 8..=1024)?,
            header_bytes_max: within("header-bytes-max", self.header_bytes_max, 8192..=1_048_576)?,
            audit_queue_max: within("audit-queue-max", self.audit_queue_max, 16..=1_000_000)?,
            keys_refresh: Duration::from_secs(within(
                "keys-refresh-seconds",
                self.keys_refresh_seconds as usize,
                1..=86_400,
            )? as u64),
            trusted_proxy_hops: within("trusted-proxy-hops", self.trusted_proxy_hops, 0..=8)?,
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
        })
    }

    fn tls(&self) -> Result<Option<TlsConfig>, ConfigError> {
        let (cert_file, key_file) = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) if self.tls_client_ca_file.is_some() => {
                return Err(invalid(
                    "tls-client-ca-file",
                    "needs --tls-cert-file and --tls-key-file",
                ));
            }
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(invalid("tls-key-file", "required with --tls-cert-file"));
            }
            (None, Some(_)) => {
                return Err(invalid("tls-cert-file", "required with --tls-key-file"));
            }
        };
        if self.tls_client_auth == ClientAuth::Required && self.tls_client_ca_file.is_none() {
            return Err(invalid("tls-client-auth", "`required` needs --tls-client-ca-file"));
        }
        Ok(Some(TlsConfig {
            cert_file,
            key_file,
            client_ca_file: self.tls_client_ca_file.clone(),
            client_auth: self.tls_client_auth,
        }))
    }

    fn redis_url(&self) -> Result<Option<RedisUrl>, ConfigError> {
        match &self.redis_url {
            None => Ok(None),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(Some(RedisUrl(url.clone())))
            }
            // Never echo the URL: it may hold a password.
            Some(_) => Err(invalid("redis-url", "expected redis://HOST:PORT or rediss://...")),
        }
    }

    fn sessions_table(&self) -> Result<Option<String>, ConfigError> {
        let Some(table) = &self.sessions_table else { return Ok(None) };
        let valid = (3..=255).contains(&table.len())
            && table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(Some(table.clone()))
        } else {
            Err(invalid("sessions-table", "a DynamoDB table name: 3-255 of A-Z a-z 0-9 _ . -"))
        }
    }
}

/// `per_minute` attempts a minute, all of them at once at most.
fn sign_in_quota(per_minute: usize) -> Result<Quota, ConfigError> {
    // GCRA takes a rate per second; a minute's worth is a burst of `per_minute` refilled
    // at one per `60 / per_minute` seconds, which Quota expresses as burst over a window.
    let burst =
        u32::try_from(per_minute).map_err(|_| invalid("sign-in-per-minute", "too large"))?;
    Quota::per_window(burst, Duration::from_secs(60))
        .map_err(|e| invalid("sign-in-per-minute", e.to_string()))
}
