//! The global limiter: each tenant's TAT in Redis, decided by one Lua script per request
//! (EVALSHA, loaded again on NOSCRIPT), on Redis's own clock.

use std::time::Duration;

use fred::prelude::{
    Builder, ClientLike, Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy,
};
use fred::types::scripts::Script;

use super::{Decision, Quota, RateLimitError};

/// The GCRA of [`super::gcra::step`] in Lua. Redis numbers are doubles, exact below 2^53,
/// so absolute nanoseconds (about 2^61) never appear: the TAT is stored as
/// `"seconds:nanoseconds"` and the arithmetic is on the distance from now, which a
/// quota's window (at most a day) keeps far below 2^53.
///
/// KEYS[1]: the tenant's key. ARGV[1]: emission interval T (ns). ARGV[2]: tolerance τ (ns).
/// Returns `{1, remaining}` when allowed and `{0, retry_after_ns}` when limited. An allowed
/// request stores the new TAT with an expiry at that TAT, so an idle key vanishes.
const SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local time = redis.call('TIME')
local now_s = tonumber(time[1])
local now_n = tonumber(time[2]) * 1000
local ahead = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, n = string.match(stored, '^(%d+):(%d+)$')
  if s then
    ahead = (tonumber(s) - now_s) * 1000000000 + (tonumber(n) - now_n)
  end
end
if ahead < 0 then ahead = 0 end
local capped = false
if ahead > tau + t then
  ahead = tau + t
  capped = true
end
local function store(a)
  local total = now_n + a
  local s = now_s + math.floor(total / 1000000000)
  local n = total % 1000000000
  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', s, n), 'PX', math.ceil(a / 1000000))
end
if ahead > tau then
  if capped then store(ahead) end
  return {0, ahead - tau}
end
local new_ahead = ahead + t
store(new_ahead)
local remaining = 0
if new_ahead <= tau then
  remaining = math.floor((tau - new_ahead) / t) + 1
end
return {1, remaining}
"#;

/// How a [`RedisLimiter`] talks to Redis.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// The most one decision may take, including a NOSCRIPT reload; past it the decision
    /// fails (and [`super::RateLimiter`] decides locally).
    pub decision_timeout: Duration,
    /// The most one connection attempt (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// The longest pause between reconnection attempts while Redis is unreachable.
    pub reconnect_delay_max: Duration,
    /// The most commands queued in the client; past it a decision fails at once.
    pub queue_max: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            decision_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            reconnect_delay_max: Duration::from_secs(2),
            queue_max: 4096,
        }
    }
}

/// A GCRA limiter whose state is in Redis, shared by every process using the same Redis.
///
/// The clock is Redis's (`TIME` inside the script), so gateways whose clocks disagree
/// still agree on every tenant's budget; the `now_ns` the gateway passes to
/// [`super::RateLimiter::check`] is used only by the local fallback.
///
/// The connection is driven by a task spawned on the tokio runtime that called
/// [`RedisLimiter::connect`]; the limiter may be used from any runtime, as long as that
/// one keeps running.
#[derive(Clone)]
pub struct RedisLimiter {
    client: fred::prelude::Client,
    script: Script,
    decision_timeout: Duration,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: it may hold a password.
        f.debug_struct("RedisLimiter")
            .field("connected", &self.is_connected())
            .field("decision_timeout", &self.decision_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// The Redis key of `tenant`'s state.
    pub fn key(tenant: u64) -> String {
        format!("protea:rl:{tenant}")
    }

    /// A limiter on the Redis at `url` (`redis://` or `rediss://`, with an optional
    /// user, password and database). Returns at once: the connection is made in the
    /// background and remade whenever it drops, and until it is up every decision fails
    /// at once. Must be called within a tokio runtime. Only a URL that does not parse is
    /// an error; the error never quotes the URL.
    pub fn connect(url: &str, settings: &RedisSettings) -> Result<Self, RateLimitError> {
        let mut config = Config::from_url(url)
            .map_err(|e| RateLimitError::InvalidUrl(e.kind().to_str().to_owned()))?;
        // Retry the first connection too: a gateway starts with Redis away.
        config.fail_fast = false;
        let connection = ConnectionConfig {
            connection_timeout: settings.connect_timeout,
            internal_command_timeout: settings.connect_timeout,
            // A decision lost with a dropped connection is not sent again: the caller
            // has already decided locally.
            max_command_attempts: 1,
            max_command_buffer_len: settings.queue_max,
            ..ConnectionConfig::default()
        };
        let performance = PerformanceConfig {
            default_command_timeout: settings.decision_timeout,
            ..PerformanceConfig::default()
        };
        let delay_max = u32::try_from(settings.reconnect_delay_max.as_millis()).unwrap_or(u32::MAX);
        let client = Builder::from_config(config)
            .set_connection_config(connection)
            .set_performance_config(performance)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, delay_max.max(50), 2))
            .build()
            .map_err(|e| RateLimitError::InvalidUrl(e.kind().to_str().to_owned()))?;
        drop(client.connect());
        Ok(Self {
            client,
            script: Script::from_lua(SCRIPT),
            decision_timeout: settings.decision_timeout,
        })
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Waits up to `timeout` for the connection to be up; returns whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        if self.is_connected() {
            return true;
        }
        let _ = tokio::time::timeout(timeout, self.client.wait_for_connect()).await;
        self.is_connected()
    }

    /// Decides one request of `tenant` on Redis. Fails at once when not connected, and
    /// within the decision timeout otherwise.
    pub async fn check(&self, tenant: u64, quota: Quota) -> Result<Decision, RateLimitError> {
        if !self.is_connected() {
            return Err(RateLimitError::NotConnected);
        }
        let args = vec![quota.interval_ns().to_string(), quota.tolerance_ns().to_string()];
        let call = self.script.evalsha_with_reload::<Vec<i64>, _, _>(
            &self.client,
            Self::key(tenant),
            args,
        );
        let reply = tokio::time::timeout(self.decision_timeout, call)
            .await
            .map_err(|_| RateLimitError::Timeout(self.decision_timeout))?
            .map_err(|e| RateLimitError::Redis(e.to_string()))?;
        match reply.as_slice() {
            [1, remaining] => {
                Ok(Decision::Allowed { remaining: u32::try_from(*remaining).unwrap_or(u32::MAX) })
            }
            [0, retry_after_ns] => Ok(Decision::Limited {
                retry_after: Duration::from_nanos(u64::try_from(*retry_after_ns).unwrap_or(1)),
            }),
            _ => Err(RateLimitError::Redis(format!(
                "unexpected rate-limit script reply of {} values",
                reply.len()
            ))),
        }
    }

    /// Whether Redis answers a PING within the decision timeout (touches no key).
    pub async fn ping(&self) -> Result<(), RateLimitError> {
        if !self.is_connected() {
            return Err(RateLimitError::NotConnected);
        }
        tokio::time::timeout(self.decision_timeout, self.client.ping::<()>(None))
            .await
            .map_err(|_| RateLimitError::Timeout(self.decision_timeout))?
            .map_err(|e| RateLimitError::Redis(e.to_string()))
    }

    /// Closes the connection (bounded by the decision timeout). Decisions fail after it.
    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.decision_timeout, self.client.quit()).await;
    }
}
