//! The replay cache: the `(key id, nonce)` pairs of signed requests seen within the
//! replay window, so that a captured request sent again is refused (401) while two
//! identical requests with their own nonces both pass.
//!
//! A pair is remembered until its signed timestamp leaves the window (after that the
//! timestamp check refuses it anyway). Pairs are kept as 64-bit keyed hashes (SipHash, a
//! key drawn per process: a new pair collides with one of n held with probability
//! n / 2^64, about 10^-13 for three million), in shards each holding a set and an index
//! by expiry second, so forgetting costs only what expires; about 20 to 40 bytes a pair.
//! The cache is bounded: when it holds
//! `entries_max` pairs, a new one is refused with [`ReplayError::Full`] (503) rather than
//! forgetting early. It is per process: a capture replayed to another gateway process
//! within the window is not caught here (signatures travel only inside TLS).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shards, to keep cores from contending on one lock.
const SHARDS: usize = 16;

/// Why a nonce was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This key id and nonce were seen within the window.
    #[error("the nonce was used before")]
    Replayed,
    /// The cache is at its bound.
    #[error("the replay cache is full")]
    Full,
}

#[derive(Default)]
struct Shard {
    seen: HashSet<u64>,
    by_expiry: BTreeMap<u64, Vec<u64>>,
}

/// Seen nonces, per process.
pub struct ReplayCache {
    shards: [Mutex<Shard>; SHARDS],
    hasher: RandomState,
    entries: AtomicUsize,
    entries_max: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `entries_max` pairs.
    pub fn new(entries_max: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            hasher: RandomState::new(),
            entries: AtomicUsize::new(0),
            entries_max,
        }
    }

    /// Records `nonce` of `key_id`, valid until `expires_at_s`; refuses one seen before.
    /// Forgets the shard's pairs that expired by `now_s` first.
    pub fn check(
        &self,
        key_id: &str,
        nonce: &str,
        expires_at_s: u64,
        now_s: u64,
    ) -> Result<(), ReplayError> {
        let hash = self.hash(key_id, nonce);
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let Ok(mut shard) = self.shards[index].lock() else { return Err(ReplayError::Full) };
        let forgotten = shard.forget_expired(now_s);
        self.entries.fetch_sub(forgotten, Ordering::Relaxed);
        if shard.seen.contains(&hash) {
            return Err(ReplayError::Replayed);
        }
        if self.entries.load(Ordering::Relaxed) >= self.entries_max {
            return Err(ReplayError::Full);
        }
        shard.seen.insert(hash);
        shard.by_expiry.entry(expires_at_s).or_default().push(hash);
        self.entries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Pairs held now.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, key_id: &str, nonce: &str) -> u64 {
        self.hasher.hash_one((key_id, nonce))
    }
}

impl Shard {
    /// Drops every pair whose expiry is at or before `now_s`; returns how many.
    fn forget_expired(&mut self, now_s: u64) -> usize {
        let mut forgotten = 0;
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() > now_s {
                break;
            }
            for hash in entry.remove() {
                self.seen.remove(&hash);
                forgotten += 1;
            }
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_passes_once_until_it_expires() {
        let cache = ReplayCache::new(1024);
        assert_eq!(cache.check("pk_a", "nonce-0000000001", 100, 10), Ok(()));
        assert_eq!(cache.check("pk_a", "nonce-0000000001", 100, 50), Err(ReplayError::Replayed));
        assert_eq!(cache.check("pk_b", "nonce-0000000001", 100, 50), Ok(()));
        assert_eq!(cache.check("pk_a", "nonce-0000000002", 100, 50), Ok(()));
        assert_eq!(cache.len(), 3);
        // Past its expiry the pair is forgotten (the timestamp check refuses it by then).
        assert_eq!(cache.check("pk_a", "nonce-0000000001", 300, 101), Ok(()));
        assert!((1..=3).contains(&cache.len()));
    }

    #[test]
    fn the_bound_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(4);
        for i in 0..4 {
            assert_eq!(cache.check("pk_a", &format!("nonce-{i:010}"), 100, 0), Ok(()));
        }
        assert_eq!(cache.check("pk_a", "nonce-0000000009", 100, 0), Err(ReplayError::Full));
        assert_eq!(cache.check("pk_a", "nonce-0000000000", 100, 0), Err(ReplayError::Replayed));
    }
}
