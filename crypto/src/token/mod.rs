//! Short-lived operator tokens: compact JWS (RFC 7515/7519) signed with Ed25519 (EdDSA,
//! RFC 8037), issued at sign-in.
//!
//! A token is `base64url(header) "." base64url(claims) "." base64url(signature)`, all
//! without padding. The header is exactly `{"alg":"EdDSA","typ":"JWT","kid":"<key id>"}`
//! and the claims are exactly [`Claims`]: `sub`, `role`, `sid`, `iat`, `exp`, `jti`, no
//! more, no fewer. Key ids are 1-64 characters of `[A-Za-z0-9_.-]`; string claims are 1
//! to [`CLAIM_LEN_MAX`] bytes; a token is at most [`TOKEN_LEN_MAX`] bytes.
//!
//! The signing key is a PKCS#8 Ed25519 key from the secrets provider ([`TokenSigner`]).
//! The [`TokenVerifier`] holds public keys by key id, so a rotation adds the new key,
//! signs with it, and removes the old one once its last tokens have expired.
//!
//! Verification is strict and in this order: size; three segments of canonical
//! base64url; a header of exactly the shape above whose `alg` is `EdDSA` (so `none`,
//! `HS256` and every other algorithm are refused before any key is looked at); a known
//! key id; the signature over the first two segments as sent; then the claims, parsed
//! only once authentic, with `exp` after now and `iat` at most [`IAT_LEEWAY_SECONDS`]
//! ahead of now. The JSON is hand-written for this one flat shape (no serde in this
//! crate): unknown, missing or duplicate fields and any other JSON type are errors.
//!
//! This module does no I/O, never logs, and never formats a private key: `Debug` of
//! [`TokenSigner`] shows its key id only. Every [`TokenError`] is for logs and metrics;
//! a client sees one undifferentiated 401.

mod json;

use data_encoding::BASE64URL_NOPAD;
use json::{JsonError, ObjectWriter, Value};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// The only accepted `alg`.
pub const ALGORITHM: &str = "EdDSA";
/// The longest accepted token, in bytes.
pub const TOKEN_LEN_MAX: usize = 4096;
/// The longest key id, in bytes.
pub const KID_LEN_MAX: usize = 64;
/// The longest string claim, in bytes.
pub const CLAIM_LEN_MAX: usize = 256;
/// How far ahead of now `iat` may be, for clock skew between gateways.
pub const IAT_LEEWAY_SECONDS: u64 = 60;
/// The most keys a [`TokenVerifier`] holds.
pub const VERIFIER_KEYS_MAX: usize = 8;
/// The length of an Ed25519 public key, in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The operator's id.
    pub sub: String,
    /// The operator's role (`admin`, `operator`, `auditor`, `information_officer`).
    pub role: String,
    /// The session the token belongs to.
    pub sid: String,
    /// Issued at, in unix seconds.
    pub iat: u64,
    /// Expires at, in unix seconds: valid while now < `exp`.
    pub exp: u64,
    /// The token's unique id ([`random_token_id`]).
    pub jti: String,
}

/// Why a token was refused. For logs and metrics; the client sees 401 for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`TOKEN_LEN_MAX`].
    #[error("the token is too large")]
    TooLarge,
    /// Not three segments of base64url, or a header or claims of the wrong shape;
    /// `part` names which.
    #[error("malformed token: {part}")]
    Malformed {
        /// The offending part: `token`, `header`, `signature` or `claims`.
        part: &'static str,
    },
    /// `alg` is not exactly `EdDSA`.
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// No key with the token's key id.
    #[error("the token's key id is unknown")]
    UnknownKey,
    /// The signature does not verify under the key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is not after now.
    #[error("the token has expired")]
    Expired,
    /// `iat` is more than [`IAT_LEEWAY_SECONDS`] ahead of now.
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

impl TokenError {
    /// A fixed snake_case code, usable as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed { .. } => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::IssuedInFuture => "issued_in_future",
        }
    }
}

/// Why a key could not be used or a token could not be issued: configuration or
/// programming errors, not the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The PKCS#8 document is not an Ed25519 private key.
    #[error("the signing key is not a valid PKCS#8 Ed25519 key")]
    KeyRejected,
    /// A public key is not 32 bytes.
    #[error("a public key must be {} bytes", PUBLIC_KEY_LEN)]
    PublicKeyInvalid,
    /// A key id is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("a key id must be 1 to {} characters of [A-Za-z0-9_.-]", KID_LEN_MAX)]
    KidInvalid,
    /// The verifier already holds [`VERIFIER_KEYS_MAX`] keys.
    #[error("a verifier holds at most {} keys", VERIFIER_KEYS_MAX)]
    TooManyKeys,
    /// A string claim is empty or too long, or `exp` is not after `iat`.
    #[error("the claim {claim} is out of range")]
    ClaimInvalid {
        /// The claim's name.
        claim: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Signs tokens with one Ed25519 key, named by its key id.
pub struct TokenSigner {
    kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A new Ed25519 private key as a PKCS#8 v2 document, to store in the secrets
    /// provider.
    pub fn generate_pkcs8() -> Result<Vec<u8>, IssueError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| IssueError::Random)?;
        Ok(document.as_ref().to_vec())
    }

    /// A signer from a PKCS#8 document: v2 (whose public key is checked against the
    /// private key) or v1 (as `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8(kid: &str, der: &[u8]) -> Result<Self, IssueError> {
        check_kid(kid)?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| IssueError::KeyRejected)?;
        Ok(Self { kid: kid.to_owned(), pair })
    }

    /// The key id tokens are signed under.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, for [`TokenVerifier::insert`].
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// A signed token carrying `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, IssueError> {
        check_claims(claims)?;
        let header = ObjectWriter::new()
            .string("alg", ALGORITHM)
            .string("typ", "JWT")
            .string("kid", &self.kid)
            .finish();
        let mut token = BASE64URL_NOPAD.encode(header.as_bytes());
        token.push('.');
        token.push_str(&BASE64URL_NOPAD.encode(encode_claims(claims).as_bytes()));
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&BASE64URL_NOPAD.encode(signature.as_ref()));
        Ok(token)
    }
}

/// A random token id: 16 bytes from the OS in lower-case hex.
pub fn random_token_id() -> Result<String, IssueError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes)
        .map_err(|_| IssueError::Random)?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

/// Verifies tokens against the public keys of the signers it knows, by key id.
#[derive(Debug, Clone, Default)]
pub struct TokenVerifier {
    keys: Vec<(String, UnparsedPublicKey<Vec<u8>>)>,
}

impl TokenVerifier {
    /// A verifier with no keys: it refuses every token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts tokens under `kid` signed by `public_key`, replacing any key of that id.
    pub fn insert(&mut self, kid: &str, public_key: &[u8]) -> Result<(), IssueError> {
        check_kid(kid)?;
        if public_key.len() != PUBLIC_KEY_LEN {
            return Err(IssueError::PublicKeyInvalid);
        }
        self.remove(kid);
        if self.keys.len() == VERIFIER_KEYS_MAX {
            return Err(IssueError::TooManyKeys);
        }
        self.keys.push((kid.to_owned(), UnparsedPublicKey::new(&ED25519, public_key.to_vec())));
        Ok(())
    }

    /// Stops accepting tokens under `kid`; whether it was known.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.keys.len();
        self.keys.retain(|(known, _)| known != kid);
        self.keys.len() != before
    }

    /// The claims of `token` if it is well formed, signed by a known key, and valid at
    /// `now_unix` (see the module doc for the order of the checks).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(TokenError::TooLarge);
        }
        let (signed, signature) = token.rsplit_once('.').ok_or(malformed("token"))?;
        let (header, claims) = signed.split_once('.').ok_or(malformed("token"))?;
        if claims.contains('.') {
            return Err(malformed("token"));
        }
        let kid = parse_header(&decode(header, "header")?)?;
        let key = self.key(&kid)?;
        let signature = decode(signature, "signature")?;
        key.verify(signed.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
        let claims = parse_claims(&decode(claims, "claims")?)?;
        check_times(&claims, now_unix)?;
        Ok(claims)
    }

    fn key(&self, kid: &str) -> Result<&UnparsedPublicKey<Vec<u8>>, TokenError> {
        let found = self.keys.iter().find(|(known, _)| known == kid);
        found.map(|(_, key)| key).ok_or(TokenError::UnknownKey)
    }
}

fn malformed(part: &'static str) -> TokenError {
    TokenError::Malformed { part }
}

fn decode(segment: &str, part: &'static str) -> Result<Vec<u8>, TokenError> {
    BASE64URL_NOPAD.decode(segment.as_bytes()).map_err(|_| malformed(part))
}

fn check_kid(kid: &str) -> Result<(), IssueError> {
    let ok = (1..=KID_LEN_MAX).contains(&kid.len())
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then_some(()).ok_or(IssueError::KidInvalid)
}

fn check_claims(claims: &Claims) -> Result<(), IssueError> {
    let strings =
        [("sub", &claims.sub), ("role", &claims.role), ("sid", &claims.sid), ("jti", &claims.jti)];
    for (claim, value) in strings {
        if !(1..=CLAIM_LEN_MAX).contains(&value.len()) {
            return Err(IssueError::ClaimInvalid { claim });
        }
    }
    if claims.exp <= claims.iat {
        return Err(IssueError::ClaimInvalid { claim: "exp" });
    }
    Ok(())
}

fn check_times(claims: &Claims, now_unix: u64) -> Result<(), TokenError> {
    if claims.exp <= now_unix {
        return Err(TokenError::Expired);
    }
    if claims.iat > now_unix.saturating_add(IAT_LEEWAY_SECONDS) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

fn encode_claims(claims: &Claims) -> String {
    ObjectWriter::new()
        .string("sub", &claims.sub)
        .string("role", &claims.role)
        .string("sid", &claims.sid)
        .number("iat", claims.iat)
        .number("exp", claims.exp)
        .string("jti", &claims.jti)
        .finish()
}

/// The key id of a header of exactly `{"alg":"EdDSA","typ":"JWT","kid":...}`, any order.
fn parse_header(bytes: &[u8]) -> Result<String, TokenError> {
    let members = json::parse_object(bytes).map_err(|JsonError| malformed("header"))?;
    let [alg, typ, kid] =
        take_members(members, ["alg", "typ", "kid"]).ok_or(malformed("header"))?;
    let (Value::Str(alg), Value::Str(typ), Value::Str(kid)) = (alg, typ, kid) else {
        return Err(malformed("header"));
    };
    if alg != ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if typ != "JWT" {
        return Err(malformed("header"));
    }
    Ok(kid)
}

fn parse_claims(bytes: &[u8]) -> Result<Claims, TokenError> {
    let members = json::parse_object(bytes).map_err(|JsonError| malformed("claims"))?;
    let names = ["sub", "role", "sid", "iat", "exp", "jti"];
    let values = take_members(members, names).ok_or(malformed("claims"))?;
    match values {
        [
            Value::Str(sub),
            Value::Str(role),
            Value::Str(sid),
            Value::Num(iat),
            Value::Num(exp),
            Value::Str(jti),
        ] => Ok(Claims { sub, role, sid, iat, exp, jti }),
        _ => Err(malformed("claims")),
    }
}

/// The values of exactly the members `names`, in that order; `None` if one is missing or
/// another is present. Names are already unique.
fn take_members<const N: usize>(
    members: Vec<(String, Value)>,
    names: [&str; N],
) -> Option<[Value; N]> {
    if members.len() != N {
        return None;
    }
    let mut slots: [Option<Value>; N] = std::array::from_fn(|_| None);
    for (name, value) in members {
        let index = names.iter().position(|wanted| *wanted == name)?;
        slots[index] = Some(value);
    }
    let values: Vec<Value> = slots.into_iter().collect::<Option<_>>()?;
    values.try_into().ok()
}
