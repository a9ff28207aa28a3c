//! Per-tenant rate limits: the generic cell rate algorithm (GCRA), decided in this process
//! ([`LocalLimiter`]) or across every gateway process through Redis ([`RedisLimiter`]),
//! behind one face ([`RateLimiter`]) that falls back to local limits when Redis fails.
//!
//! A [`Quota`] is a steady rate per second and a burst: a tenant idle long enough may send
//! `burst` requests at once, then one per `1/rate` seconds. Each key keeps one number, its
//! theoretical arrival time (TAT); a request conforms when `max(TAT, now) − now ≤ τ`,
//! with emission interval `T = 1 s / rate` and tolerance `τ = T × (burst − 1)`, and then
//! moves the TAT to `max(TAT, now) + T`. A [`Decision`] says how many more would conform
//! now, or how long until one would (the gateway's `Retry-After`).
//!
//! Globally, each decision is one Lua script run with EVALSHA on the key
//! `protea:rl:<tenant>`, atomic in Redis, on Redis's clock, with an expiry at the TAT so
//! that idle tenants leave no keys. When Redis errs, is unreachable or is slower than the
//! decision timeout, [`RateLimiter`] decides with its local limiter instead, marks itself
//! degraded, logs the change once (warn on the way down, info on the way back) and counts
//! the decisions so made; while degraded it tries Redis again at most once per
//! [`PROBE_INTERVAL`], on a decision or on [`RateLimiter::probe`]. Each degraded process then enforces the whole quota on its own, so
//! the fleet admits up to the number of processes times the quota until Redis is back.
//!
//! What this module must never do: block a core (all Redis I/O is async and every
//! decision is bounded by its timeout; a disconnected client fails at once, and the local
//! limiter holds a mutex only for one map update); hold unbounded memory (the local map
//! is capped, the Redis client's queue is capped, Redis keys expire); log more about a
//! tenant than its id, or the Redis URL (it may hold a password).

mod gcra;
mod local;
mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use local::LocalLimiter;
pub use redis::{RedisLimiter, RedisSettings};

/// How often a degraded [`RateLimiter`] lets one decision try Redis again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The longest window a quota may span (`burst ÷ rate`): one day. It keeps every time the
/// Redis script handles exact in a double.
pub const WINDOW_MAX: Duration = Duration::from_secs(86_400);

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A rate limit: one request per emission interval sustained, `burst` at once. Made by
/// [`Quota::new`] (a rate per second) or [`Quota::per_window`] (a count per window, for
/// rates below one a second), which check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    interval_ns: u64,
    burst: u32,
}

/// Why a [`Quota`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The rate is 0 or above 10^9 per second.
    #[error("rate limit rate_per_second must be 1 to 1000000000, got {0}")]
    Rate(u32),
    /// The burst is 0.
    #[error("rate limit burst must be at least 1, got 0")]
    Burst,
    /// `burst ÷ rate` is longer than [`WINDOW_MAX`] (`rate_per_second` is 0 for a
    /// [`Quota::per_window`] window that is too long or too short).
    #[error("rate limit burst {burst} at {rate_per_second}/s spans more than a day")]
    Window {
        /// The rate asked for.
        rate_per_second: u32,
        /// The burst asked for.
        burst: u32,
    },
}

impl Quota {
    /// A quota of `rate_per_second` (1 to 10^9) and `burst` (at least 1, and at most a
    /// day's worth of the rate).
    pub fn new(rate_per_second: u32, burst: u32) -> Result<Self, QuotaError> {
        if rate_per_second == 0 || u64::from(rate_per_second) > NANOS_PER_SECOND {
            return Err(QuotaError::Rate(rate_per_second));
        }
        if burst == 0 {
            return Err(QuotaError::Burst);
        }
        let quota = Self { interval_ns: NANOS_PER_SECOND / u64::from(rate_per_second), burst };
        let window = u128::from(quota.interval_ns) * u128::from(burst);
        if window > WINDOW_MAX.as_nanos() {
            return Err(QuotaError::Window { rate_per_second, burst });
        }
        Ok(quota)
    }

    /// A quota of `count` requests per `window` (at most [`WINDOW_MAX`]), all of which
    /// may come at once: the emission interval is `window ÷ count`.
    pub fn per_window(count: u32, window: Duration) -> Result<Self, QuotaError> {
        if count == 0 {
            return Err(QuotaError::Burst);
        }
        let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = window_ns / u64::from(count);
        if window > WINDOW_MAX || interval_ns == 0 {
            return Err(QuotaError::Window { rate_per_second: 0, burst: count });
        }
        Ok(Self { interval_ns, burst: count })
    }

    /// The most requests allowed at once.
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// The emission interval T: 10^9 ÷ rate nanoseconds (rounded down).
    pub fn interval_ns(self) -> u64 {
        self.interval_ns
    }

    /// The tolerance τ = T × (burst − 1), in nanoseconds.
    pub fn tolerance_ns(self) -> u64 {
        self.interval_ns() * u64::from(self.burst - 1)
    }
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; `remaining` more would be allowed at this instant.
    Allowed {
        /// Requests that would still conform right now.
        remaining: u32,
    },
    /// Refuse it (429); a request would conform after `retry_after`.
    Limited {
        /// The wait until the next conforming request (more than zero).
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request may be served.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    fn from_step(step: gcra::Step) -> Self {
        match step {
            gcra::Step::Allow { remaining, .. } => Decision::Allowed { remaining },
            gcra::Step::Limit { retry_after_ns, .. } => {
                Decision::Limited { retry_after: Duration::from_nanos(retry_after_ns) }
            }
        }
    }
}

/// Why a Redis decision failed (the [`RateLimiter`] then decides locally).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The Redis URL does not parse; the message is the kind of error, never the URL.
    #[error("invalid Redis URL for rate limits ({0})")]
    InvalidUrl(String),
    /// The connection to Redis is not up (never made yet, or lost and being remade).
    #[error("Redis is not connected")]
    NotConnected,
    /// Redis did not answer within the decision timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed during the call.
    #[error("Redis error: {0}")]
    Redis(String),
}

/// The gateway's rate limiter: local only, or global through Redis with a local fallback.
/// `Sync`: one per process, shared by every core.
#[derive(Debug)]
pub struct RateLimiter {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Local(LocalLimiter),
    Global(Box<Global>),
}

#[derive(Debug)]
struct Global {
    redis: RedisLimiter,
    fallback: LocalLimiter,
    degraded: AtomicBool,
    /// While degraded: the `now_ns` before which decisions skip Redis.
    probe_at_ns: AtomicU64,
    fallback_total: AtomicU64,
}

impl RateLimiter {
    /// Limits decided in this process only.
    pub fn local(limiter: LocalLimiter) -> Self {
        Self { mode: Mode::Local(limiter) }
    }

    /// Limits decided on Redis, and on `fallback` whenever Redis fails.
    pub fn global(redis: RedisLimiter, fallback: LocalLimiter) -> Self {
        Self {
            mode: Mode::Global(Box::new(Global {
                redis,
                fallback,
                degraded: AtomicBool::new(false),
                probe_at_ns: AtomicU64::new(0),
                fallback_total: AtomicU64::new(0),
            })),
        }
    }

    /// Decides one request of `tenant` under `quota`. `now_ns` is the gateway's clock in
    /// nanoseconds (the same clock on every call), used by local decisions; global ones
    /// use Redis's clock. Never fails: a Redis failure is a local decision.
    pub async fn check(&self, tenant: u64, quota: Quota, now_ns: u64) -> Decision {
        let global = match &self.mode {
            Mode::Local(local) => return local.check(tenant, quota, now_ns),
            Mode::Global(global) => global,
        };
        if global.degraded.load(Ordering::Relaxed) && !global.claim_probe(now_ns) {
            return global.local(tenant, quota, now_ns);
        }
        match global.redis.check(tenant, quota).await {
            Ok(decision) => {
                if global.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(tenant, "rate limits: Redis answers again, limits are global");
                }
                decision
            }
            Err(error) => {
                let probe_at = now_ns.saturating_add(duration_ns(PROBE_INTERVAL));
                global.probe_at_ns.store(probe_at, Ordering::Relaxed);
                if !global.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        tenant,
                        %error,
                        "rate limits: Redis failed, deciding locally until it answers"
                    );
                }
                global.local(tenant, quota, now_ns)
            }
        }
    }

    /// While degraded, tries Redis (a PING, at most once per [`PROBE_INTERVAL`], shared
    /// with the decisions' own probes) and turns global again when it answers, so that a
    /// process without traffic does not report itself degraded after Redis is back. A
    /// no-op when not degraded or local. The gateway calls it every [`PROBE_INTERVAL`].
    pub async fn probe(&self, now_ns: u64) {
        let Mode::Global(global) = &self.mode else { return };
        if !global.degraded.load(Ordering::Relaxed) || !global.claim_probe(now_ns) {
            return;
        }
        if global.redis.ping().await.is_ok() && global.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate limits: Redis answers again, limits are global");
        }
    }

    /// Whether decisions are being made locally because Redis failed (always false for a
    /// local limiter).
    pub fn is_degraded(&self) -> bool {
        match &self.mode {
            Mode::Local(_) => false,
            Mode::Global(global) => global.degraded.load(Ordering::Relaxed),
        }
    }

    /// How many decisions were made locally because Redis failed, since start.
    pub fn fallback_decisions_total(&self) -> u64 {
        match &self.mode {
            Mode::Local(_) => 0,
            Mode::Global(global) => global.fallback_total.load(Ordering::Relaxed),
        }
    }

    /// Whether limits are global (Redis configured), degraded or not.
    pub fn is_global(&self) -> bool {
        matches!(self.mode, Mode::Global(_))
    }
}

impl Global {
    fn local(&self, tenant: u64, quota: Quota, now_ns: u64) -> Decision {
        self.fallback_total.fetch_add(1, Ordering::Relaxed);
        self.fallback.check(tenant, quota, now_ns)
    }

    /// Whether this decision is the one that tries Redis again: the first at or after the
    /// probe time, and only one per interval.
    fn claim_probe(&self, now_ns: u64) -> bool {
        let probe_at = self.probe_at_ns.load(Ordering::Relaxed);
        now_ns >= probe_at
            && self
                .probe_at_ns
                .compare_exchange(
                    probe_at,
                    now_ns.saturating_add(duration_ns(PROBE_INTERVAL)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_checked() {
        assert_eq!(Quota::new(0, 1), Err(QuotaError::Rate(0)));
        assert_eq!(Quota::new(1_000_000_001, 1), Err(QuotaError::Rate(1_000_000_001)));
        assert_eq!(Quota::new(1, 0), Err(QuotaError::Burst));
        assert!(matches!(Quota::new(1, 86_401), Err(QuotaError::Window { .. })));
        let quota = Quota::new(1, 86_400).unwrap();
        assert_eq!(quota.tolerance_ns(), 86_399 * NANOS_PER_SECOND);
        let quota = Quota::new(4, 10).unwrap();
        assert_eq!(quota.interval_ns(), 250_000_000);
        assert_eq!(quota.tolerance_ns(), 9 * 250_000_000);
        assert!(Quota::new(1_000_000_000, u32::MAX).is_ok());
        assert!(QuotaError::Rate(0).to_string().contains("rate_per_second"));
        let minute = Quota::per_window(20, Duration::from_secs(60)).unwrap();
        assert_eq!((minute.interval_ns(), minute.burst()), (3 * NANOS_PER_SECOND, 20));
        assert!(Quota::per_window(0, Duration::from_secs(60)).is_err());
        assert!(Quota::per_window(1, Duration::from_secs(86_401)).is_err());
    }

    #[tokio::test]
    async fn a_local_limiter_is_never_degraded() {
        let limiter = RateLimiter::local(LocalLimiter::default());
        let quota = Quota::new(1, 2).unwrap();
        assert!(limiter.check(3, quota, 10).await.is_allowed());
        assert!(limiter.check(3, quota, 10).await.is_allowed());
        assert!(!limiter.check(3, quota, 10).await.is_allowed());
        assert!(!limiter.is_degraded() && !limiter.is_global());
        assert_eq!(limiter.fallback_decisions_total(), 0);
    }

    #[test]
    fn a_rate_limiter_is_shared_by_cores() {
        fn sync_send<T: Sync + Send>() {}
        sync_send::<RateLimiter>();
        sync_send::<LocalLimiter>();
        sync_send::<RedisLimiter>();
    }
}
