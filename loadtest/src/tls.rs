//! TLS for `https://` targets: one rustls client configuration per run (ring provider,
//! TLS 1.2 and 1.3, session resumption on), built from the PEM files the flags name, and
//! the handshake of the load's own connections (tokio-rustls).
//!
//! Trust: the webpki roots (Mozilla's, compiled in) unless `--ca-file` names a PEM
//! bundle, which then *replaces* them: a deployment behind a private CA is trusted
//! through exactly that CA, and a public-CA deployment needs no flag. `--client-cert`
//! and `--client-key` give the client identity for gateways that require mTLS. ALPN
//! offers one protocol, the one the run speaks: `h2` with `--http2`, else `http/1.1`;
//! a server that answers with another is refused.
//!
//! This module reads only the files the flags name, and every error names its flag. It
//! must never turn certificate verification off or fall back to plain HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The PEM files named by the TLS flags (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--ca-file`: the CA certificates to trust instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// `--client-cert` and `--client-key`: the client's certificate chain and its key.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// A TLS flag's file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --{flag}: {reason}")]
pub struct TlsError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// What is wrong, naming the file.
    pub reason: String,
}

fn refused(flag: &'static str, reason: String) -> TlsError {
    TlsError { flag, reason }
}

/// How the connections of one `https://` target handshake, shared read-only by all.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    alpn: &'static [u8],
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .field("alpn", &String::from_utf8_lossy(self.alpn))
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS to `host` (the target URL's host; an IPv6 address may keep its brackets),
    /// trusting and presenting what `files` name, offering `h2` if `http2`, else
    /// `http/1.1`.
    pub fn new(files: &TlsFiles, host: &str, http2: bool) -> Result<Tls, TlsError> {
        let alpn = if http2 { ALPN_H2 } else { ALPN_HTTP1 };
        let mut config = client_config(files)?;
        config.alpn_protocols = vec![alpn.to_vec()];
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| refused("target", format!("{host} is not a TLS server name: {e}")))?;
        let config = Arc::new(config);
        let connector = TlsConnector::from(config.clone());
        Ok(Tls { config, connector, server_name, alpn })
    }

    /// The client configuration (with its ALPN protocol), for the pooled client.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The ALPN protocol the connections speak.
    pub fn alpn(&self) -> &'static [u8] {
        self.alpn
    }

    /// Handshakes over `tcp` and checks the server agreed to [`Tls::alpn`] (a server
    /// that ignores ALPN is taken to speak HTTP/1.1, so it is refused only for `h2`).
    pub async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let stream = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let agreed = stream.get_ref().1.alpn_protocol();
        match agreed {
            Some(protocol) if protocol == self.alpn => Ok(stream),
            None if self.alpn == ALPN_HTTP1 => Ok(stream),
            other => Err(format!(
                "the server did not agree to {} by ALPN (it chose {})",
                String::from_utf8_lossy(self.alpn),
                other.map_or("nothing".into(), String::from_utf8_lossy)
            )),
        }
    }
}

/// The client configuration `files` describe, without ALPN.
pub fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let builder = builder().with_root_certificates(roots(files.ca_file.as_deref())?);
    let Some((cert, key)) = &files.client_identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = certificates(cert, "client-cert")?;
    let key = private_key(key)?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| refused("client-key", format!("{}: {e}", key_path(files))))
}

fn key_path(files: &TlsFiles) -> String {
    files.client_identity.as_ref().map_or_else(String::new, |(_, key)| key.display().to_string())
}

/// A configuration that trusts nothing, for the pooled client's connector of a plain
/// `http://` target: it never handshakes there, as every URI it gets is `http`.
pub fn plain_target_config() -> ClientConfig {
    builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth()
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports TLS 1.2 and 1.3")
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()));
    };
    let mut store = RootCertStore::empty();
    for certificate in certificates(path, "ca-file")? {
        store
            .add(certificate)
            .map_err(|e| refused("ca-file", format!("{}: {e}", path.display())))?;
    }
    Ok(store)
}

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| refused(flag, format!("cannot read {}: {e}", path.display())))
}

/// Every `CERTIFICATE` section of the PEM file at `path`: at least one.
fn certificates(path: &Path, flag: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, flag)?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| refused(flag, format!("{}: not PEM: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(refused(flag, format!("{}: no CERTIFICATE in it", path.display())));
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "client-key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound => "no PRIVATE KEY in it".to_owned(),
            other => format!("not PEM: {other}"),
        };
        refused("client-key", format!("{}: {reason}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_their_flag() {
        let missing =
            TlsFiles { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsFiles::default() };
        let error = client_config(&missing).unwrap_err();
        assert_eq!(error.flag, "ca-file");
        assert!(
            error.to_string().starts_with("invalid --ca-file: cannot read /nonexistent/ca.pem")
        );
        let dir = std::env::temp_dir().join(format!("loadtest-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let files = TlsFiles { ca_file: Some(empty.clone()), ..TlsFiles::default() };
        assert!(client_config(&files).unwrap_err().reason.ends_with("no CERTIFICATE in it"));
        let files = TlsFiles { ca_file: None, client_identity: Some((empty.clone(), empty)) };
        assert_eq!(client_config(&files).unwrap_err().flag, "client-cert");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn alpn_offers_the_protocol_of_the_run() {
        let tls = Tls::new(&TlsFiles::default(), "[::1]", true).unwrap();
        assert_eq!(tls.config().alpn_protocols, vec![b"h2".to_vec()]);
        let tls = Tls::new(&TlsFiles::default(), "example.com", false).unwrap();
        assert_eq!(tls.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
