//! The gateway's own keys: the key-encryption key ring that seals tenants' signing
//! secrets and operators' TOTP secrets at rest, and the Ed25519 keys that sign operator
//! tokens. Both live in one JSON document kept in a secret (Secrets Manager in
//! production) or, on the embedded store by default, in `DATA_DIR/keys.json` (mode 0600,
//! generated at first use):
//!
//! ```json
//! {"kek":   {"id": "protea-kek", "current_version": 2,
//!            "versions": {"1": "<base64 of 32 bytes>", "2": "<base64 of 32 bytes>"}},
//!  "token": {"current": "tok-2", "keys": {"tok-1": "<base64 PKCS#8 Ed25519>", "tok-2": "..."}},
//!  "blind_index": {"id": "bi-1", "key": "<base64 of 32 bytes>"}}
//! ```
//!
//! `blind_index` keys the vault's look-up indexes (email, phone, identity number); it is
//! optional for a document written before the vault existed (the vault's indexed fields
//! are then refused), and a data-directory file without it gets one added at start. It
//! cannot rotate without re-indexing, so it has one key.
//!
//! Rotation: add a KEK version (or a token key) and make it current; keep the old one
//! until nothing sealed (or signed) under it remains. Every listed token key verifies;
//! only the current one signs. Gateways re-read the document every
//! `--keys-refresh-seconds`, so a rotation needs no restart: publish the new key first,
//! wait a refresh interval, then make it current. Nothing here logs or formats key
//! material.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crypto::blind_index::BlindIndexKey;
use crypto::envelope::{self, KeyRing};
use crypto::token::{TokenSigner, TokenVerifier};
use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use storage::secrets::{SecretSource, SecretValue, SecretsProvider};

use crate::config::KeysSource;

/// The keys file's name in the data directory (embedded store only).
pub const KEYS_FILE: &str = "keys.json";
/// The KEK id of a generated document.
const GENERATED_KEK_ID: &str = "protea-kek";
/// The token key id of a generated document.
const GENERATED_TOKEN_KID: &str = "tok-1";
/// The blind-index key id of a generated document.
const GENERATED_BLIND_INDEX_ID: &str = "bi-1";

/// Why the keys could not be loaded. Names the source and the field, never a value.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The secret or file could not be read.
    #[error("keys: {0}")]
    Read(String),
    /// The document is not the JSON described in `docs/configuration.md`.
    #[error("keys: the document is malformed: {0}")]
    Malformed(String),
    /// A key inside it is unusable; `field` names it.
    #[error("keys: {field}: {reason}")]
    Invalid {
        /// Which key (e.g. `kek.versions.2`, `token.keys.tok-1`).
        field: String,
        /// Why.
        reason: String,
    },
}

/// The loaded keys.
pub struct Keys {
    /// Seals and opens secrets at rest.
    pub kek: KeyRing,
    /// Signs operator tokens (the current token key).
    pub token_signer: TokenSigner,
    /// Verifies operator tokens (every listed token key).
    pub token_verifier: TokenVerifier,
    /// Keys the vault's blind indexes, when the document has one.
    pub blind_index: Option<BlindIndexKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("kek", &self.kek).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    kek: KekDocument,
    token: TokenDocument,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blind_index: Option<BlindIndexDocument>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlindIndexDocument {
    id: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KekDocument {
    id: String,
    current_version: u32,
    versions: BTreeMap<u32, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenDocument {
    current: String,
    keys: BTreeMap<String, String>,
}

/// Keys as loaded, with where they came from (to watch for rotation).
pub struct Loaded {
    /// The keys.
    pub keys: Keys,
    /// The source's provider.
    pub provider: SecretsProvider,
    /// The document as read.
    pub value: SecretValue,
}

/// Loads the keys from `source`; a missing data-directory file is generated first.
pub async fn load(source: &KeysSource) -> Result<Loaded, KeysError> {
    let secret = match source {
        KeysSource::Secret(secret) => secret.clone(),
        KeysSource::DataDirFile(path) => {
            ensure_file(path)?;
            SecretSource::File(path.clone())
        }
    };
    let read_error = |e: storage::secrets::SecretError| KeysError::Read(e.to_string());
    let provider = SecretsProvider::new(secret).await.map_err(read_error)?;
    let value = provider.read().await.map_err(read_error)?;
    Ok(Loaded { keys: parse(value.expose())?, provider, value })
}

/// Re-reads the keys every `interval` on the current runtime and hands each changed,
/// valid document to `on_change`; an invalid one is logged (by field, never by value)
/// and the keys in force stay.
pub fn watch(
    loaded_from: (SecretsProvider, SecretValue),
    interval: std::time::Duration,
    on_change: impl Fn(Keys) + Send + Sync + 'static,
) {
    let (provider, value) = loaded_from;
    storage::secrets::watch(provider, interval, value, move |value| match parse(value.expose()) {
        Ok(keys) => on_change(keys),
        Err(error) => {
            tracing::error!(%error, "the rotated keys document is unusable; the keys in force stay");
        }
    });
}

/// Parses a keys document.
pub fn parse(text: &str) -> Result<Keys, KeysError> {
    let document: Document =
        serde_json::from_str(text).map_err(|e| KeysError::Malformed(e.to_string()))?;
    Ok(Keys {
        kek: kek_ring(&document.kek)?,
        token_signer: signer(&document.token)?,
        token_verifier: verifier(&document.token)?,
        blind_index: document.blind_index.as_ref().map(blind_index_key).transpose()?,
    })
}

fn blind_index_key(document: &BlindIndexDocument) -> Result<BlindIndexKey, KeysError> {
    let invalid = |reason: String| KeysError::Invalid { field: "blind_index".into(), reason };
    let valid_id = (1..=64).contains(&document.id.len())
        && document.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid_id {
        return Err(invalid("the id must be 1-64 of A-Z a-z 0-9 _ . -".into()));
    }
    let key = envelope::key_from_base64(&document.key).map_err(|e| invalid(e.to_string()))?;
    Ok(BlindIndexKey::new(&document.id, &key))
}

fn generated_blind_index() -> Result<BlindIndexDocument, KeysError> {
    let (_, key) = KeyRing::generate(GENERATED_BLIND_INDEX_ID)
        .map_err(|e| KeysError::Read(format!("generating keys: {e}")))?;
    Ok(BlindIndexDocument {
        id: GENERATED_BLIND_INDEX_ID.into(),
        key: envelope::key_to_base64(&key),
    })
}

fn kek_ring(kek: &KekDocument) -> Result<KeyRing, KeysError> {
    let mut versions = Vec::with_capacity(kek.versions.len());
    for (version, text) in &kek.versions {
        let key = envelope::key_from_base64(text).map_err(|e| KeysError::Invalid {
            field: format!("kek.versions.{version}"),
            reason: e.to_string(),
        })?;
        versions.push((*version, key));
    }
    KeyRing::new(&kek.id, kek.current_version, versions)
        .map_err(|e| KeysError::Invalid { field: "kek".into(), reason: e.to_string() })
}

fn token_key(token: &TokenDocument, kid: &str) -> Result<TokenSigner, KeysError> {
    let invalid =
        |reason: String| KeysError::Invalid { field: format!("token.keys.{kid}"), reason };
    let text = token.keys.get(kid).ok_or_else(|| invalid("missing".into()))?;
    let der = BASE64.decode(text.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    TokenSigner::from_pkcs8(kid, &der).map_err(|e| invalid(e.to_string()))
}

fn signer(token: &TokenDocument) -> Result<TokenSigner, KeysError> {
    token_key(token, &token.current)
}

fn verifier(token: &TokenDocument) -> Result<TokenVerifier, KeysError> {
    let mut verifier = TokenVerifier::new();
    for kid in token.keys.keys() {
        let key = token_key(token, kid)?;
        verifier.insert(kid, key.public_key()).map_err(|e| KeysError::Invalid {
            field: format!("token.keys.{kid}"),
            reason: e.to_string(),
        })?;
    }
    Ok(verifier)
}

/// A new document: one KEK version and one token key, from the OS generator.
pub fn generate_document() -> Result<String, KeysError> {
    let failed = |e: &dyn std::fmt::Display| KeysError::Read(format!("generating keys: {e}"));
    let (_, kek) = KeyRing::generate(GENERATED_KEK_ID).map_err(|e| failed(&e))?;
    let pkcs8 = TokenSigner::generate_pkcs8().map_err(|e| failed(&e))?;
    let document = Document {
        kek: KekDocument {
            id: GENERATED_KEK_ID.into(),
            current_version: 1,
            versions: BTreeMap::from([(1, envelope::key_to_base64(&kek))]),
        },
        token: TokenDocument {
            current: GENERATED_TOKEN_KID.into(),
            keys: BTreeMap::from([(GENERATED_TOKEN_KID.into(), BASE64.encode(&pkcs8))]),
        },
        blind_index: Some(generated_blind_index()?),
    };
    serde_json::to_string_pretty(&document).map_err(|e| failed(&e))
}

/// Creates the data directory's keys file (mode 0600) when it is missing, never
/// overwriting one that exists (even when another process creates it at the same time);
/// adds a blind-index key to one written before the vault existed.
fn ensure_file(path: &Path) -> Result<(), KeysError> {
    let io_error = |e: std::io::Error| KeysError::Read(format!("{}: {e}", path.display()));
    if path.exists() {
        return add_blind_index_if_missing(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error)?;
    }
    let text = generate_document()?;
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(mut file) => {
            file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error)?;
            tracing::info!(path = %path.display(), "generated a new keys file");
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io_error(error)),
    }
}

/// Rewrites the data directory's keys file with a generated blind-index key when it has
/// none (a temporary file in the same directory, mode 0600, renamed over it).
fn add_blind_index_if_missing(path: &Path) -> Result<(), KeysError> {
    let io_error = |e: std::io::Error| KeysError::Read(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(io_error)?;
    let mut document: Document =
        serde_json::from_str(&text).map_err(|e| KeysError::Malformed(e.to_string()))?;
    if document.blind_index.is_some() {
        return Ok(());
    }
    document.blind_index = Some(generated_blind_index()?);
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| KeysError::Read(format!("writing keys: {e}")))?;
    let temporary = path.with_extension("json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)?;
    tracing::info!(path = %path.display(), "added a blind-index key to the keys file");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_file_without_a_blind_index_key_gets_one_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        let mut old: serde_json::Value =
            serde_json::from_str(&generate_document().unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("blind_index");
        std::fs::write(&path, old.to_string()).unwrap();
        assert!(parse(&old.to_string()).unwrap().blind_index.is_none());
        ensure_file(&path).unwrap();
        let new: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!((&new["kek"], &new["token"]), (&old["kek"], &old["token"]));
        assert!(parse(&new.to_string()).unwrap().blind_index.is_some());
    }

    #[test]
    fn a_generated_document_loads_and_seals() {
        let keys = parse(&generate_document().unwrap()).unwrap();
        let sealed = keys.kek.seal(b"secret", b"pk_1").unwrap();
        assert_eq!(keys.kek.open(&sealed, b"pk_1").unwrap(), b"secret");
        assert_eq!(keys.token_signer.kid(), GENERATED_TOKEN_KID);
        assert!(!format!("{keys:?}").contains(&envelope::key_to_base64(&[0; 32])));
    }

    #[test]
    fn bad_documents_name_the_field() {
        let good: serde_json::Value = serde_json::from_str(&generate_document().unwrap()).unwrap();
        let mut wrong_version = good.clone();
        wrong_version["kek"]["current_version"] = 7.into();
        let mut short_key = good.clone();
        short_key["kek"]["versions"]["1"] = "AAAA".into();
        let mut missing_token = good.clone();
        missing_token["token"]["current"] = "tok-9".into();
        let cases = [
            (wrong_version, "kek"),
            (short_key, "kek.versions.1"),
            (missing_token, "token.keys.tok-9"),
        ];
        for (document, field) in cases {
            match parse(&document.to_string()) {
                Err(KeysError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(parse("{}"), Err(KeysError::Malformed(_))));
    }

    #[test]
    fn the_data_dir_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        ensure_file(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        ensure_file(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first, "never overwritten");
        assert!(parse(&first).is_ok());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
