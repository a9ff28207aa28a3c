//! Tenant authentication: signed requests (`Protea-HMAC-SHA256`), client certificates
//! (mTLS) and, where a flag allows them, `Bearer KEYID.SECRET` keys, against an in-memory
//! directory of keys and tenant names.
//!
//! The directory is swapped whole when keys change (arc-swap), so a lookup takes no lock.
//! Each key's signing secret is opened (unsealed with the key-encryption key) once, when
//! the directory is built, and stays in memory only as an HMAC key. Authentication has two
//! steps because a signature covers the body: [`Credentials::claim`] reads the headers
//! and the connection (an unknown key id or a missing credential fails before the body is
//! read), and [`Claim::verify`] checks the signature, the replay window and the nonce once
//! the body is in. When a request carries both a certificate and a signature, both must
//! name the same tenant. A failure's reason ([`AuthFailure::code`]) goes to metrics and
//! logs; the client always gets the same 401. Nothing here logs a credential.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crypto::envelope::KeyRing;
use crypto::signature::{self, ActiveKeys, RequestParts, SignatureError, SignedHeader, SigningKey};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use storage::ledger::TenantId;
use storage::tenants::{ApiKeyRecord, Tenant};

use crate::replay::{ReplayCache, ReplayError};
use crate::tls::ClientIdentity;

/// Why a tenant was not authenticated. For logs and metrics only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header and no client certificate.
    #[error("no credentials")]
    Missing,
    /// The header is not a scheme we accept, or breaks its format.
    #[error("malformed credentials")]
    Malformed,
    /// The key id is not an active key.
    #[error("unknown key id")]
    UnknownKey,
    /// A Bearer key, and bearer keys are not allowed.
    #[error("bearer keys are not allowed")]
    BearerNotAllowed,
    /// A Bearer key whose secret does not match.
    #[error("wrong secret")]
    WrongSecret,
    /// The key has no signing secret (made before signing existed, or unsealable).
    #[error("the key cannot verify signatures")]
    NotSigningKey,
    /// The signature failed.
    #[error("signature refused: {0}")]
    Signature(SignatureError),
    /// The nonce was used before within the window.
    #[error("replayed request")]
    Replayed,
    /// The client certificate names no tenant.
    #[error("the client certificate names no tenant")]
    CertificateUnusable,
    /// The client certificate names a tenant that does not exist.
    #[error("the client certificate names an unknown tenant")]
    CertificateUnknownTenant,
    /// The certificate and the key name different tenants.
    #[error("the client certificate and the key belong to different tenants")]
    CertificateMismatch,
}

impl AuthFailure {
    /// A fixed snake_case label.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BearerNotAllowed => "bearer_not_allowed",
            Self::WrongSecret => "wrong_secret",
            Self::NotSigningKey => "not_signing_key",
            Self::Signature(error) => error.code(),
            Self::Replayed => "replayed",
            Self::CertificateUnusable => "certificate_unusable",
            Self::CertificateUnknownTenant => "certificate_unknown_tenant",
            Self::CertificateMismatch => "certificate_mismatch",
        }
    }
}

/// Why authentication did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The credentials were refused (401).
    Refused(AuthFailure),
    /// The replay cache is full (503): the request may be retried.
    ReplayCacheFull,
}

impl From<AuthFailure> for AuthError {
    fn from(failure: AuthFailure) -> Self {
        Self::Refused(failure)
    }
}

/// One active key, as the directory holds it (opaque outside this module).
pub struct KeyEntry {
    tenant: TenantId,
    digest: [u8; 32],
    signing: Option<ActiveKeys>,
}

#[derive(Default)]
struct Directory {
    keys: HashMap<String, Arc<KeyEntry>>,
    tenants: HashMap<String, TenantId>,
}

/// The active keys and tenant names, for authentication.
pub struct Credentials {
    directory: ArcSwap<Directory>,
}

/// What the signing secret of `key_id` is sealed with as associated data, so a sealed
/// secret cannot be moved to another key's record.
pub fn secret_aad(key_id: &str) -> Vec<u8> {
    [b"protea:api-key:".as_slice(), key_id.as_bytes()].concat()
}

impl Credentials {
    /// An empty directory (every tenant request is refused until [`Credentials::replace`]).
    pub fn empty() -> Self {
        Self { directory: ArcSwap::from_pointee(Directory::default()) }
    }

    /// Replaces every key and tenant at once, opening each signing secret with `kek`. A
    /// secret that does not open leaves its key unable to verify signatures (logged by
    /// key id and reason).
    pub fn replace(&self, keys: Vec<ApiKeyRecord>, tenants: Vec<Tenant>, kek: &KeyRing) {
        let keys =
            keys.into_iter().map(|record| (record.key_id.clone(), Arc::new(entry(record, kek))));
        let tenants = tenants.into_iter().map(|tenant| (tenant.name, tenant.id));
        self.directory
            .store(Arc::new(Directory { keys: keys.collect(), tenants: tenants.collect() }));
    }

    /// The tenant named `name`, if it exists.
    pub fn tenant_id(&self, name: &str) -> Option<TenantId> {
        self.directory.load().tenants.get(name).copied()
    }

    /// Reads the credentials of a request from its headers and connection. A Bearer key
    /// or a certificate alone is checked here; a signature is checked by
    /// [`Claim::verify`] once the body has been read.
    pub fn claim(
        &self,
        headers: &HeaderMap,
        identity: &ClientIdentity,
        allow_bearer: bool,
    ) -> Result<Claim, AuthFailure> {
        let directory = self.directory.load();
        let certified = certificate_tenant(&directory, identity)?;
        let Some(value) = headers.get(AUTHORIZATION) else {
            return certified.map(Claim::Verified).ok_or(AuthFailure::Missing);
        };
        let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
        let claim = if value.starts_with(signature::SCHEME) {
            signed_claim(&directory, value)?
        } else if let Some(credential) = value.strip_prefix("Bearer ") {
            if !allow_bearer {
                return Err(AuthFailure::BearerNotAllowed);
            }
            Claim::Verified(bearer_tenant(&directory, credential)?)
        } else {
            return Err(AuthFailure::Malformed);
        };
        match certified {
            Some(tenant) if tenant != claim.tenant() => Err(AuthFailure::CertificateMismatch),
            _ => Ok(claim),
        }
    }
}

fn entry(record: ApiKeyRecord, kek: &KeyRing) -> KeyEntry {
    let signing = if record.sealed_secret.is_empty() {
        None
    } else {
        match open_signing_key(&record, kek) {
            Ok(key) => Some(ActiveKeys::single(key)),
            Err(reason) => {
                tracing::warn!(
                    key_id = record.key_id,
                    reason,
                    "a key's signing secret does not open"
                );
                None
            }
        }
    };
    KeyEntry { tenant: record.tenant, digest: record.secret_digest, signing }
}

fn open_signing_key(record: &ApiKeyRecord, kek: &KeyRing) -> Result<SigningKey, &'static str> {
    let secret =
        kek.open(&record.sealed_secret, &secret_aad(&record.key_id)).map_err(|e| e.code())?;
    SigningKey::new(&secret).map_err(|_| "secret_too_short")
}

fn certificate_tenant(
    directory: &Directory,
    identity: &ClientIdentity,
) -> Result<Option<TenantId>, AuthFailure> {
    match identity {
        ClientIdentity::None => Ok(None),
        ClientIdentity::Unusable => Err(AuthFailure::CertificateUnusable),
        ClientIdentity::Tenant(name) => directory
            .tenants
            .get(name)
            .copied()
            .map(Some)
            .ok_or(AuthFailure::CertificateUnknownTenant),
    }
}

fn bearer_tenant(directory: &Directory, credential: &str) -> Result<TenantId, AuthFailure> {
    let (key_id, secret) =
        crypto::api_key::split_credential(credential).ok_or(AuthFailure::Malformed)?;
    let entry = directory.keys.get(key_id).ok_or(AuthFailure::UnknownKey)?;
    if crypto::api_key::verify(secret, &entry.digest) {
        Ok(entry.tenant)
    } else {
        Err(AuthFailure::WrongSecret)
    }
}

fn signed_claim(directory: &Directory, value: &str) -> Result<Claim, AuthFailure> {
    let header = signature::parse_authorization(value).map_err(AuthFailure::Signature)?;
    let entry = directory.keys.get(&header.key_id).ok_or(AuthFailure::UnknownKey)?;
    if entry.signing.is_none() {
        return Err(AuthFailure::NotSigningKey);
    }
    Ok(Claim::Signed { entry: entry.clone(), header })
}

/// What a signature covers, as the request arrived: the body in full (its digest is
/// computed only for a signed request, so a bearer key or a certificate costs no hash).
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// The method (`POST`).
    pub method: &'a str,
    /// The path as sent.
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// Credentials read from the headers: either already verified, or a signature to check
/// against the body.
pub enum Claim {
    /// A Bearer key or a client certificate, checked.
    Verified(TenantId),
    /// A signed request, not yet verified.
    Signed {
        /// The key it claims.
        entry: Arc<KeyEntry>,
        /// The parsed header.
        header: SignedHeader,
    },
}

impl Claim {
    fn tenant(&self) -> TenantId {
        match self {
            Self::Verified(tenant) => *tenant,
            Self::Signed { entry, .. } => entry.tenant,
        }
    }

    /// Finishes authentication: a signature is checked against `request`, the window
    /// around `now_unix`, and the nonce against `replay`. Returns the tenant.
    pub fn verify(
        self,
        request: &Received<'_>,
        now_unix: u64,
        window_seconds: u64,
        replay: &ReplayCache,
    ) -> Result<TenantId, AuthError> {
        let (entry, header) = match self {
            Self::Verified(tenant) => return Ok(tenant),
            Self::Signed { entry, header } => (entry, header),
        };
        let keys = entry.signing.as_ref().ok_or(AuthFailure::NotSigningKey)?;
        let digest = signature::body_digest(request.body);
        let parts = RequestParts {
            method: request.method,
            path: request.path,
            query: request.query,
            body_sha256: &digest,
        };
        signature::verify(keys, &header, &parts, now_unix, window_seconds)
            .map_err(AuthFailure::Signature)?;
        let expires_at = header.timestamp.saturating_add(window_seconds);
        match replay.check(&header.key_id, &header.nonce, expires_at, now_unix) {
            Ok(()) => Ok(entry.tenant),
            Err(ReplayError::Replayed) => Err(AuthFailure::Replayed.into()),
            Err(ReplayError::Full) => Err(AuthError::ReplayCacheFull),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use signature::{Scope, body_digest, sign_request};

    const NOW: u64 = 1_700_000_000;
    const WINDOW: u64 = 300;

    struct Fixture {
        credentials: Credentials,
        key_id: String,
        secret: String,
        replay: ReplayCache,
    }

    /// A directory with tenant 7 (`acme`, one signing key) and tenant 8 (`other`).
    fn fixture() -> Fixture {
        let (kek, _) = KeyRing::generate("test-kek").unwrap();
        let key = crypto::api_key::generate().unwrap();
        let sealed = kek.seal(key.secret.as_bytes(), &secret_aad(&key.key_id)).unwrap();
        let record = ApiKeyRecord {
            key_id: key.key_id.clone(),
            tenant: 7,
            secret_digest: key.digest,
            sealed_secret: sealed,
        };
        let tenants =
            vec![Tenant { id: 7, name: "acme".into() }, Tenant { id: 8, name: "other".into() }];
        let credentials = Credentials::empty();
        credentials.replace(vec![record], tenants, &kek);
        Fixture {
            credentials,
            key_id: key.key_id,
            secret: key.secret,
            replay: ReplayCache::new(1024),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn signed(fixture: &Fixture, nonce: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let digest = body_digest(body);
        let parts =
            RequestParts { method: "POST", path: "/v1/transfers", query: "", body_sha256: &digest };
        let key = SigningKey::new(fixture.secret.as_bytes()).unwrap();
        let scope = Scope { key_id: &fixture.key_id, timestamp, nonce };
        let header = sign_request(&key, &scope, &parts).unwrap();
        headers(&header.header_value())
    }

    fn verify_signed(
        fixture: &Fixture,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<TenantId, AuthError> {
        let received = Received { method: "POST", path: "/v1/transfers", query: "", body };
        let claim = fixture.credentials.claim(headers, &ClientIdentity::None, false)?;
        claim.verify(&received, NOW, WINDOW, &fixture.replay)
    }

    #[test]
    fn a_signed_request_names_its_tenant_once() {
        let fixture = fixture();
        let headers = signed(&fixture, "nonce-000000000001", NOW, b"{}");
        assert_eq!(verify_signed(&fixture, &headers, b"{}"), Ok(7));
        let replayed = verify_signed(&fixture, &headers, b"{}");
        assert_eq!(replayed, Err(AuthError::Refused(AuthFailure::Replayed)));
        let again = signed(&fixture, "nonce-000000000002", NOW, b"{}");
        assert_eq!(verify_signed(&fixture, &again, b"{}"), Ok(7));
    }

    #[test]
    fn tampered_stale_or_unknown_signatures_are_refused() {
        let fixture = fixture();
        let headers = signed(&fixture, "nonce-000000000003", NOW, b"{}");
        let tampered = verify_signed(&fixture, &headers, b"{\"amount\":1}");
        assert_eq!(
            tampered,
            Err(AuthError::Refused(AuthFailure::Signature(SignatureError::BadSignature)))
        );
        let stale = signed(&fixture, "nonce-000000000004", NOW - WINDOW - 1, b"{}");
        let expired = verify_signed(&fixture, &stale, b"{}");
        assert_eq!(
            expired,
            Err(AuthError::Refused(AuthFailure::Signature(SignatureError::Expired)))
        );
        let unknown = headers_with_key(&headers, &fixture.key_id, "pk_ffffffffffffffff");
        assert_eq!(
            fixture.credentials.claim(&unknown, &ClientIdentity::None, false).err(),
            Some(AuthFailure::UnknownKey)
        );
    }

    fn headers_with_key(headers: &HeaderMap, from: &str, to: &str) -> HeaderMap {
        let value = headers[AUTHORIZATION].to_str().unwrap().replace(from, to);
        self::headers(&value)
    }

    #[test]
    fn bearer_keys_only_where_allowed() {
        let fixture = fixture();
        let bearer = headers(&format!("Bearer {}.{}", fixture.key_id, fixture.secret));
        let refused = fixture.credentials.claim(&bearer, &ClientIdentity::None, false);
        assert_eq!(refused.err(), Some(AuthFailure::BearerNotAllowed));
        let allowed = fixture.credentials.claim(&bearer, &ClientIdentity::None, true).unwrap();
        assert_eq!(allowed.tenant(), 7);
        let wrong = headers(&format!("Bearer {}.{}", fixture.key_id, "ab".repeat(32)));
        let refused = fixture.credentials.claim(&wrong, &ClientIdentity::None, true);
        assert_eq!(refused.err(), Some(AuthFailure::WrongSecret));
    }

    #[test]
    fn certificates_identify_and_must_agree_with_keys() {
        let fixture = fixture();
        let acme = ClientIdentity::Tenant("acme".into());
        let other = ClientIdentity::Tenant("other".into());
        let none = HeaderMap::new();
        assert_eq!(fixture.credentials.claim(&none, &acme, false).unwrap().tenant(), 7);
        assert_eq!(fixture.credentials.claim(&none, &other, false).unwrap().tenant(), 8);
        let headers = signed(&fixture, "nonce-000000000005", NOW, b"{}");
        assert_eq!(fixture.credentials.claim(&headers, &acme, false).unwrap().tenant(), 7);
        let mismatch = fixture.credentials.claim(&headers, &other, false);
        assert_eq!(mismatch.err(), Some(AuthFailure::CertificateMismatch));
        let unknown = ClientIdentity::Tenant("nobody".into());
        let refused = fixture.credentials.claim(&none, &unknown, false);
        assert_eq!(refused.err(), Some(AuthFailure::CertificateUnknownTenant));
        let unusable = fixture.credentials.claim(&none, &ClientIdentity::Unusable, false);
        assert_eq!(unusable.err(), Some(AuthFailure::CertificateUnusable));
        assert_eq!(
            fixture.credentials.claim(&none, &ClientIdentity::None, false).err(),
            Some(AuthFailure::Missing)
        );
    }
}
