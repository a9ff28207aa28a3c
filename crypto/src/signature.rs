//! Signed tenant requests: HMAC-SHA256 over a canonical form of the request.
//!
//! A tenant signs each request with its secret and sends the result in one header:
//!
//! ```text
//! Authorization: Protea-HMAC-SHA256 KeyId=pk_0123456789abcdef, Timestamp=1700000000, Nonce=<16-64 characters>, Signature=<64 lower-case hex digits>
//! ```
//!
//! The scheme name is exact and followed by one space; the four fields are separated by
//! commas (spaces around them are ignored), each appears exactly once, in any order, and
//! nothing else may appear. `KeyId` is 1-64 characters of `[A-Za-z0-9_-]`; `Timestamp` is
//! unix seconds in decimal, at most 12 digits, without sign or leading zeros; `Nonce` is
//! 16-64 characters of `[A-Za-z0-9_-]`, fresh for every request (the server refuses a
//! nonce it has seen within the replay window, so two identical requests in the same
//! second stay distinct and a captured request cannot be sent again); `Signature` is the
//! HMAC-SHA256 tag in lower-case hex. The whole value is at most 320 bytes.
//!
//! The tag is computed over the *canonical request*: eight lines joined by `\n`, with no
//! trailing newline:
//!
//! ```text
//! PROTEA-HMAC-SHA256
//! <timestamp: unix seconds, decimal, as in the header>
//! <key id, as in the header>
//! <nonce, as in the header>
//! <method: upper case, e.g. POST>
//! <path: as sent, percent-encoding preserved, e.g. /v1/transfers>
//! <canonical query: parameters sorted by name, then whole parameter, joined by &; or empty>
//! <hex SHA-256 of the body, lower case; of the empty string if there is no body>
//! ```
//!
//! The canonical query splits the query as sent (without `?`) on `&` and splits each
//! parameter at its first `=` into a name and a value; nothing is decoded or re-encoded.
//! No part may contain a newline: method is 1-16 of `A-Z`; path starts with `/` and,
//! like the query, holds only visible ASCII (no spaces or control characters; no `?` or
//! `#` in the path, no `#` in the query); a query has no empty parameter (`a&&b`, a
//! trailing `&`). A request that breaks these rules is refused, never re-encoded, so the
//! canonical request always splits back into the parts it was made from: two different
//! requests never share one.
//!
//! Verification checks the tag in constant time against each active secret of the key
//! (two during a rotation) and then the timestamp against a replay window around the
//! server's clock (default five minutes either way). Refusing a nonce seen before within
//! the window is the caller's job (it needs memory; this module has none).
//!
//! This module does no I/O, never logs, and never formats a secret: [`SigningKey`]'s
//! `Debug` shows nothing of it. Every [`SignatureError`] is for logs and metrics only; a
//! client must see one undifferentiated 401.

use data_encoding::HEXLOWER;
use ring::{digest, hmac};

/// The authorization scheme, the first word of the header value.
pub const SCHEME: &str = "Protea-HMAC-SHA256";
/// The first line of every canonical request.
pub const ALGORITHM_LINE: &str = "PROTEA-HMAC-SHA256";
/// The default replay window: a timestamp may be this far from the server's clock.
pub const DEFAULT_WINDOW_SECONDS: u64 = 300;
/// The longest accepted `Authorization` value, in bytes.
pub const AUTHORIZATION_LEN_MAX: usize = 320;
/// The longest key id, in bytes.
pub const KEY_ID_LEN_MAX: usize = 64;
/// The shortest nonce, in bytes.
pub const NONCE_LEN_MIN: usize = 16;
/// The longest nonce, in bytes.
pub const NONCE_LEN_MAX: usize = 64;
/// The longest method, in bytes.
pub const METHOD_LEN_MAX: usize = 16;
/// The longest path, in bytes.
pub const PATH_LEN_MAX: usize = 2048;
/// The longest query, in bytes.
pub const QUERY_LEN_MAX: usize = 4096;
/// The most digits a timestamp may have.
pub const TIMESTAMP_DIGITS_MAX: usize = 12;
/// The shortest secret a [`SigningKey`] accepts, in bytes.
pub const SECRET_LEN_MIN: usize = 32;

/// An HMAC-SHA256 tag or a SHA-256 digest.
pub type Digest32 = [u8; 32];

/// Why a signed request was refused. For logs and metrics; the client sees 401 for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header or a signed part of the request breaks the format; `part` names which.
    #[error("malformed signed request: {part}")]
    Malformed {
        /// The offending part, from a fixed set (`header`, `key_id`, `path`, ...).
        part: &'static str,
    },
    /// No active secret of the key produced the signature.
    #[error("the signature does not match")]
    BadSignature,
    /// The signature is authentic but its timestamp is older than the replay window.
    #[error("the signed timestamp is older than the replay window")]
    Expired,
    /// The signature is authentic but its timestamp is ahead of the replay window.
    #[error("the signed timestamp is ahead of the replay window")]
    FromTheFuture,
}

impl SignatureError {
    /// A fixed snake_case code, usable as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::FromTheFuture => "from_the_future",
        }
    }
}

/// A signing secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret must be at least {} bytes", SECRET_LEN_MIN)]
pub struct SecretTooShort;

fn malformed(part: &'static str) -> SignatureError {
    SignatureError::Malformed { part }
}

/// The parts of a request that are signed, besides the timestamp and key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The method, upper case (`POST`).
    pub method: &'a str,
    /// The path as sent, without the query (`/v1/transfers`).
    pub path: &'a str,
    /// The query as sent, without `?`; empty if there is none.
    pub query: &'a str,
    /// The SHA-256 of the body ([`body_digest`]).
    pub body_sha256: &'a Digest32,
}

/// Who signed and when: the signed fields of the header besides the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The key the request is signed with.
    pub key_id: &'a str,
    /// When the client signed, in unix seconds.
    pub timestamp: u64,
    /// The request's unique nonce ([`random_nonce`]).
    pub nonce: &'a str,
}

/// The `Authorization` header of a signed request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// The key the request claims to be signed with.
    pub key_id: String,
    /// When the client signed, in unix seconds.
    pub timestamp: u64,
    /// The request's unique nonce.
    pub nonce: String,
    /// The HMAC-SHA256 tag.
    pub signature: Digest32,
}

impl SignedHeader {
    /// The header value, in the format [`parse_authorization`] reads.
    pub fn header_value(&self) -> String {
        let signature = HEXLOWER.encode(&self.signature);
        format!(
            "{SCHEME} KeyId={}, Timestamp={}, Nonce={}, Signature={signature}",
            self.key_id, self.timestamp, self.nonce
        )
    }

    /// The signed fields besides the tag.
    pub fn scope(&self) -> Scope<'_> {
        Scope { key_id: &self.key_id, timestamp: self.timestamp, nonce: &self.nonce }
    }
}

/// A fresh nonce: 16 bytes from the OS generator as 32 lower-case hex digits.
pub fn random_nonce() -> Result<String, crate::api_key::RandomError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| crate::api_key::RandomError)?;
    Ok(HEXLOWER.encode(&bytes))
}

/// An HMAC-SHA256 key made once from a raw secret, to be cached and reused.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl SigningKey {
    /// A key from a raw secret of at least [`SECRET_LEN_MIN`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, SecretTooShort> {
        if secret.len() < SECRET_LEN_MIN {
            return Err(SecretTooShort);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The HMAC-SHA256 tag of `message`.
    pub fn sign(&self, message: &[u8]) -> Digest32 {
        to_digest32(hmac::sign(&self.0, message).as_ref())
    }

    fn verifies(&self, message: &[u8], tag: &Digest32) -> bool {
        hmac::verify(&self.0, message, tag).is_ok()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The secrets a key id accepts: one, or two while a rotation is under way.
#[derive(Debug, Clone)]
pub struct ActiveKeys {
    current: SigningKey,
    previous: Option<SigningKey>,
}

impl ActiveKeys {
    /// Only `current` is accepted.
    pub fn single(current: SigningKey) -> Self {
        Self { current, previous: None }
    }

    /// Both are accepted, during a rotation from `previous` to `current`.
    pub fn rotating(current: SigningKey, previous: SigningKey) -> Self {
        Self { current, previous: Some(previous) }
    }

    /// The key new signatures should use.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Whether any active key produced `tag`; every key is tried, each in constant time.
    fn verify(&self, message: &[u8], tag: &Digest32) -> bool {
        let current = self.current.verifies(message, tag);
        let previous = self.previous.as_ref().is_some_and(|key| key.verifies(message, tag));
        current | previous
    }
}

/// The HMAC-SHA256 tag of `message` under a raw `secret` of any length: the bare
/// primitive (RFC 2104). Requests should use a cached [`SigningKey`].
pub fn sign(secret: &[u8], message: &[u8]) -> Digest32 {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    to_digest32(hmac::sign(&key, message).as_ref())
}

/// The SHA-256 of a request body.
pub fn body_digest(body: &[u8]) -> Digest32 {
    to_digest32(digest::digest(&digest::SHA256, body).as_ref())
}

fn to_digest32(bytes: &[u8]) -> Digest32 {
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    out
}

/// The canonical request (see the module doc) for a request signed in `scope`, or
/// `Malformed` if a part breaks the rules.
pub fn canonical_request(
    scope: &Scope<'_>,
    request: &RequestParts<'_>,
) -> Result<String, SignatureError> {
    check_key_id(scope.key_id)?;
    check_nonce(scope.nonce)?;
    check_method(request.method)?;
    check_path(request.path)?;
    let query = canonical_query(request.query)?;
    let timestamp = scope.timestamp.to_string();
    let body = HEXLOWER.encode(request.body_sha256);
    let lines = [
        ALGORITHM_LINE,
        &timestamp,
        scope.key_id,
        scope.nonce,
        request.method,
        request.path,
        &query,
        &body,
    ];
    Ok(lines.join("\n"))
}

/// The canonical form of a query as sent (without `?`): its parameters sorted by name,
/// then by the whole parameter, joined by `&`. Nothing is decoded.
pub fn canonical_query(query: &str) -> Result<String, SignatureError> {
    if query.is_empty() {
        return Ok(String::new());
    }
    let well_formed =
        query.len() <= QUERY_LEN_MAX && query.bytes().all(|b| is_visible(b) && b != b'#');
    let mut params: Vec<&str> = query.split('&').collect();
    if !well_formed || params.iter().any(|param| param.is_empty()) {
        return Err(malformed("query"));
    }
    params.sort_unstable_by(|a, b| param_name(a).cmp(param_name(b)).then_with(|| a.cmp(b)));
    Ok(params.join("&"))
}

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(name, _)| name)
}

fn is_visible(byte: u8) -> bool {
    (0x21..=0x7e).contains(&byte)
}

fn check_key_id(key_id: &str) -> Result<(), SignatureError> {
    let ok = (1..=KEY_ID_LEN_MAX).contains(&key_id.len())
        && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(()).ok_or(malformed("key_id"))
}

fn check_nonce(nonce: &str) -> Result<(), SignatureError> {
    let ok = (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(()).ok_or(malformed("nonce"))
}

fn check_method(method: &str) -> Result<(), SignatureError> {
    let ok = (1..=METHOD_LEN_MAX).contains(&method.len())
        && method.bytes().all(|b| b.is_ascii_uppercase());
    ok.then_some(()).ok_or(malformed("method"))
}

fn check_path(path: &str) -> Result<(), SignatureError> {
    let ok = path.starts_with('/')
        && path.len() <= PATH_LEN_MAX
        && path.bytes().all(|b| is_visible(b) && b != b'?' && b != b'#');
    ok.then_some(()).ok_or(malformed("path"))
}

/// Signs a request: what a client does. The header carries the scope's fields.
pub fn sign_request(
    key: &SigningKey,
    scope: &Scope<'_>,
    request: &RequestParts<'_>,
) -> Result<SignedHeader, SignatureError> {
    let canonical = canonical_request(scope, request)?;
    let signature = key.sign(canonical.as_bytes());
    Ok(SignedHeader {
        key_id: scope.key_id.to_owned(),
        timestamp: scope.timestamp,
        nonce: scope.nonce.to_owned(),
        signature,
    })
}

/// Verifies a signed request: the tag against every key in `keys` (in constant time),
/// then `header.timestamp` against `now_unix` ± `window_seconds`. A bad signature is
/// reported before a stale timestamp, so `Expired` and `FromTheFuture` mean an authentic
/// request (a replay or a skewed clock), never a forgery.
pub fn verify(
    keys: &ActiveKeys,
    header: &SignedHeader,
    request: &RequestParts<'_>,
    now_unix: u64,
    window_seconds: u64,
) -> Result<(), SignatureError> {
    let canonical = canonical_request(&header.scope(), request)?;
    if !keys.verify(canonical.as_bytes(), &header.signature) {
        return Err(SignatureError::BadSignature);
    }
    check_window(header.timestamp, now_unix, window_seconds)
}

fn check_window(timestamp: u64, now_unix: u64, window_seconds: u64) -> Result<(), SignatureError> {
    if now_unix.saturating_sub(timestamp) > window_seconds {
        return Err(SignatureError::Expired);
    }
    if timestamp.saturating_sub(now_unix) > window_seconds {
        return Err(SignatureError::FromTheFuture);
    }
    Ok(())
}

/// Parses an `Authorization` value in the format of the module doc, strictly.
pub fn parse_authorization(value: &str) -> Result<SignedHeader, SignatureError> {
    if value.len() > AUTHORIZATION_LEN_MAX {
        return Err(malformed("header"));
    }
    let fields = value
        .strip_prefix(SCHEME)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(malformed("scheme"))?;
    let mut found = HeaderFields::default();
    for field in fields.split(',') {
        let (name, value) = field.trim_matches(' ').split_once('=').ok_or(malformed("header"))?;
        found.set(name, value)?;
    }
    found.finish()
}

#[derive(Default)]
struct HeaderFields<'a> {
    key_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    nonce: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> HeaderFields<'a> {
    fn set(&mut self, name: &str, value: &'a str) -> Result<(), SignatureError> {
        let slot = match name {
            "KeyId" => &mut self.key_id,
            "Timestamp" => &mut self.timestamp,
            "Nonce" => &mut self.nonce,
            "Signature" => &mut self.signature,
            _ => return Err(malformed("header")),
        };
        if slot.replace(value).is_some() {
            return Err(malformed("header"));
        }
        Ok(())
    }

    fn finish(self) -> Result<SignedHeader, SignatureError> {
        let key_id = self.key_id.ok_or(malformed("key_id"))?;
        check_key_id(key_id)?;
        let timestamp = parse_timestamp(self.timestamp.ok_or(malformed("timestamp"))?)?;
        let nonce = self.nonce.ok_or(malformed("nonce"))?;
        check_nonce(nonce)?;
        let signature = parse_signature(self.signature.ok_or(malformed("signature"))?)?;
        Ok(SignedHeader {
            key_id: key_id.to_owned(),
            timestamp,
            nonce: nonce.to_owned(),
            signature,
        })
    }
}

fn parse_timestamp(text: &str) -> Result<u64, SignatureError> {
    let digits_ok = (1..=TIMESTAMP_DIGITS_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let parsed = digits_ok.then(|| text.parse::<u64>().ok()).flatten();
    parsed.ok_or(malformed("timestamp"))
}

fn parse_signature(text: &str) -> Result<Digest32, SignatureError> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(malformed("signature"));
    }
    HEXLOWER.decode_mut(text.as_bytes(), &mut out).map_err(|_| malformed("signature"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_are_inclusive() {
        assert_eq!(check_window(1000, 1300, 300), Ok(()));
        assert_eq!(check_window(1000, 1301, 300), Err(SignatureError::Expired));
        assert_eq!(check_window(1300, 1000, 300), Ok(()));
        assert_eq!(check_window(1301, 1000, 300), Err(SignatureError::FromTheFuture));
        assert_eq!(check_window(0, u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn timestamps_are_plain_decimal() {
        assert_eq!(parse_timestamp("0"), Ok(0));
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_timestamp("999999999999"), Ok(999_999_999_999));
        for bad in ["", "01", "+1", "-1", "1e9", "1 ", "1000000000000", "１"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signatures_are_64_lower_hex() {
        let hex = "00".repeat(32);
        assert_eq!(parse_signature(&hex), Ok([0u8; 32]));
        for bad in ["AB".repeat(32), "0".repeat(63), "0".repeat(65), "zz".repeat(32)] {
            assert!(parse_signature(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SigningKey::new(&[0x42; 32]).unwrap();
        let keys = ActiveKeys::rotating(key.clone(), key);
        let shown = format!("{keys:?}");
        assert!(!shown.contains("42") && !shown.contains("66"), "{shown}");
    }
}
