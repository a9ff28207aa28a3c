//! Envelope encryption: AES-256-GCM under a versioned key-encryption key (KEK).
//!
//! Secrets at rest (tenant HMAC signing secrets, operator TOTP secrets, and later the
//! vault's per-subject data keys) are sealed under a KEK that comes from the secrets
//! provider. A [`KeyRing`] holds one KEK id (1-64 characters of `[A-Za-z0-9_.-]`), up to
//! [`VERSIONS_MAX`] versions of it (each a 32-byte AES-256 key, numbered from 1), and the
//! current version, which seals. Every sealed value names the id and version that sealed
//! it, so a rotation adds a version, makes it current, re-wraps old values in the
//! background ([`sealed_by`], [`KeyRing::reseal`]) and drops the old version once none is
//! left.
//!
//! A sealed value is, byte by byte:
//!
//! ```text
//! offset      length  field
//! 0           1       format version, 1
//! 1           1       L, the length of the KEK id (1-64)
//! 2           L       the KEK id, ASCII
//! 2+L         4       the KEK version, big-endian u32, at least 1
//! 6+L         12      the nonce, random for every seal
//! 18+L        n+16    the AES-256-GCM ciphertext of the n-byte plaintext, then the tag
//! ```
//!
//! The GCM additional data is the first `18+L` bytes (the header and the nonce) followed
//! by the caller's `aad`. The header's fields have fixed or prefixed lengths, so the
//! boundary between the two is never ambiguous. So the tag authenticates which key sealed
//! the value, and the caller's `aad` (say, the id of the API key whose secret this is)
//! binds it to its record: moved to another record, or given another header, it no longer
//! opens. The `aad` is not stored; the caller must pass the same bytes to open.
//!
//! Nonces are 96 random bits from the OS generator, so one key version should seal fewer
//! than 2^32 values (NIST SP 800-38D); rotate long before that. Plaintexts are at most
//! [`PLAINTEXT_LEN_MAX`] bytes and `aad` at most [`AAD_LEN_MAX`]: this is for keys and
//! small fields, not files.
//!
//! Opening parses strictly and refuses, each with its own error, a truncated value, an
//! unknown format, a malformed header, another KEK id and a version the ring does not
//! hold; everything the tag refuses (a wrong `aad`, a tampered byte, the wrong key bytes)
//! is one undifferentiated [`EnvelopeError::DecryptFailed`]. No input makes it panic.
//!
//! This module does no I/O and never logs. It never formats key material or plaintext:
//! [`KeyRing`]'s `Debug` shows the id and version numbers only, and no [`EnvelopeError`]
//! carries a byte of either. The only way out of a key is the raw key
//! [`KeyRing::generate`] returns, for the caller to store as a secret.

use data_encoding::BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The format version, the first byte of every sealed value.
pub const FORMAT_VERSION: u8 = 1;
/// The length of a KEK version's key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// The length of a nonce, in bytes.
pub const NONCE_LEN: usize = 12;
/// The length of the GCM tag, in bytes.
pub const TAG_LEN: usize = 16;
/// The longest KEK id, in bytes.
pub const KEY_ID_LEN_MAX: usize = 64;
/// The most versions a [`KeyRing`] holds.
pub const VERSIONS_MAX: usize = 16;
/// The longest plaintext that can be sealed, in bytes.
pub const PLAINTEXT_LEN_MAX: usize = 64 * 1024;
/// The longest caller `aad`, in bytes.
pub const AAD_LEN_MAX: usize = 1024;
/// The length of a key in padded standard base64 ([`key_from_base64`]).
pub const KEY_BASE64_LEN: usize = 44;

/// A KEK version's key: 32 raw bytes.
pub type KeyBytes = [u8; KEY_LEN];

/// Why a key ring could not be built, or a value could not be sealed or opened. For logs
/// and metrics; none carries key material or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The KEK id is empty, longer than [`KEY_ID_LEN_MAX`] or has characters outside
    /// `[A-Za-z0-9_.-]`.
    #[error("a KEK id must be 1 to {} characters of [A-Za-z0-9_.-]", KEY_ID_LEN_MAX)]
    KeyIdInvalid,
    /// A version number is 0; versions count from 1.
    #[error("a KEK version must be at least 1")]
    VersionInvalid,
    /// Two keys were given the same version number.
    #[error("a KEK version appears more than once")]
    VersionDuplicate,
    /// No version was given.
    #[error("a key ring needs at least one version")]
    NoVersions,
    /// More than [`VERSIONS_MAX`] versions were given.
    #[error("a key ring holds at most {} versions", VERSIONS_MAX)]
    TooManyVersions,
    /// The current version is not among the versions given.
    #[error("the current KEK version is not in the key ring")]
    CurrentVersionMissing,
    /// Key text is not [`KEY_BASE64_LEN`] characters of canonical padded standard base64
    /// decoding to [`KEY_LEN`] bytes.
    #[error("a key must be {} bytes in padded standard base64", KEY_LEN)]
    KeyInvalid,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The plaintext is longer than [`PLAINTEXT_LEN_MAX`]; or, when opening, the value
    /// holds more ciphertext than such a plaintext makes.
    #[error("a plaintext is at most {} bytes", PLAINTEXT_LEN_MAX)]
    PlaintextTooLong,
    /// The caller's `aad` is longer than [`AAD_LEN_MAX`].
    #[error("the additional data is at most {} bytes", AAD_LEN_MAX)]
    AadTooLong,
    /// The value ends before its header, nonce and tag do.
    #[error("the sealed value is truncated")]
    Truncated,
    /// The first byte is not [`FORMAT_VERSION`].
    #[error("the sealed value's format is unknown")]
    UnknownFormat,
    /// The header names a KEK id that is not a valid id, or version 0.
    #[error("the sealed value's header is malformed")]
    HeaderInvalid,
    /// The value was sealed under another KEK id than this ring's.
    #[error("the sealed value names another KEK id")]
    WrongKeyId,
    /// The value was sealed under a version this ring does not hold.
    #[error("the sealed value's KEK version {version} is not in the key ring")]
    UnknownVersion {
        /// The version the value names.
        version: u32,
    },
    /// The tag does not verify: a wrong `aad`, a tampered value or the wrong key bytes.
    #[error("the sealed value does not decrypt")]
    DecryptFailed,
}

impl EnvelopeError {
    /// A fixed snake_case code, usable as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyIdInvalid => "key_id_invalid",
            Self::VersionInvalid => "version_invalid",
            Self::VersionDuplicate => "version_duplicate",
            Self::NoVersions => "no_versions",
            Self::TooManyVersions => "too_many_versions",
            Self::CurrentVersionMissing => "current_version_missing",
            Self::KeyInvalid => "key_invalid",
            Self::Random => "random",
            Self::PlaintextTooLong => "plaintext_too_long",
            Self::AadTooLong => "aad_too_long",
            Self::Truncated => "truncated",
            Self::UnknownFormat => "unknown_format",
            Self::HeaderInvalid => "header_invalid",
            Self::WrongKeyId => "wrong_key_id",
            Self::UnknownVersion { .. } => "unknown_version",
            Self::DecryptFailed => "decrypt_failed",
        }
    }
}

/// One KEK id's versions, each an AES-256-GCM key made once, and the version that seals.
#[derive(Clone)]
pub struct KeyRing {
    id: String,
    current_version: u32,
    /// Sorted by version, no version twice, never empty, holds `current_version`.
    keys: Vec<(u32, LessSafeKey)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("id", &self.id)
            .field("current_version", &self.current_version)
            .field("versions", &self.versions())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring for KEK `id` holding `versions` (1 to [`VERSIONS_MAX`] distinct version
    /// numbers of at least 1, in any order), sealing with `current_version`.
    pub fn new(
        id: &str,
        current_version: u32,
        versions: Vec<(u32, KeyBytes)>,
    ) -> Result<Self, EnvelopeError> {
        check_key_id(id)?;
        if versions.is_empty() {
            return Err(EnvelopeError::NoVersions);
        }
        if versions.len() > VERSIONS_MAX {
            return Err(EnvelopeError::TooManyVersions);
        }
        let mut keys = Vec::with_capacity(versions.len());
        for (version, bytes) in &versions {
            if *version == 0 {
                return Err(EnvelopeError::VersionInvalid);
            }
            keys.push((*version, aead_key(bytes)?));
        }
        keys.sort_unstable_by_key(|(version, _)| *version);
        if keys.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(EnvelopeError::VersionDuplicate);
        }
        let ring = Self { id: id.to_owned(), current_version, keys };
        ring.key(current_version).ok_or(EnvelopeError::CurrentVersionMissing)?;
        Ok(ring)
    }

    /// A fresh ring for KEK `id` with one version, 1, whose key comes from the OS
    /// generator. The raw key is returned for the caller to store as a secret (see
    /// [`key_to_base64`]); this is the only time it leaves the ring.
    pub fn generate(id: &str) -> Result<(Self, KeyBytes), EnvelopeError> {
        check_key_id(id)?;
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut key).map_err(|_| EnvelopeError::Random)?;
        let ring = Self::new(id, 1, vec![(1, key)])?;
        Ok((ring, key))
    }

    /// The KEK id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The version [`seal`](Self::seal) uses.
    pub fn current_version(&self) -> u32 {
        self.current_version
    }

    /// The versions the ring holds, in ascending order.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.iter().map(|(version, _)| *version).collect()
    }

    /// Seals `plaintext` (at most [`PLAINTEXT_LEN_MAX`] bytes) under the current version
    /// with a fresh random nonce, binding it to `aad` (at most [`AAD_LEN_MAX`] bytes),
    /// in the layout of the module doc.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| EnvelopeError::Random)?;
        self.seal_with_nonce(nonce, plaintext, aad)
    }

    /// Opens a value sealed under this ring's KEK id with any version it holds, given the
    /// `aad` it was sealed with.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        if aad.len() > AAD_LEN_MAX {
            return Err(EnvelopeError::AadTooLong);
        }
        let parsed = parse(sealed)?;
        if parsed.key_id != self.id {
            return Err(EnvelopeError::WrongKeyId);
        }
        let version = parsed.version;
        let key = self.key(version).ok_or(EnvelopeError::UnknownVersion { version })?;
        let additional = [parsed.authenticated, aad].concat();
        let mut buffer = parsed.body.to_vec();
        let nonce = Nonce::assume_unique_for_key(parsed.nonce);
        let plaintext_len = key
            .open_in_place(nonce, Aad::from(&additional), &mut buffer)
            .map_err(|_| EnvelopeError::DecryptFailed)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }

    /// Opens `sealed` with whichever version sealed it and seals the plaintext again
    /// under the current version, with the same `aad` and a fresh nonce: the re-wrap
    /// after a rotation. [`sealed_by`] tells which values still need it.
    pub fn reseal(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let plaintext = self.open(sealed, aad)?;
        self.seal(&plaintext, aad)
    }

    fn key(&self, version: u32) -> Option<&LessSafeKey> {
        self.keys.iter().find(|(held, _)| *held == version).map(|(_, key)| key)
    }

    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        check_lengths(plaintext, aad)?;
        let key = self.key(self.current_version).ok_or(EnvelopeError::CurrentVersionMissing)?;
        let header_len = 2 + self.id.len() + 4;
        let mut out = Vec::with_capacity(header_len + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_VERSION);
        // `check_key_id` bounds the id to 64 bytes, so its length fits the byte.
        out.push(u8::try_from(self.id.len()).map_err(|_| EnvelopeError::KeyIdInvalid)?);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.current_version.to_be_bytes());
        out.extend_from_slice(&nonce);
        let additional = [out.as_slice(), aad].concat();
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&additional),
                &mut out[body_start..],
            )
            .map_err(|_| EnvelopeError::PlaintextTooLong)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }
}

/// The KEK id and version that sealed `sealed`, read from its header without opening it:
/// what a background re-wrap checks against [`KeyRing::current_version`]. The header is
/// not authenticated until the value is opened.
pub fn sealed_by(sealed: &[u8]) -> Result<(&str, u32), EnvelopeError> {
    let parsed = parse(sealed)?;
    Ok((parsed.key_id, parsed.version))
}

/// A key from its padded standard base64 text ([`KEY_BASE64_LEN`] characters, canonical,
/// no whitespace), as a KEK version arrives from the secrets provider.
pub fn key_from_base64(text: &str) -> Result<KeyBytes, EnvelopeError> {
    // 44 characters of padded base64 decode into a 33-byte buffer: 32 bytes and a pad.
    let mut decoded = [0u8; KEY_BASE64_LEN / 4 * 3];
    let fits = text.len() == KEY_BASE64_LEN
        && BASE64.decode_len(text.len()).is_ok_and(|len| len == decoded.len());
    if !fits {
        return Err(EnvelopeError::KeyInvalid);
    }
    let len =
        BASE64.decode_mut(text.as_bytes(), &mut decoded).map_err(|_| EnvelopeError::KeyInvalid)?;
    let bytes = decoded.get(..len).filter(|bytes| bytes.len() == KEY_LEN);
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(bytes.ok_or(EnvelopeError::KeyInvalid)?);
    Ok(key)
}

/// A key as padded standard base64, the text [`key_from_base64`] reads.
pub fn key_to_base64(key: &KeyBytes) -> String {
    BASE64.encode(key)
}

fn aead_key(bytes: &KeyBytes) -> Result<LessSafeKey, EnvelopeError> {
    let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| EnvelopeError::KeyInvalid)?;
    Ok(LessSafeKey::new(unbound))
}

fn is_key_id(id: &str) -> bool {
    (1..=KEY_ID_LEN_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn check_key_id(id: &str) -> Result<(), EnvelopeError> {
    is_key_id(id).then_some(()).ok_or(EnvelopeError::KeyIdInvalid)
}

fn check_lengths(plaintext: &[u8], aad: &[u8]) -> Result<(), EnvelopeError> {
    if plaintext.len() > PLAINTEXT_LEN_MAX {
        return Err(EnvelopeError::PlaintextTooLong);
    }
    if aad.len() > AAD_LEN_MAX {
        return Err(EnvelopeError::AadTooLong);
    }
    Ok(())
}

/// A sealed value split into its fields; nothing is authenticated yet.
struct Parsed<'a> {
    key_id: &'a str,
    version: u32,
    nonce: [u8; NONCE_LEN],
    /// The header and the nonce: the first part of the GCM additional data.
    authenticated: &'a [u8],
    /// The ciphertext and the tag.
    body: &'a [u8],
}

fn parse(sealed: &[u8]) -> Result<Parsed<'_>, EnvelopeError> {
    let (&[format], rest) = take::<1>(sealed)?;
    if format != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownFormat);
    }
    let (&[id_len], rest) = take::<1>(rest)?;
    let (id, rest) = rest.split_at_checked(usize::from(id_len)).ok_or(EnvelopeError::Truncated)?;
    let (version, rest) = take::<4>(rest)?;
    let (nonce, body) = take::<NONCE_LEN>(rest)?;
    if body.len() < TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let key_id = std::str::from_utf8(id)
        .ok()
        .filter(|id| is_key_id(id))
        .ok_or(EnvelopeError::HeaderInvalid)?;
    let version = u32::from_be_bytes(*version);
    if version == 0 {
        return Err(EnvelopeError::HeaderInvalid);
    }
    if body.len() > PLAINTEXT_LEN_MAX + TAG_LEN {
        return Err(EnvelopeError::PlaintextTooLong);
    }
    let authenticated = &sealed[..sealed.len() - body.len()];
    Ok(Parsed { key_id, version, nonce: *nonce, authenticated, body })
}

fn take<const N: usize>(bytes: &[u8]) -> Result<(&[u8; N], &[u8]), EnvelopeError> {
    bytes.split_first_chunk::<N>().ok_or(EnvelopeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected value was computed independently with Python's `cryptography` 48.0.0
    /// (OpenSSL's AES-GCM), not with ring:
    ///
    /// ```python
    /// from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    /// key, nonce = bytes(range(32)), bytes(range(0xa0, 0xac))
    /// kid, version = b"kek-test.1", 7
    /// pt, aad = b"tenant signing secret", b"pk_0123456789abcdef"
    /// header = bytes([1, len(kid)]) + kid + version.to_bytes(4, "big")
    /// print((header + nonce + AESGCM(key).encrypt(nonce, pt, header + nonce + aad)).hex())
    /// ```
    #[test]
    fn known_answer_from_an_independent_implementation() {
        let mut key = [0u8; KEY_LEN];
        for (byte, value) in key.iter_mut().zip(0u8..) {
            *byte = value;
        }
        let nonce = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab];
        let ring = KeyRing::new("kek-test.1", 7, vec![(7, key)]).unwrap();
        let aad = b"pk_0123456789abcdef";
        let sealed = ring.seal_with_nonce(nonce, b"tenant signing secret", aad).unwrap();
        let expected = "010a6b656b2d746573742e3100000007\
                        a0a1a2a3a4a5a6a7a8a9aaab\
                        927d124c2bbf22cc0b02e9ba691de0ad15cf2b75e6\
                        0665c417b81168a8c50a5e643ee67173";
        assert_eq!(data_encoding::HEXLOWER.encode(&sealed), expected);
        assert_eq!(ring.open(&sealed, aad).unwrap(), b"tenant signing secret");
        assert_eq!(sealed_by(&sealed), Ok(("kek-test.1", 7)));
    }

    #[test]
    fn the_header_is_parsed_field_by_field() {
        let mut sealed = vec![1, 3, b'k', b'e', b'k', 0, 0, 1, 2];
        sealed.extend_from_slice(&[9; NONCE_LEN]);
        sealed.extend_from_slice(&[7; TAG_LEN + 5]);
        let parsed = parse(&sealed).unwrap();
        assert_eq!((parsed.key_id, parsed.version), ("kek", 258));
        assert_eq!(parsed.nonce, [9; NONCE_LEN]);
        assert_eq!(parsed.authenticated, &sealed[..2 + 3 + 4 + NONCE_LEN]);
        assert_eq!(parsed.body, &[7; TAG_LEN + 5]);
    }

    #[test]
    fn headers_with_invalid_ids_or_version_zero_are_refused() {
        let with = |id: &[u8], version: u32| {
            let mut sealed = vec![1, u8::try_from(id.len()).unwrap()];
            sealed.extend_from_slice(id);
            sealed.extend_from_slice(&version.to_be_bytes());
            sealed.extend_from_slice(&[0; NONCE_LEN + TAG_LEN]);
            sealed_by(&sealed).map(|(id, version)| (id.to_owned(), version))
        };
        assert_eq!(with(b"kek", 1), Ok(("kek".to_owned(), 1)));
        for id in [&b""[..], b"k k", b"k/1", b"\xff", "é".as_bytes(), &[b'k'; 65]] {
            assert_eq!(with(id, 1), Err(EnvelopeError::HeaderInvalid), "{id:?}");
        }
        assert_eq!(with(b"kek", 0), Err(EnvelopeError::HeaderInvalid));
    }
}
