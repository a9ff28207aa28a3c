//! The audit trail's hash chain: each record's hash is SHA-256 over the previous record's
//! hash and the record's canonical bytes, so changing, removing or reordering any record
//! changes every hash after it.
//!
//! ```text
//! hash(0)     = SHA-256( [0; 32]       || bytes(0) )
//! hash(n)     = SHA-256( hash(n - 1)   || bytes(n) )
//! ```
//!
//! The canonical bytes are the caller's (the storage layer defines the record encoding);
//! this module only links and checks. It does no I/O and keeps no state.

use ring::digest::{SHA256, digest};

/// A record's hash, and the link the next record starts from.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record.
pub const GENESIS: Hash = [0; 32];

/// The hash of a record whose canonical bytes are `record` and whose predecessor's hash
/// is `prev`.
pub fn link(prev: &Hash, record: &[u8]) -> Hash {
    let mut input = Vec::with_capacity(prev.len() + record.len());
    input.extend_from_slice(prev);
    input.extend_from_slice(record);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

/// Where a chain first breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// The record's stored `prev_hash` is not the previous record's hash (a record was
    /// removed, inserted or reordered before it).
    #[error("record {index}: its link to the previous record is wrong")]
    Link {
        /// The position of the record in the sequence checked (0 first).
        index: u64,
    },
    /// The record's stored hash does not match its contents (the record was changed).
    #[error("record {index}: its hash does not match its contents")]
    Hash {
        /// The position of the record in the sequence checked (0 first).
        index: u64,
    },
}

/// Checks records in order, each given as (stored prev_hash, stored hash, canonical
/// bytes), starting from `start` (the hash before the first one: [`GENESIS`] for a whole
/// chain). Returns the last hash, or where the chain first breaks.
pub struct Verifier {
    expected_prev: Hash,
    index: u64,
}

impl Verifier {
    /// A verifier expecting the first record to link to `start`.
    pub fn new(start: Hash) -> Self {
        Self { expected_prev: start, index: 0 }
    }

    /// Checks the next record.
    pub fn check(&mut self, prev: &Hash, hash: &Hash, record: &[u8]) -> Result<(), Broken> {
        let index = self.index;
        if prev != &self.expected_prev {
            return Err(Broken::Link { index });
        }
        if &link(prev, record) != hash {
            return Err(Broken::Hash { index });
        }
        self.expected_prev = *hash;
        self.index += 1;
        Ok(())
    }

    /// The hash of the last record checked (the start when none was).
    pub fn last(&self) -> Hash {
        self.expected_prev
    }

    /// How many records were checked.
    pub fn checked(&self) -> u64 {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(records: &[&[u8]]) -> Vec<(Hash, Hash)> {
        let mut prev = GENESIS;
        records
            .iter()
            .map(|record| {
                let hash = link(&prev, record);
                let pair = (prev, hash);
                prev = hash;
                pair
            })
            .collect()
    }

    #[test]
    fn a_known_answer() {
        // python3 -c "import hashlib; print(hashlib.sha256(bytes(32) + b'a').hexdigest())"
        let expected = "41a0370c3d9f42773a59e8e01651911cf43b1e3f66944cbb690029debc4eb647";
        let got: String = link(&GENESIS, b"a").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn an_intact_chain_verifies_and_any_change_is_located() {
        let records: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
        let links = chain(&records);
        let mut verifier = Verifier::new(GENESIS);
        for ((prev, hash), record) in links.iter().zip(records) {
            verifier.check(prev, hash, record).unwrap();
        }
        assert_eq!((verifier.checked(), verifier.last()), (4, links[3].1));

        // A changed record: its own hash fails.
        let mut verifier = Verifier::new(GENESIS);
        verifier.check(&links[0].0, &links[0].1, b"one").unwrap();
        assert_eq!(
            verifier.check(&links[1].0, &links[1].1, b"TWO"),
            Err(Broken::Hash { index: 1 })
        );

        // A removed record: the next one's link fails.
        let mut verifier = Verifier::new(GENESIS);
        verifier.check(&links[0].0, &links[0].1, b"one").unwrap();
        assert_eq!(
            verifier.check(&links[2].0, &links[2].1, b"three"),
            Err(Broken::Link { index: 1 })
        );

        // A record rewritten with a fresh hash of its own: the next link fails.
        let forged = link(&links[0].1, b"TWO");
        let mut verifier = Verifier::new(GENESIS);
        verifier.check(&links[0].0, &links[0].1, b"one").unwrap();
        verifier.check(&links[1].0, &forged, b"TWO").unwrap();
        assert_eq!(
            verifier.check(&links[2].0, &links[2].1, b"three"),
            Err(Broken::Link { index: 2 })
        );
    }
}
