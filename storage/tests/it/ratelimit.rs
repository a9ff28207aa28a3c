//! Rate limits against a real Redis at `PROTEA_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`; `scripts/test` starts one). A Redis that does not answer
//! fails the test with a message saying so: these tests never skip.
//!
//! Global quotas here use the lowest rate (1 per second), so that a burst is spent long
//! before a slot comes back; where a test may take longer than that, the bound allows one
//! more per elapsed second, never fewer than the burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, LuaInterface};
use storage::ratelimit::{
    Decision, LocalLimiter, Quota, RateLimitError, RateLimiter, RedisLimiter, RedisSettings,
};

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Set in the child process of the two-process test: the tenant to spend.
const CHILD_ENV: &str = "PROTEA_IT_RATELIMIT_CHILD";
const SECOND: u64 = 1_000_000_000;
const CONNECT_MAX: Duration = Duration::from_secs(5);

/// The Redis URL, after checking that Redis answers a PING.
async fn redis_url() -> String {
    let url =
        std::env::var("PROTEA_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let outcome = match admin_client(&url).await {
        Ok(client) => {
            let _ = client.quit().await;
            return url;
        }
        Err(error) => error,
    };
    panic!(
        "Redis not reachable at {url}: {outcome}; scripts/test starts it (or run \
         `redis-server --port 6379 --save '' --appendonly no`, or set PROTEA_TEST_REDIS_URL)"
    );
}

/// A plain client for looking at and cleaning up keys.
async fn admin_client(url: &str) -> Result<Client, String> {
    let config = Config::from_url(url).map_err(|e| e.to_string())?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = CONNECT_MAX)
        .build()
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_MAX, client.init()).await {
        Ok(Ok(_task)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no connection within {CONNECT_MAX:?}")),
    }
    let pong: String = client.ping(None).await.map_err(|e| e.to_string())?;
    assert_eq!(pong, "PONG");
    Ok(client)
}

/// A limiter on the test Redis, connected.
async fn redis_limiter(url: &str) -> RedisLimiter {
    let limiter = RedisLimiter::connect(url, &RedisSettings::default()).unwrap();
    assert!(
        limiter.wait_connected(CONNECT_MAX).await,
        "rate limiter did not connect to Redis at {url} within {CONNECT_MAX:?}"
    );
    limiter
}

/// A tenant id unique to this process and call, so that runs never share keys.
fn unique_tenant() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let base = u64::try_from(nanos % u128::from(u64::MAX)).unwrap()
        ^ (u64::from(std::process::id()) << 40);
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) << 20)
}

async fn delete_key(client: &Client, tenant: u64) {
    let _: i64 = client.del(RedisLimiter::key(tenant)).await.unwrap();
}

/// Spends up to `attempts` requests of `tenant` on `limiter`; returns how many were allowed.
async fn spend(limiter: &RedisLimiter, tenant: u64, quota: Quota, attempts: u32) -> u32 {
    let mut allowed = 0;
    for _ in 0..attempts {
        match limiter.check(tenant, quota).await.unwrap() {
            Decision::Allowed { .. } => allowed += 1,
            Decision::Limited { retry_after } => {
                assert!(
                    retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1),
                    "{retry_after:?}"
                );
            }
        }
    }
    allowed
}

/// Like [`spend`], through the facade. The local clock passed in is far from Redis's on
/// purpose: global decisions ignore it.
async fn spend_global(limiter: &RateLimiter, tenant: u64, quota: Quota, attempts: u32) -> u32 {
    let mut allowed = 0;
    for i in 0..attempts {
        if limiter.check(tenant, quota, u64::from(i)).await.is_allowed() {
            allowed += 1;
        }
    }
    allowed
}

/// `burst` requests at most, plus one per whole second the spending took.
fn assert_shared_burst(allowed: u32, burst: u32, elapsed: Duration) {
    let extra = u32::try_from(elapsed.as_secs()).unwrap();
    assert!(
        allowed >= burst && allowed <= burst + extra,
        "{allowed} allowed with burst {burst} over {elapsed:?}"
    );
}

#[tokio::test]
async fn local_limiter_exact_gcra_sequence() {
    let limiter = RateLimiter::local(LocalLimiter::default());
    let quota = Quota::new(2, 4).unwrap(); // T = 500 ms, τ = 1.5 s
    let t0 = 1_000 * SECOND;
    for remaining in [3, 2, 1, 0] {
        assert_eq!(limiter.check(5, quota, t0).await, Decision::Allowed { remaining });
    }
    let limited = |ns| Decision::Limited { retry_after: Duration::from_nanos(ns) };
    assert_eq!(limiter.check(5, quota, t0).await, limited(SECOND / 2));
    assert_eq!(limiter.check(5, quota, t0 + SECOND / 2 - 1).await, limited(1));
    assert_eq!(limiter.check(5, quota, t0 + SECOND / 2).await, Decision::Allowed { remaining: 0 });
    assert_eq!(limiter.check(5, quota, t0 + SECOND / 2).await, limited(SECOND / 2));
    // One second later two slots are back; an idle tenant gets the whole burst back.
    assert_eq!(
        limiter.check(5, quota, t0 + 3 * SECOND / 2).await,
        Decision::Allowed { remaining: 1 }
    );
    assert_eq!(limiter.check(5, quota, t0 + 10 * SECOND).await, Decision::Allowed { remaining: 3 });
    assert!(!limiter.is_degraded());
}

#[tokio::test]
async fn redis_limiter_decides_gcra_and_keys_expire() {
    let url = redis_url().await;
    let admin = admin_client(&url).await.unwrap();
    let limiter = redis_limiter(&url).await;
    let tenant = unique_tenant();
    let quota = Quota::new(1, 3).unwrap();
    let started = Instant::now();
    let mut remainings = Vec::new();
    let mut retry = None;
    for _ in 0..4 {
        match limiter.check(tenant, quota).await.unwrap() {
            Decision::Allowed { remaining } => remainings.push(remaining),
            Decision::Limited { retry_after } => retry = Some(retry_after),
        }
    }
    if started.elapsed() < Duration::from_secs(1) {
        assert_eq!(remainings, [2, 1, 0]);
        let retry = retry.expect("the fourth request at once is limited");
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1), "{retry:?}");
    }
    let pttl: i64 = admin.pttl(RedisLimiter::key(tenant)).await.unwrap();
    assert!(pttl > 0 && pttl <= 3_000, "PTTL {pttl}");
    delete_key(&admin, tenant).await;
    limiter.close().await;
}

#[tokio::test]
async fn redis_limiter_reloads_its_script_after_a_flush() {
    let url = redis_url().await;
    let admin = admin_client(&url).await.unwrap();
    let limiter = redis_limiter(&url).await;
    let tenant = unique_tenant();
    let quota = Quota::new(1, 5).unwrap();
    assert!(limiter.check(tenant, quota).await.unwrap().is_allowed());
    admin.script_flush(false).await.unwrap();
    assert!(limiter.check(tenant, quota).await.unwrap().is_allowed());
    delete_key(&admin, tenant).await;
    limiter.close().await;
}

#[tokio::test]
async fn global_rate_limit_shared_by_two_clients() {
    let url = redis_url().await;
    let admin = admin_client(&url).await.unwrap();
    let (a, b) = (redis_limiter(&url).await, redis_limiter(&url).await);
    let (a, b) = (
        RateLimiter::global(a, LocalLimiter::default()),
        RateLimiter::global(b, LocalLimiter::default()),
    );
    let tenant = unique_tenant();
    let burst = 20;
    let quota = Quota::new(1, burst).unwrap();
    let started = Instant::now();
    let (from_a, from_b) = tokio::join!(
        spend_global(&a, tenant, quota, burst),
        spend_global(&b, tenant, quota, burst)
    );
    assert_shared_burst(from_a + from_b, burst, started.elapsed());
    for limiter in [&a, &b] {
        assert!(!limiter.is_degraded());
        assert_eq!(limiter.fallback_decisions_total(), 0);
    }
    delete_key(&admin, tenant).await;
}

/// Two OS processes: this one and a child running this same test with [`CHILD_ENV`] set,
/// each with its own Redis connection, spending one tenant's burst.
#[tokio::test]
async fn global_rate_limit_shared_by_two_processes() {
    let url = redis_url().await;
    let burst = 20;
    let quota = Quota::new(1, burst).unwrap();
    if let Ok(tenant) = std::env::var(CHILD_ENV) {
        let limiter = redis_limiter(&url).await;
        let allowed = spend(&limiter, tenant.parse().unwrap(), quota, burst).await;
        println!("ratelimit-child-allowed={allowed}");
        limiter.close().await;
        return;
    }
    let admin = admin_client(&url).await.unwrap();
    let limiter = redis_limiter(&url).await;
    let tenant = unique_tenant();
    let started = Instant::now();
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "ratelimit::global_rate_limit_shared_by_two_processes", "--nocapture"])
        .env(CHILD_ENV, tenant.to_string())
        .env("PROTEA_TEST_REDIS_URL", &url);
    let child = tokio::task::spawn_blocking(move || command.output());
    let (output, from_parent) = tokio::join!(child, spend(&limiter, tenant, quota, burst));
    let elapsed = started.elapsed();
    let output = output.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let from_child: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ratelimit-child-allowed="))
        .expect("the child reports its count")
        .trim()
        .parse()
        .unwrap();
    assert_shared_burst(from_parent + from_child, burst, elapsed);
    delete_key(&admin, tenant).await;
    limiter.close().await;
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_local_limits() {
    let started = Instant::now();
    // Port 1: nothing listens there, so every connection attempt is refused.
    let redis = RedisLimiter::connect("redis://127.0.0.1:1", &RedisSettings::default()).unwrap();
    assert_eq!(redis.check(1, Quota::new(1, 1).unwrap()).await, Err(RateLimitError::NotConnected));
    let limiter = RateLimiter::global(redis, LocalLimiter::default());
    let quota = Quota::new(1, 2).unwrap();
    let t0 = 50 * SECOND;
    assert_eq!(limiter.check(8, quota, t0).await, Decision::Allowed { remaining: 1 });
    assert!(limiter.is_degraded());
    assert_eq!(limiter.check(8, quota, t0).await, Decision::Allowed { remaining: 0 });
    assert_eq!(
        limiter.check(8, quota, t0).await,
        Decision::Limited { retry_after: Duration::from_secs(1) }
    );
    // Past the probe interval it tries Redis again, fails, and still decides locally.
    assert!(limiter.check(8, quota, t0 + SECOND).await.is_allowed());
    assert!(!limiter.check(8, quota, t0 + SECOND).await.is_allowed());
    assert!(limiter.is_degraded());
    assert_eq!(limiter.fallback_decisions_total(), 5);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_invalid_url_is_refused_without_echoing_it() {
    let error = RedisLimiter::connect("redis://user:hunter2@:bad:port", &RedisSettings::default())
        .unwrap_err();
    assert!(matches!(error, RateLimitError::InvalidUrl(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
