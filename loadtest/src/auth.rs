//! The tenant credentials a request carries: an HMAC signature per request (`--auth
//! signed`, the default; [`crypto::signature`]) or the key as a bearer token (`--auth
//! bearer`, which the gateway accepts only with `--allow-bearer-keys`).
//!
//! Signing costs one SHA-256 of the body and one HMAC-SHA256 of the canonical request
//! (about 200 bytes) per request, plus the header's formatting: the [`SigningKey`] is made
//! once per run, when the flags are validated. The timestamp is the wall clock when the
//! request is built to be sent, never its intended start: a start that waited in the
//! backlog is signed when it leaves. What is signed is exactly the request target that
//! goes on the wire, split at its first `?` into the path and the query.
//!
//! This module must never log or format the secret: [`Credentials`]' `Debug` shows the
//! key id and the mode only, and the header values it makes are marked sensitive (never
//! indexed by HPACK, hidden from `Debug`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crypto::signature::{
    RequestParts, SECRET_LEN_MIN, Scope, SigningKey, body_digest, sign_request,
};
use http::{HeaderValue, Method};

/// How requests authenticate (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// `Authorization: Protea-HMAC-SHA256 KeyId=.., Timestamp=.., Signature=..`, computed
    /// per request.
    Signed,
    /// `Authorization: Bearer KEYID.SECRET` (gateways started with `--allow-bearer-keys`).
    Bearer,
}

/// Why `--key` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `KEYID.SECRET`.
    #[error("expected KEYID.SECRET")]
    Shape,
    /// The key id breaks the signature header's rules.
    #[error("the key id must be 1 to 64 of A-Z, a-z, 0-9, `_` and `-`")]
    KeyId,
    /// The secret cannot be sent in a header.
    #[error("the secret must be visible ASCII")]
    Secret,
    /// Signing needs a longer secret.
    #[error(
        "signed requests need a secret of at least {SECRET_LEN_MIN} bytes (the 64 hex digits \
         `gateway tenant create` prints); a shorter bearer key needs --auth bearer"
    )]
    SecretTooShort,
    /// The operating system's random generator failed (nonces need it once per run).
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A request could not be signed: a path or query the signature scheme refuses. The
/// load tester's own paths never are; a caller's could be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign {target}: {reason}")]
pub struct SignError {
    /// The request target (path and query).
    pub target: String,
    /// Why.
    pub reason: String,
}

/// A tenant's credentials, made once per run and shared read-only by every connection.
#[derive(Clone)]
pub struct Credentials {
    key_id: String,
    scheme: Scheme,
    nonces: Arc<Nonces>,
}

/// Unique nonces without a system call per request: a random per-run prefix and a
/// counter (the gateway refuses a key id and nonce it has seen within its window).
struct Nonces {
    prefix: String,
    next: AtomicU64,
}

impl Nonces {
    fn new() -> Result<Self, KeyError> {
        let prefix = crypto::signature::random_nonce().map_err(|_| KeyError::Random)?;
        Ok(Self { prefix: prefix[..16].to_owned(), next: AtomicU64::new(0) })
    }

    fn next(&self) -> String {
        format!("{}{:016x}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Clone)]
enum Scheme {
    /// The whole `Bearer KEYID.SECRET` value, made once.
    Bearer(HeaderValue),
    /// The HMAC key made from the secret's bytes as printed.
    Signed(SigningKey),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from `KEYID.SECRET` (split at the first `.`) for `mode`. The signing
    /// key is the secret's ASCII bytes, as `gateway tenant create` prints them.
    pub fn new(key: &str, mode: AuthMode) -> Result<Credentials, KeyError> {
        let (key_id, secret) = key.split_once('.').ok_or(KeyError::Shape)?;
        check_key_id(key_id)?;
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::Secret);
        }
        let scheme = match mode {
            AuthMode::Bearer => Scheme::Bearer(bearer(key)?),
            AuthMode::Signed => Scheme::Signed(
                SigningKey::new(secret.as_bytes()).map_err(|_| KeyError::SecretTooShort)?,
            ),
        };
        Ok(Credentials { key_id: key_id.to_owned(), scheme, nonces: Arc::new(Nonces::new()?) })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signed or bearer.
    pub fn mode(&self) -> AuthMode {
        match self.scheme {
            Scheme::Bearer(_) => AuthMode::Bearer,
            Scheme::Signed(_) => AuthMode::Signed,
        }
    }

    /// The `Authorization` value of one request: `target` is the path and query exactly
    /// as sent, `body` the bytes sent (empty without a body). Signed requests are signed
    /// now, with the wall clock's unix seconds.
    pub fn authorization(
        &self,
        method: &Method,
        target: &str,
        body: &[u8],
    ) -> Result<HeaderValue, SignError> {
        match &self.scheme {
            Scheme::Bearer(value) => Ok(value.clone()),
            Scheme::Signed(key) => self.sign(key, method, target, body, unix_now()),
        }
    }

    /// [`Credentials::authorization`] signed at `timestamp` (unix seconds).
    pub fn authorization_at(
        &self,
        method: &Method,
        target: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<HeaderValue, SignError> {
        match &self.scheme {
            Scheme::Bearer(value) => Ok(value.clone()),
            Scheme::Signed(key) => self.sign(key, method, target, body, timestamp),
        }
    }

    fn sign(
        &self,
        key: &SigningKey,
        method: &Method,
        target: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<HeaderValue, SignError> {
        let refuse = |reason: String| SignError { target: target.to_owned(), reason };
        let (path, query) = split_target(target);
        let body_sha256 = body_digest(body);
        let parts =
            RequestParts { method: method.as_str(), path, query, body_sha256: &body_sha256 };
        let nonce = self.nonces.next();
        let scope = Scope { key_id: &self.key_id, timestamp, nonce: &nonce };
        let header = sign_request(key, &scope, &parts).map_err(|e| refuse(e.to_string()))?;
        let mut value =
            HeaderValue::try_from(header.header_value()).map_err(|e| refuse(e.to_string()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// A request target split as the signature scheme reads it: the path before the first
/// `?`, the query after it (empty without one). Nothing is decoded or re-encoded.
pub fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

fn check_key_id(key_id: &str) -> Result<(), KeyError> {
    let ok = (1..=crypto::signature::KEY_ID_LEN_MAX).contains(&key_id.len())
        && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(()).ok_or(KeyError::KeyId)
}

fn bearer(key: &str) -> Result<HeaderValue, KeyError> {
    let mut value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| KeyError::Secret)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The wall clock in unix seconds (0 before 1970: the gateway then refuses the request,
/// which shows as 401s, never as a wrong measurement).
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use crypto::signature::{ActiveKeys, parse_authorization, verify};

    use super::*;

    const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn signed() -> Credentials {
        Credentials::new(&format!("pk_0123456789abcdef.{SECRET}"), AuthMode::Signed)
            .expect("a valid key")
    }

    fn verifies(value: &HeaderValue, method: &str, path: &str, query: &str, body: &[u8]) -> bool {
        let header = parse_authorization(value.to_str().expect("ASCII")).expect("parses");
        let keys = ActiveKeys::single(SigningKey::new(SECRET.as_bytes()).expect("long enough"));
        let parts = RequestParts { method, path, query, body_sha256: &body_digest(body) };
        verify(&keys, &header, &parts, header.timestamp, 0).is_ok()
    }

    #[test]
    fn the_signed_target_is_the_one_sent() {
        let credentials = signed();
        let target = "/v1/accounts/a1/transfers?limit=10&after=z%2F1";
        let value = credentials.authorization_at(&Method::GET, target, b"", 1_700_000_000).unwrap();
        assert!(value.is_sensitive());
        assert!(verifies(&value, "GET", "/v1/accounts/a1/transfers", "limit=10&after=z%2F1", b""));
        assert!(!verifies(&value, "GET", "/v1/accounts/a1/transfers", "limit=11&after=z%2F1", b""));
        assert!(!verifies(&value, "GET", "/v1/accounts/a1/transfers", "limit=10&after=z/1", b""));
        let body = br#"{"id":"x"}"#;
        let value = credentials.authorization_at(&Method::POST, "/v1/transfers", body, 1).unwrap();
        assert!(verifies(&value, "POST", "/v1/transfers", "", body));
        assert!(!verifies(&value, "POST", "/v1/transfers", "", b"{}"));
        assert!(
            value
                .to_str()
                .unwrap()
                .starts_with("Protea-HMAC-SHA256 KeyId=pk_0123456789abcdef, Timestamp=1, Nonce=")
        );
        let again = credentials.authorization_at(&Method::POST, "/v1/transfers", body, 1).unwrap();
        let nonce = |v: &HeaderValue| parse_authorization(v.to_str().unwrap()).unwrap().nonce;
        assert_ne!(nonce(&value), nonce(&again), "every request has its own nonce");
    }

    #[test]
    fn targets_split_at_the_first_question_mark() {
        assert_eq!(split_target("/a?b=1?c"), ("/a", "b=1?c"));
        assert_eq!(split_target("/a"), ("/a", ""));
        assert_eq!(split_target("/a?"), ("/a", ""));
    }

    #[test]
    fn keys_are_checked_for_their_mode() {
        let cases = [
            ("nodot", AuthMode::Bearer, Err(KeyError::Shape)),
            ("bad id.secret", AuthMode::Bearer, Err(KeyError::KeyId)),
            ("pk_x.", AuthMode::Bearer, Err(KeyError::Secret)),
            ("pk_x.short", AuthMode::Signed, Err(KeyError::SecretTooShort)),
            ("pk_x.short", AuthMode::Bearer, Ok(AuthMode::Bearer)),
        ];
        for (key, mode, expected) in cases {
            assert_eq!(Credentials::new(key, mode).map(|c| c.mode()), expected, "{key}");
        }
        let bearer = Credentials::new("pk_x.short", AuthMode::Bearer).unwrap();
        let value = bearer.authorization(&Method::GET, "/v1/x", b"").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer pk_x.short");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", signed());
        assert!(shown.contains("pk_0123456789abcdef") && !shown.contains(SECRET), "{shown}");
        let bearer = Credentials::new(&format!("pk_x.{SECRET}"), AuthMode::Bearer).unwrap();
        assert!(!format!("{bearer:?}").contains(SECRET));
    }

    #[test]
    fn a_target_the_scheme_refuses_is_an_error_naming_it() {
        let error = signed().authorization_at(&Method::GET, "/a b", b"", 1).unwrap_err();
        assert_eq!(error.target, "/a b");
    }
}
