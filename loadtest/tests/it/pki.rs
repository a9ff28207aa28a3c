//! Certificates made at test time with rcgen (ring): a CA, a server certificate for
//! 127.0.0.1 and localhost, and a client certificate, both signed by the CA. The CA and
//! the client's certificate and key are written as PEM files for the tester's flags; the
//! server's become a rustls configuration for the fake.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// Whether the fake requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    Off,
    /// A client certificate signed by the CA is required (mTLS).
    Required,
}

/// A CA and the certificates it signed.
pub struct Pki {
    /// Holds the PEM files.
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM), for `--ca-file`.
    pub ca_file: PathBuf,
    /// The client certificate (PEM), for `--client-cert`.
    pub client_cert: PathBuf,
    /// The client key (PEM, PKCS#8), for `--client-key`.
    pub client_key: PathBuf,
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

/// Generates a CA, a server and a client certificate and writes the PEM files.
pub fn generate() -> Pki {
    let ca = ca();
    let (server, server_key) = leaf(&ca, ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("writing a PEM file");
        path
    };
    let ca_file = write("ca.pem", ca.pem());
    let client_cert = write("client.pem", client.pem());
    let client_key = write("client.key", client_key.serialize_pem());
    Pki {
        ca_file,
        client_cert,
        client_key,
        ca: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: server_key.serialize_der(),
        _dir: dir,
    }
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, "loadtest test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("a CA key");
    CertifiedIssuer::self_signed(params, key).expect("a self-signed CA")
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let mut params = CertificateParams::new(names).expect("leaf parameters");
    params.distinguished_name.push(DnType::CommonName, "loadtest test peer");
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a leaf key");
    let certificate = params.signed_by(&key, &**ca).expect("signed by the CA");
    (certificate, key)
}

impl Pki {
    /// The fake's TLS configuration: ring, ALPN `h2` and `http/1.1`, and `client_auth`.
    pub fn server(&self, client_auth: ClientAuth) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3");
        let builder = match client_auth {
            ClientAuth::Off => builder.with_no_client_auth(),
            ClientAuth::Required => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(self.ca.clone()).expect("the CA is a trust anchor");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config =
            builder.with_single_cert(self.server_chain.clone(), key).expect("the server's key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
