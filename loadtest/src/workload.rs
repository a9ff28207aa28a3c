//! What to send: request kinds and their weights, the seeded random source, account
//! choice (uniform or Zipf) and run-unique ids.
//!
//! Everything here is a pure function of the seed and a request's index, so a seed
//! replays the same workload. It must never do I/O or read a clock.

use uuid::Uuid;

/// A kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One transfer, as a single object.
    Single,
    /// `--batch-size` transfers in one array.
    Batch,
    /// A pending transfer, or the post (full or partial) or void of an earlier one.
    Authorise,
    /// A linked chain of transfers in one array.
    Linked,
    /// GET an account.
    ReadAccount,
    /// GET an acknowledged transfer.
    ReadTransfer,
    /// One transfer sent twice with the same id.
    Retry,
    /// GET /livez.
    Livez,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 8] = [
        Kind::Single,
        Kind::Batch,
        Kind::Authorise,
        Kind::Linked,
        Kind::ReadAccount,
        Kind::ReadTransfer,
        Kind::Retry,
        Kind::Livez,
    ];

    /// The name used in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Batch => "batch",
            Kind::Authorise => "authorise",
            Kind::Linked => "linked",
            Kind::ReadAccount => "read_account",
            Kind::ReadTransfer => "read_transfer",
            Kind::Retry => "retry",
            Kind::Livez => "livez",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        let name = if name == "authorize" { "authorise" } else { name };
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Kinds with integer weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u64,
}

impl Mix {
    /// Parses `single=50,batch=10,...`; names the bad part on error.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| format!("`{part}`: expected kind=weight"))?;
            let kind = Kind::from_name(name.trim())
                .ok_or_else(|| format!("`{part}`: unknown kind `{}`", name.trim()))?;
            let weight: u32 =
                weight.trim().parse().map_err(|_| format!("`{part}`: weight is not an integer"))?;
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        let total = weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(format!("`{text}`: no kind has a weight above zero"));
        }
        Ok(Mix { weights, total })
    }

    /// Whether every weighted kind is `livez`.
    pub fn livez_only(&self) -> bool {
        self.weights.iter().all(|(kind, _)| *kind == Kind::Livez)
    }

    /// Draws a kind.
    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut roll = rng.below(self.total);
        for (kind, weight) in &self.weights {
            match roll.checked_sub(u64::from(*weight)) {
                Some(rest) => roll = rest,
                None => return *kind,
            }
        }
        Kind::Livez
    }
}

/// SplitMix64: small, fast, and fully determined by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one request: `seed` mixed with the request's `index`.
    pub fn for_request(seed: u64, index: u64) -> Rng {
        Rng(mix64(seed ^ mix64(index.wrapping_add(0x5851_f42d_4c95_7f2d))))
    }

    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Chooses account indexes `0..n`: uniformly, or Zipf-distributed (index 0 hottest).
#[derive(Debug, Clone)]
pub struct Picker {
    /// Cumulative probabilities for Zipf; empty for uniform.
    cdf: Vec<f64>,
    n: u32,
}

impl Picker {
    /// A picker over `n` accounts with Zipf exponent `s` (0 is uniform).
    pub fn new(n: u32, s: f64) -> Picker {
        if s == 0.0 {
            return Picker { cdf: Vec::new(), n };
        }
        let weights: Vec<f64> = (1..=n).map(|rank| 1.0 / f64::from(rank).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cdf = weights.iter().map(|w| {
            sum += w / total;
            sum
        });
        Picker { cdf: cdf.collect(), n }
    }

    /// One account index.
    pub fn pick(&self, rng: &mut Rng) -> u32 {
        if self.cdf.is_empty() {
            return rng.below(u64::from(self.n)) as u32;
        }
        let roll = rng.unit();
        (self.cdf.partition_point(|&c| c < roll) as u32).min(self.n - 1)
    }

    /// Two different account indexes (n ≥ 2).
    pub fn pick_pair(&self, rng: &mut Rng) -> (u32, u32) {
        let first = self.pick(rng);
        let mut second = self.pick(rng);
        while second == first {
            second = rng.below(u64::from(self.n)) as u32;
        }
        (first, second)
    }
}

/// Run-unique ids: a random-looking UUIDv4 from the seed, the run nonce, a namespace
/// and a counter.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    seed: u64,
    nonce: u64,
}

/// Namespace of account ids.
pub const ACCOUNTS: u64 = 1;
/// Namespace of transfer ids.
pub const TRANSFERS: u64 = 2;

impl Ids {
    /// Ids for a run.
    pub fn new(seed: u64, nonce: u64) -> Ids {
        Ids { seed, nonce }
    }

    /// The id number `counter` of `namespace`.
    pub fn id(&self, namespace: u64, counter: u64) -> Uuid {
        let mut rng = Rng::new(mix64(self.seed ^ mix64(self.nonce ^ mix64(namespace))) ^ counter);
        let high = rng.next_u64().to_be_bytes();
        let low = rng.next_u64().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_names_bad_parts() {
        assert!(Mix::parse("single=1,livez=0").is_ok());
        assert!(Mix::parse("livez=1").unwrap().livez_only());
        assert!(Mix::parse("single=x").unwrap_err().contains("single=x"));
        assert!(Mix::parse("teleport=1").unwrap_err().contains("teleport"));
        assert!(Mix::parse("single=0").is_err());
    }

    #[test]
    fn ids_differ_by_nonce_and_counter() {
        let a = Ids::new(1, 1);
        assert_ne!(a.id(TRANSFERS, 1), a.id(TRANSFERS, 2));
        assert_ne!(a.id(TRANSFERS, 1), Ids::new(1, 2).id(TRANSFERS, 1));
        assert_eq!(a.id(ACCOUNTS, 7), Ids::new(1, 1).id(ACCOUNTS, 7));
    }
}
