//! The Redis cache in front of the sessions table.
//!
//! Key `protea:session:{id}`, with a TTL of [`CACHE_TTL_S`], holds either the session as
//! JSON or the tombstone [`TOMBSTONE`] for a revoked one. A revoke writes DynamoDB first,
//! then the tombstone, which overwrites whatever is cached: from then on every process
//! answers "not live", from the cache or from DynamoDB. A fill (after a cache miss or a
//! touch) never overwrites a tombstone (one Lua script: read, compare, set), so a lookup
//! that read DynamoDB before the revoke cannot re-cache the live session afterwards. The
//! only residue: a fill delayed past the tombstone's TTL (30 s after the revoke), which
//! the bounded DynamoDB and Redis timeouts make impossible short of a paused process.
//!
//! Every Redis command is bounded by [`REDIS_TIMEOUT`] and fails at once while the
//! connection is down (fred's `fail_fast`); callers then use DynamoDB. The transition to
//! and from "unreachable" is logged once each way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config, Expiration, KeysInterface, LuaInterface, Options,
    ReconnectPolicy,
};

use super::{Session, SessionError};

/// How long a cached session or tombstone lives, in seconds.
pub(crate) const CACHE_TTL_S: u64 = 30;
/// The cached value of a revoked session.
pub(crate) const TOMBSTONE: &str = "revoked";
/// Bound on one Redis command.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Bound on opening a connection (TCP, TLS, handshake), and on the first wait for it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Delays between reconnection attempts while Redis is unreachable, in milliseconds: from
/// the first (with `fail_fast` off, fred makes even the first connection through its
/// reconnection path, so this delay comes before it) doubling up to the last.
const RECONNECT_DELAY_MIN_MS: u32 = 20;
/// The longest delay between reconnection attempts, in milliseconds.
const RECONNECT_DELAY_MAX_MS: u32 = 2_000;

/// Sets KEYS[1] to ARGV[1] with TTL ARGV[3] unless it holds the tombstone ARGV[2].
const FILL_SCRIPT: &str = "\
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1";

/// What the cache holds for one id.
pub(crate) enum Cached {
    /// Nothing (or something unreadable, which is treated as nothing).
    Miss,
    /// The tombstone: revoked.
    Revoked,
    /// A session as it was when cached.
    Session(Session),
}

/// A Redis client with the sessions' key layout and failure handling. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SessionCache {
    client: Client,
    options: Options,
    reachable: Arc<AtomicBool>,
}

impl SessionCache {
    /// A client for `url` that connects in the background and keeps reconnecting; it is
    /// usable (each command failing fast) while Redis is down. Waits at most
    /// [`CONNECT_TIMEOUT`] for the first connection.
    pub(crate) async fn connect(url: &str) -> Result<Self, SessionError> {
        let mut config = Config::from_url(url)
            .map_err(|error| SessionError::RedisUrl(error.kind().to_str().to_owned()))?;
        // Keep retrying the first connection too, instead of ending the connection task.
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_connection_config(|connection| {
                connection.connection_timeout = CONNECT_TIMEOUT;
                connection.internal_command_timeout = CONNECT_TIMEOUT;
                connection.max_command_attempts = 1;
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = REDIS_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                RECONNECT_DELAY_MIN_MS,
                RECONNECT_DELAY_MAX_MS,
                2,
            ))
            .build()
            .map_err(|error| SessionError::RedisUrl(error.kind().to_str().to_owned()))?;
        // The connection task lives as long as the runtime that spawned it (the store lives
        // as long as the process); it reconnects whenever the connection drops.
        let _task = client.connect();
        let waited = tokio::time::timeout(CONNECT_TIMEOUT, client.wait_for_connect()).await;
        let connected = matches!(waited, Ok(Ok(())));
        if !connected {
            tracing::warn!("sessions cache: Redis unreachable, using DynamoDB directly");
        }
        let options = Options {
            fail_fast: true,
            timeout: Some(REDIS_TIMEOUT),
            max_attempts: Some(1),
            ..Options::default()
        };
        Ok(Self { client, options, reachable: Arc::new(AtomicBool::new(connected)) })
    }

    fn key(id: &str) -> String {
        format!("protea:session:{id}")
    }

    /// Runs one command under [`REDIS_TIMEOUT`]; `None` when Redis failed or timed out.
    async fn bounded<T, F>(&self, command: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, fred::error::Error>>,
    {
        let outcome = match tokio::time::timeout(REDIS_TIMEOUT, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.kind().to_str().to_owned()),
            Err(_) => Err("timed out".to_owned()),
        };
        match outcome {
            Ok(value) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("sessions cache: Redis reachable again");
                }
                Some(value)
            }
            Err(kind) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %kind,
                        "sessions cache: Redis unreachable, using DynamoDB directly"
                    );
                }
                None
            }
        }
    }

    /// What the cache holds for `id`; `None` when Redis could not be asked.
    pub(crate) async fn get(&self, id: &str) -> Option<Cached> {
        let client = self.client.with_options(&self.options);
        let key = Self::key(id);
        let value: Option<String> = self.bounded(client.get(key)).await?;
        Some(match value {
            None => Cached::Miss,
            Some(text) if text == TOMBSTONE => Cached::Revoked,
            Some(text) => match serde_json::from_str::<Session>(&text) {
                Ok(session) if session.id == id => Cached::Session(session),
                // Unreadable or not this session: ignore it; the next fill replaces it.
                _ => Cached::Miss,
            },
        })
    }

    /// Caches `session` unless its key holds the tombstone. `false` when Redis failed.
    pub(crate) async fn fill(&self, session: &Session) -> bool {
        let Ok(json) = serde_json::to_string(session) else { return false };
        let client = self.client.with_options(&self.options);
        let key = Self::key(&session.id);
        let args = vec![json, TOMBSTONE.to_owned(), CACHE_TTL_S.to_string()];
        let filled: Option<i64> = self.bounded(client.eval(FILL_SCRIPT, key, args)).await;
        filled.is_some()
    }

    /// Writes the tombstone for `id` over whatever is cached. `false` when Redis failed.
    pub(crate) async fn tombstone(&self, id: &str) -> bool {
        let client = self.client.with_options(&self.options);
        let key = Self::key(id);
        let ttl = Expiration::EX(CACHE_TTL_S as i64);
        let set: Option<()> =
            self.bounded(client.set(key, TOMBSTONE, Some(ttl), None, false)).await;
        set.is_some()
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("reachable", &self.reachable.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
