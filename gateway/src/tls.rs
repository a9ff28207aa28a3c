//! TLS for the listener (rustls, ring): the server configuration and the tenant a client
//! certificate names.
//!
//! Only TLS 1.3 and TLS 1.2 with forward-secret AEAD suites (ECDHE with AES-GCM or
//! ChaCha20-Poly1305) are offered; ALPN offers `h2` and `http/1.1`. With a client CA
//! (mTLS), a client certificate must chain to it; its subject common name is the tenant's
//! name. Certificates are read once at start. Nothing here logs key material or a
//! certificate's contents, and nothing here decides whether a request is authorised: it
//! only says which tenant, if any, the certificate names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsConfig};

/// Why TLS could not be set up. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds no certificate.
    #[error("{path}: no PEM certificate could be read ({reason})")]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("{path}: no PEM private key could be read ({reason})")]
    Key {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// rustls refused the certificates or key (e.g. the key does not match).
    #[error("TLS configuration refused: {0}")]
    Rejected(String),
}

/// What a client certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientIdentity {
    /// No certificate was presented.
    None,
    /// A certificate from the client CA naming this tenant (its subject common name).
    Tenant(String),
    /// A certificate from the client CA that names no tenant (no common name, or one that
    /// is not a tenant name): never accepted as a credential.
    Unusable,
}

/// The cipher suites offered: TLS 1.3's three, and TLS 1.2's ECDHE AEAD suites.
fn provider() -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    }
}

/// The server configuration for `config`: certificates and key read from their files.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider());
    let chain = certificates(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| TlsError::Key { path: config.key_file.clone(), reason: e.to_string() })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rejected)?;
    let builder = match &config.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => builder.with_client_cert_verifier(client_verifier(
            ca_file,
            config.client_auth,
            provider,
        )?),
    };
    let mut server = builder.with_single_cert(chain, key).map_err(rejected)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn rejected(error: rustls::Error) -> TlsError {
    TlsError::Rejected(error.to_string())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Certificates { path: path.to_owned(), reason };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if chain.is_empty() {
        return Err(failed("the file holds no CERTIFICATE block".into()));
    }
    Ok(chain)
}

fn client_verifier(
    ca_file: &Path,
    client_auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca_file)? {
        roots.add(certificate).map_err(rejected)?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match client_auth {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        ClientAuth::Required => builder,
    };
    builder.build().map_err(|e| TlsError::Rejected(e.to_string()))
}

/// The tenant the verified client certificate of `connection` names, if any. rustls has
/// already checked the chain against the client CA when this is called.
pub fn client_identity(connection: &ServerConnection) -> ClientIdentity {
    match connection.peer_certificates().and_then(|chain| chain.first()) {
        None => ClientIdentity::None,
        Some(leaf) => common_name(leaf.as_ref())
            .filter(|name| storage::tenants::valid_tenant_name(name))
            .map_or(ClientIdentity::Unusable, ClientIdentity::Tenant),
    }
}

/// The subject common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = certificate.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_for(common_name: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_common_name_is_read() {
        assert_eq!(common_name(&certificate_for("acme")).as_deref(), Some("acme"));
        assert_eq!(common_name(b"not a certificate"), None);
    }

    #[test]
    fn only_modern_suites_are_offered() {
        let suites = provider().cipher_suites;
        assert_eq!(suites.len(), 9);
        for suite in suites {
            let name = format!("{:?}", suite.suite());
            let tls13 = name.starts_with("TLS13_");
            assert!(tls13 || name.starts_with("TLS_ECDHE_"), "{name}");
            assert!(name.contains("GCM") || name.contains("CHACHA20_POLY1305"), "{name}");
        }
    }
}
