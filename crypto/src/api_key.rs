//! Tenant API keys: `KEYID.SECRET` bearer credentials.
//!
//! The key id is public (it names the key in logs and lookups); the secret is 32 random
//! bytes from the OS, shown once at creation and stored only as its SHA-256 digest. A fast
//! digest suffices because the secret has 256 bits of entropy: there is nothing to
//! brute-force. Verification compares digests in constant time. This module never returns
//! or formats a stored secret, and its `Debug` output never shows one.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Prefix of every key id, so a leaked credential is recognisable in scanners.
pub const KEY_ID_PREFIX: &str = "pk_";
/// Length of a key id: the prefix and 16 hex digits.
pub const KEY_ID_LEN: usize = KEY_ID_PREFIX.len() + 16;
/// Length of a secret: 64 hex digits (32 bytes).
pub const SECRET_LEN: usize = 64;

/// The SHA-256 digest a secret is stored as.
pub type SecretDigest = [u8; 32];

/// A newly generated credential. The secret exists in clear only here.
pub struct NewApiKey {
    /// The public key id.
    pub key_id: String,
    /// The secret, to show the client once.
    pub secret: String,
    /// What to store.
    pub digest: SecretDigest,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The OS random generator failed: no key can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Generates a key id and secret from the OS random generator.
pub fn generate() -> Result<NewApiKey, RandomError> {
    let rng = SystemRandom::new();
    let mut id_bytes = [0u8; 8];
    let mut secret_bytes = [0u8; 32];
    rng.fill(&mut id_bytes).map_err(|_| RandomError)?;
    rng.fill(&mut secret_bytes).map_err(|_| RandomError)?;
    let key_id = format!("{KEY_ID_PREFIX}{}", hex(&id_bytes));
    let secret = hex(&secret_bytes);
    let digest = digest_secret(&secret);
    Ok(NewApiKey { key_id, secret, digest })
}

/// The digest `secret` is stored as.
pub fn digest_secret(secret: &str) -> SecretDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
    out
}

/// Whether `secret` matches `stored`, compared in constant time.
pub fn verify(secret: &str, stored: &SecretDigest) -> bool {
    digest_secret(secret).ct_eq(stored).into()
}

/// Splits `KEYID.SECRET` into its parts if both have the right shape.
pub fn split_credential(credential: &str) -> Option<(&str, &str)> {
    let (key_id, secret) = credential.split_once('.')?;
    let well_formed = key_id.len() == KEY_ID_LEN
        && key_id.starts_with(KEY_ID_PREFIX)
        && secret.len() == SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((key_id, secret))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credential_verifies_and_splits() {
        let key = generate().unwrap();
        let credential = format!("{}.{}", key.key_id, key.secret);
        let (key_id, secret) = split_credential(&credential).unwrap();
        assert_eq!(key_id, key.key_id);
        assert!(verify(secret, &key.digest));
    }

    #[test]
    fn wrong_secret_is_refused() {
        let key = generate().unwrap();
        let other = generate().unwrap();
        assert!(!verify(&other.secret, &key.digest));
    }

    #[test]
    fn keys_are_unique() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.key_id, b.key_id);
        assert_ne!(a.secret, b.secret);
    }

    #[test]
    fn malformed_credentials_do_not_split() {
        let key = generate().unwrap();
        let cases = [
            String::new(),
            key.key_id.clone(),
            format!("{}.", key.key_id),
            format!("{}.{}", key.key_id, &key.secret[1..]),
            format!("{}.{}x", key.key_id, &key.secret[1..]),
            format!("xx_{}.{}", &key.key_id[3..], key.secret),
        ];
        for case in cases {
            assert_eq!(split_credential(&case), None, "{case}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate().unwrap();
        assert!(!format!("{key:?}").contains(&key.secret));
    }
}
