//! The in-process limiter: each tenant's TAT in one of [`SHARDS`] mutex-guarded maps, so
//! that cores deciding for different tenants rarely meet on one lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::gcra::{self, Step};
use super::{Decision, Quota};

/// How many maps the keys are spread over (by tenant id).
const SHARDS: usize = 64;

/// Per-tenant GCRA state of one process. `Sync`: share one across cores.
///
/// Memory is bounded: at most `max_keys` tenants are held (rounded up to a multiple of
/// the shard count). A new tenant arriving at a full shard first drops the shard's idle
/// entries (a TAT at or before now is the same as no entry); if none is idle, it drops
/// the entry closest to idle, which at worst gives that tenant part of a burst back.
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    per_shard_max: usize,
}

impl LocalLimiter {
    /// The default bound on the number of tenants held.
    pub const DEFAULT_MAX_KEYS: usize = 65_536;

    /// A limiter holding at most about `max_keys` tenants (at least one per shard).
    pub fn new(max_keys: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self { shards, per_shard_max: max_keys.div_ceil(SHARDS).max(1) }
    }

    /// Decides one request of `tenant` at `now_ns` (any monotonic or wall clock in
    /// nanoseconds, the same one on every call) and records it when allowed.
    pub fn check(&self, tenant: u64, quota: Quota, now_ns: u64) -> Decision {
        let mut shard = self.shard(tenant);
        let tat = shard.get(&tenant).copied().unwrap_or(0);
        let step = gcra::step(tat, now_ns, quota.interval_ns(), quota.tolerance_ns());
        let new_tat = match step {
            Step::Allow { tat_ns, .. } | Step::Limit { tat_ns, .. } => tat_ns,
        };
        if new_tat != tat {
            if !shard.contains_key(&tenant) && shard.len() >= self.per_shard_max {
                evict(&mut shard, now_ns, self.per_shard_max);
            }
            shard.insert(tenant, new_tat);
        }
        drop(shard);
        Decision::from_step(step)
    }

    /// How many tenants are held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no tenant is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, tenant: u64) -> MutexGuard<'_, HashMap<u64, u64>> {
        // Tenant ids may be sequential: mix the bits before picking a shard.
        let mixed = tenant.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let index = usize::try_from(mixed).unwrap_or(0) % self.shards.len();
        lock(&self.shards[index])
    }
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_KEYS)
    }
}

/// A map is never left half-updated (each update is one insert), so a poisoned lock's
/// data is still good.
fn lock(shard: &Mutex<HashMap<u64, u64>>) -> MutexGuard<'_, HashMap<u64, u64>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes room for one entry below `max`: drops the idle ones, then, if that was not
/// enough, the one closest to idle.
fn evict(shard: &mut HashMap<u64, u64>, now_ns: u64, max: usize) {
    shard.retain(|_, tat| *tat > now_ns);
    if shard.len() < max {
        return;
    }
    if let Some((&oldest, _)) = shard.iter().min_by_key(|(_, tat)| **tat) {
        shard.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn burst_then_one_per_interval_per_tenant() {
        let limiter = LocalLimiter::default();
        let quota = Quota::new(10, 3).unwrap();
        let now = 42 * SECOND;
        for remaining in [2, 1, 0] {
            assert_eq!(limiter.check(1, quota, now), Decision::Allowed { remaining });
        }
        let wait = Duration::from_millis(100);
        assert_eq!(limiter.check(1, quota, now), Decision::Limited { retry_after: wait });
        // Another tenant has its own burst.
        assert_eq!(limiter.check(2, quota, now), Decision::Allowed { remaining: 2 });
        let later = now + SECOND / 10;
        assert_eq!(limiter.check(1, quota, later), Decision::Allowed { remaining: 0 });
        assert_eq!(limiter.check(1, quota, later), Decision::Limited { retry_after: wait });
    }

    #[test]
    fn the_number_of_tenants_held_is_bounded() {
        let limiter = LocalLimiter::new(SHARDS * 2);
        let quota = Quota::new(1, 5).unwrap();
        let now = SECOND;
        for tenant in 0..10_000 {
            assert!(limiter.check(tenant, quota, now).is_allowed());
        }
        assert!(limiter.len() <= SHARDS * 2, "{}", limiter.len());
        // Once idle, entries make room without evicting busy ones early.
        for tenant in 0..10_000 {
            limiter.check(tenant, quota, now + 10 * SECOND);
        }
        assert!(limiter.len() <= SHARDS * 2, "{}", limiter.len());
    }

    #[test]
    fn a_limited_request_changes_nothing() {
        let limiter = LocalLimiter::new(1);
        let quota = Quota::new(1, 1).unwrap();
        assert!(limiter.check(9, quota, SECOND).is_allowed());
        for _ in 0..5 {
            assert_eq!(
                limiter.check(9, quota, SECOND),
                Decision::Limited { retry_after: Duration::from_secs(1) }
            );
        }
        assert!(limiter.check(9, quota, 2 * SECOND).is_allowed());
    }

    #[test]
    fn shared_across_threads() {
        let limiter = std::sync::Arc::new(LocalLimiter::default());
        let quota = Quota::new(1, 100).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..100).filter(|_| limiter.check(7, quota, SECOND).is_allowed()).count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 100);
    }
}
