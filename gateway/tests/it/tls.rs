//! TLS and mTLS end to end through the real binary, with a CA, a server certificate for
//! `localhost`/127.0.0.1 and client certificates made at test time (rcgen), and a rustls
//! client speaking HTTP/1.1 or HTTP/2 (hyper's connection API) over the TLS stream:
//! ALPN, protocol versions and cipher suites (hand-written ClientHellos for what rustls
//! will not offer), HSTS, a client certificate as a tenant's identity, handshake
//! failures, plain HTTP on the TLS port and the handshake timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::Full;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::{self, Gateway, Reply, uuid};

/// How long a connection, handshake or read may take here.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a gateway may take to answer `/readyz` over TLS once it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// HSTS as the gateway sends it over TLS.
const HSTS: &str = "max-age=63072000; includeSubDomains";
/// The TLS 1.3 suites the gateway offers.
const TLS13_SUITES: [&str; 3] =
    ["TLS13_AES_256_GCM_SHA384", "TLS13_AES_128_GCM_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"];
/// The TLS 1.2 suites the gateway offers with an ECDSA certificate.
const TLS12_ECDSA_SUITES: [&str; 3] = [
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A certificate and its private key, as a client presents them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A certificate authority made at test time.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        Self { issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate") }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The server's certificate for `localhost` and 127.0.0.1, and its key, in PEM.
    fn server_pem(&self) -> (String, String) {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(names).expect("server parameters");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("a server certificate");
        (certificate.pem(), key.serialize_pem())
    }

    /// A client certificate whose subject is `subject` (common name, or none).
    fn client(&self, common_name: Option<&str>) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "Protea tests");
        if let Some(name) = common_name {
            params.distinguished_name.push(DnType::CommonName, name);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("a client key");
        let certificate = params.signed_by(&key, &self.issuer).expect("a client certificate");
        Identity {
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The gateway and a TLS client
// ---------------------------------------------------------------------------------------

/// The ALPN protocols a client offers.
type Protocols<'a> = &'a [&'a [u8]];

/// How the gateway asks for client certificates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    /// No client CA: no client certificates.
    Off,
    /// `--tls-client-auth optional`.
    Optional,
    /// `--tls-client-auth required`.
    Required,
}

/// A TLS gateway with tenants. Field order matters: the gateway stops before its
/// directory is removed.
struct Served {
    ca: Authority,
    /// `Bearer KEYID.SECRET`, per tenant in the order asked for.
    auth: Vec<String>,
    gateway: Gateway,
    _dir: TempDir,
}

/// Starts a TLS gateway with a fresh CA, `tenants` and `extra` flags; waits until it
/// answers `/readyz` over TLS.
async fn serve(tenants: &[&str], client_auth: ClientAuth, extra: &[&str]) -> Served {
    let dir = support::data_dir();
    let ca = Authority::new("Protea test CA");
    let (certificate, key) = ca.server_pem();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path.to_str().expect("a UTF-8 path").to_owned()
    };
    let (cert_file, key_file) = (file("server.pem", &certificate), file("server.key", &key));
    let ca_file = file("client-ca.pem", &ca.issuer.pem());
    let auth = tenants.iter().map(|name| support::create_tenant(dir.path(), name)).collect();
    let mut flags: Vec<&str> = vec!["--tls-cert-file", &cert_file, "--tls-key-file", &key_file];
    match client_auth {
        ClientAuth::Off => {}
        ClientAuth::Optional => {
            flags.extend(["--tls-client-ca-file", &ca_file, "--tls-client-auth", "optional"]);
        }
        ClientAuth::Required => {
            flags.extend(["--tls-client-ca-file", &ca_file, "--tls-client-auth", "required"]);
        }
    }
    flags.extend_from_slice(extra);
    let gateway = Gateway::start(dir.path(), &flags);
    let served = Served { ca, auth, gateway, _dir: dir };
    let identity = (client_auth == ClientAuth::Required).then(|| served.ca.client(Some("probe")));
    served.wait_ready(&client(&served.ca, identity, &[b"http/1.1"], ALL_VERSIONS)).await;
    served
}

const ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

impl Served {
    fn addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// Polls `/readyz` over TLS until it answers 200; panics after 20 s.
    async fn wait_ready(&self, config: &Arc<ClientConfig>) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match call(self.addr(), config, Method::GET, "/readyz", None, Vec::new()).await {
                Ok(reply) if reply.status == StatusCode::OK => return,
                Ok(reply) => last = format!("status {}", reply.status),
                Err(error) => last = error,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("https://{}/readyz did not answer 200 within 20 s; last: {last}", self.addr());
    }
}

/// A rustls client trusting `ca`, presenting `identity` if any, offering `alpn` and
/// `versions` (ring, like the gateway).
fn client(
    ca: &Authority,
    identity: Option<Identity>,
    alpn: Protocols,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).expect("the CA as a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain, identity.key).expect("a client identity")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// Connects and completes a TLS handshake with `localhost` at `addr`.
async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connecting: {e}"))?;
    let name = ServerName::try_from("localhost").expect("a server name");
    let handshake = TlsConnector::from(config.clone()).connect(name, tcp);
    tokio::time::timeout(TIMEOUT, handshake)
        .await
        .map_err(|_| "the TLS handshake: nothing within 10 s".to_owned())?
        .map_err(|e| format!("the TLS handshake: {e}"))
}

/// Sends one request over a new TLS connection: HTTP/2 when ALPN chose `h2`, else
/// HTTP/1.1. A tenant credential (`Bearer KEYID.SECRET`) in `sign_as` signs it;
/// `Err` says where it failed.
async fn call(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: Method,
    target: &str,
    sign_as: Option<&str>,
    body: Vec<u8>,
) -> Result<Reply, String> {
    let tls = connect(addr, config).await?;
    let version = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    support::exchange(tls, version, request(version, method, target, sign_as, body)).await
}

fn request(
    version: Version,
    method: Method,
    target: &str,
    sign_as: Option<&str>,
    body: Vec<u8>,
) -> Request<Full<Bytes>> {
    let uri = if version == Version::HTTP_2 {
        format!("https://localhost{target}")
    } else {
        target.to_owned()
    };
    let mut builder = Request::builder().method(method.clone()).uri(uri).version(version);
    if version == Version::HTTP_11 {
        builder = builder.header("host", "localhost");
    }
    if let Some(credential) = sign_as {
        let signed = support::sign(credential, &method, target, &body).expect("a tenant key");
        builder = builder.header("authorization", signed);
    }
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Full::new(Bytes::from(body))).expect("a request")
}

/// [`call`], panicking when no response arrives.
async fn must_call(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: Method,
    target: &str,
    sign_as: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let described = format!("{method} {target}");
    call(addr, config, method, target, sign_as, body)
        .await
        .unwrap_or_else(|error| panic!("{described} over TLS: {error}"))
}

fn account(id: u128) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": uuid(id), "ledger": 840, "code": 1})).expect("json")
}

/// Asserts that the gateway refuses a TLS connection with `config` with the alert
/// `alert` (its rustls name, e.g. `UnknownCA`). In TLS 1.2 the refusal ends the
/// handshake; in TLS 1.3 the server judges the client's certificate after the client has
/// finished, so its verdict is the first record the client reads.
async fn assert_refused(addr: SocketAddr, config: &Arc<ClientConfig>, alert: &str, context: &str) {
    let error = match connect(addr, config).await {
        Err(error) => error,
        Ok(mut tls) => {
            // The write may already meet a closed connection; the alert is still in the
            // socket's buffer for the read.
            let _ = tls.write_all(b"GET /livez HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(TIMEOUT, tls.read(&mut buf)).await {
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(0)) => panic!("{context}: closed without an alert"),
                Ok(Ok(n)) => {
                    panic!("{context}: answered {:?}", String::from_utf8_lossy(&buf[..n]))
                }
                Err(_) => panic!("{context}: no verdict within 10 s"),
            }
        }
    };
    assert!(error.contains(alert), "{context}: refused, but not with {alert}: {error}");
}

fn body_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

/// ALPN `h2` and `http/1.1` each negotiate and serve a signed request over TLS (1.3 by
/// default, with one of the offered suites); a client without ALPN gets HTTP/1.1; every
/// answer carries HSTS and the other security headers.
#[tokio::test]
async fn alpn_h2_and_http1_serve_signed_requests_with_hsts() {
    let served = serve(&["acme"], ClientAuth::Off, &[]).await;
    let acme = served.auth[0].as_str();
    let cases: [(Protocols, Option<&[u8]>, Version); 3] = [
        (&[b"h2"], Some(b"h2"), Version::HTTP_2),
        (&[b"http/1.1"], Some(b"http/1.1"), Version::HTTP_11),
        (&[], None, Version::HTTP_11),
    ];
    for (id, (offered, negotiated, version)) in (1u128..).zip(cases) {
        let config = client(&served.ca, None, offered, ALL_VERSIONS);
        let tls = connect(served.addr(), &config).await.expect("a TLS connection");
        let (_, connection) = tls.get_ref();
        assert_eq!(connection.alpn_protocol(), negotiated, "ALPN offering {offered:?}");
        assert_eq!(connection.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        let suite = connection.negotiated_cipher_suite().expect("a suite").suite();
        assert!(TLS13_SUITES.contains(&format!("{suite:?}").as_str()), "{suite:?}");
        let post = request(version, Method::POST, "/v1/accounts", Some(acme), account(id));
        let reply = support::exchange(tls, version, post).await.expect("an answer");
        assert_eq!(reply.version, version, "ALPN {offered:?}");
        assert_eq!(reply.status, StatusCode::CREATED, "{}", body_text(&reply));
        assert_eq!(reply.header("strict-transport-security"), Some(HSTS), "HSTS over TLS");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let read = format!("/v1/accounts/{}", uuid(id));
        let reply = must_call(served.addr(), &config, Method::GET, &read, Some(acme), vec![]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", body_text(&reply));
        let unauthenticated =
            must_call(served.addr(), &config, Method::GET, &read, None, vec![]).await;
        assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            unauthenticated.header("strict-transport-security"),
            Some(HSTS),
            "HSTS on a 401"
        );
    }
}

/// Only TLS 1.3 and 1.2 with forward-secret AEAD suites: a rustls client offering both
/// gets TLS 1.3 and, restricted to 1.2, an ECDHE GCM or ChaCha20 suite. rustls cannot
/// offer CBC, RC4, 3DES, static-RSA or finite-field DHE suites, nor TLS 1.0/1.1, so
/// hand-written ClientHellos do: each such suite alone gets a `handshake_failure` alert,
/// a list of them all plus one ECDHE-GCM suite gets a ServerHello choosing that one, and
/// TLS 1.0 or 1.1 gets a `protocol_version` alert. (The test certificate is ECDSA, so
/// the RSA-authenticated suites would be refused for the certificate too; the
/// ECDHE-ECDSA CBC suites are the ones only the suite configuration refuses.)
#[tokio::test]
async fn only_modern_versions_and_forward_secret_aead_suites_are_negotiated() {
    let served = serve(&[], ClientAuth::Off, &[]).await;
    let both = client(&served.ca, None, &[b"http/1.1"], ALL_VERSIONS);
    let tls = connect(served.addr(), &both).await.expect("a TLS connection");
    let version = tls.get_ref().1.protocol_version();
    assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_3), "TLS 1.3 is preferred");
    drop(tls);
    let tls12 = client(&served.ca, None, &[b"http/1.1"], &[&rustls::version::TLS12]);
    let tls = connect(served.addr(), &tls12).await.expect("a TLS 1.2 connection");
    let (_, connection) = tls.get_ref();
    assert_eq!(connection.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let suite = format!("{:?}", connection.negotiated_cipher_suite().expect("a suite").suite());
    assert!(TLS12_ECDSA_SUITES.contains(&suite.as_str()), "TLS 1.2 negotiated {suite}");
    drop(tls);

    const ECDHE_ECDSA_AES128_GCM: u16 = 0xc02b;
    let weak: [(u16, &str); 9] = [
        (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
        (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
        (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
        (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256 (no forward secrecy)"),
        (0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 (finite-field DHE)"),
        (0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
        (0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
        (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    ];
    let answer = hello_answer(served.addr(), 0x0303, &[ECDHE_ECDSA_AES128_GCM]).await;
    assert_eq!(answer, Answer::ServerHello { suite: ECDHE_ECDSA_AES128_GCM }, "the control hello");
    for (suite, name) in weak {
        let answer = hello_answer(served.addr(), 0x0303, &[suite]).await;
        assert_eq!(answer, Answer::Alert { description: HANDSHAKE_FAILURE }, "{name} alone");
    }
    let mut all: Vec<u16> = weak.iter().map(|(suite, _)| *suite).collect();
    let answer = hello_answer(served.addr(), 0x0303, &all).await;
    assert_eq!(answer, Answer::Alert { description: HANDSHAKE_FAILURE }, "every weak suite");
    all.push(ECDHE_ECDSA_AES128_GCM);
    let answer = hello_answer(served.addr(), 0x0303, &all).await;
    assert_eq!(answer, Answer::ServerHello { suite: ECDHE_ECDSA_AES128_GCM }, "weak suites first");
    for (version, name) in [(0x0301, "TLS 1.0"), (0x0302, "TLS 1.1")] {
        let answer = hello_answer(served.addr(), version, &[0xc009, ECDHE_ECDSA_AES128_GCM]).await;
        assert_eq!(answer, Answer::Alert { description: PROTOCOL_VERSION }, "{name}");
    }
    let config = client(&served.ca, None, &[b"h2"], ALL_VERSIONS);
    let reply = must_call(served.addr(), &config, Method::GET, "/livez", None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "the gateway still serves");
}

/// The TLS alert `handshake_failure`.
const HANDSHAKE_FAILURE: u8 = 40;
/// The TLS alert `protocol_version`.
const PROTOCOL_VERSION: u8 = 70;

/// What a server answered to a ClientHello.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A ServerHello choosing `suite`.
    ServerHello { suite: u16 },
    /// A fatal alert.
    Alert { description: u8 },
}

/// Sends a hand-written TLS ClientHello offering `version` and `suites` and reads the
/// server's first record.
async fn hello_answer(addr: SocketAddr, version: u16, suites: &[u16]) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&client_hello(version, suites)).await?;
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await?;
        let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        stream.read_exact(&mut record).await?;
        std::io::Result::Ok((header[0], record))
    };
    let (kind, record) = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => panic!("a ClientHello of {version:#06x} with {suites:04x?}: {error}"),
        Err(_) => panic!("a ClientHello of {version:#06x} with {suites:04x?}: no answer in 10 s"),
    };
    match (kind, record.as_slice()) {
        // Alert: level 2 (fatal), description.
        (0x15, [2, description]) => Answer::Alert { description: *description },
        // Handshake: ServerHello (2), length (3), version (2), random (32), session id.
        (0x16, [2, _, _, _, _, _, rest @ ..]) if rest.len() > 32 => {
            let session_id = usize::from(rest[32]);
            let at = 33 + session_id;
            Answer::ServerHello { suite: u16::from_be_bytes([rest[at], rest[at + 1]]) }
        }
        _ => panic!("an unexpected answer to a ClientHello: type {kind:#04x}, {record:02x?}"),
    }
}

/// A TLS ClientHello record for `version` offering `suites`, with the extensions a TLS 1.2
/// client sends (groups, point formats, signature algorithms, EMS, renegotiation info).
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut extensions = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&be16(data.len()));
        extensions.extend_from_slice(data);
    };
    extension(0x000a, &list16(&[0x001d, 0x0017, 0x0018]));
    extension(0x000b, &[1, 0]);
    extension(0x000d, &list16(&[0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501]));
    extension(0x0017, &[]);
    extension(0xff01, &[0]);
    let mut hello = version.to_be_bytes().to_vec();
    hello.extend_from_slice(&[7; 32]);
    hello.push(0);
    hello.extend_from_slice(&list16(suites));
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&be16(extensions.len()));
    hello.extend_from_slice(&extensions);
    let length = u32::try_from(hello.len()).expect("a short hello").to_be_bytes();
    let mut handshake = vec![1, length[1], length[2], length[3]];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&be16(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

fn be16(length: usize) -> [u8; 2] {
    u16::try_from(length).expect("a length under 64 KiB").to_be_bytes()
}

/// A TLS vector of 16-bit items, with its 16-bit length in bytes.
fn list16(items: &[u16]) -> Vec<u8> {
    let mut out = be16(items.len() * 2).to_vec();
    for item in items {
        out.extend_from_slice(&item.to_be_bytes());
    }
    out
}

/// Plain HTTP sent to the TLS port gets no HTTP answer and a closed connection (at most
/// a TLS alert), and the gateway keeps serving TLS clients.
#[tokio::test]
async fn plain_http_to_the_tls_port_fails_cleanly() {
    let served = serve(&[], ClientAuth::Off, &[]).await;
    let mut stream = TcpStream::connect(served.addr()).await.expect("connecting");
    let request = format!("GET /livez HTTP/1.1\r\nhost: {}\r\n\r\n", served.addr());
    stream.write_all(request.as_bytes()).await.expect("writing plain HTTP");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the gateway closes the connection within 10 s");
    assert!(!answer.starts_with(b"HTTP/"), "an HTTP answer on the TLS port: {answer:?}");
    assert!(
        answer.is_empty() || answer.starts_with(&[0x15, 0x03]),
        "at most a TLS alert: {answer:02x?}"
    );
    let config = client(&served.ca, None, &[b"h2"], ALL_VERSIONS);
    let reply = must_call(served.addr(), &config, Method::GET, "/livez", None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "the gateway still serves TLS");
}

/// With `--header-read-timeout-seconds 1` (and the idle timeout at its default of two
/// minutes), a client that opens a TCP connection and never sends a ClientHello, or
/// sends only the first bytes of one, is dropped after a second (not before, and well
/// within 10 s).
#[tokio::test]
async fn a_client_that_never_finishes_a_client_hello_is_dropped_after_the_timeout() {
    let served = serve(&[], ClientAuth::Off, &["--header-read-timeout-seconds", "1"]).await;
    let partial = client_hello(0x0303, &[0xc02b]);
    for (case, sent) in [("nothing", &[][..]), ("five bytes of a ClientHello", &partial[..5])] {
        let mut stream = TcpStream::connect(served.addr()).await.expect("connecting");
        stream.write_all(sent).await.expect("writing");
        let started = Instant::now();
        let closed = tokio::time::timeout(TIMEOUT, async {
            let mut buf = [0u8; 256];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        closed.await.unwrap_or_else(|_| panic!("{case}: still open after 10 s"));
        // Dropped within the 10 s bound above: the handshake timeout, not the idle one.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(900), "{case}: dropped after {waited:?}, early");
    }
    let config = client(&served.ca, None, &[b"http/1.1"], ALL_VERSIONS);
    let reply = must_call(served.addr(), &config, Method::GET, "/livez", None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "the gateway still serves");
}

// ---------------------------------------------------------------------------------------
// mTLS
// ---------------------------------------------------------------------------------------

/// With `--tls-client-auth optional`: a client certificate whose common name is a
/// tenant's name, with no `Authorization` header, is that tenant (it creates and reads
/// that tenant's accounts and no other's); a certificate for A with A's signature is A; a
/// certificate for A with B's signature is 401, as are certificates naming no tenant
/// (an unknown name, a name no tenant could have, no common name), even with a valid
/// signature; a certificate from another CA fails the handshake; a certificate is no
/// operator credential; without a certificate, signed requests work.
#[tokio::test]
async fn a_client_certificate_names_its_tenant() {
    let served = serve(&["acme", "globex"], ClientAuth::Optional, &[]).await;
    let (addr, ca) = (served.addr(), &served.ca);
    let (acme, globex) = (served.auth[0].as_str(), served.auth[1].as_str());
    let config = |identity: Option<Identity>| client(ca, identity, &[b"h2"], ALL_VERSIONS);
    let anonymous = config(None);
    let as_acme = config(Some(ca.client(Some("acme"))));
    let as_globex = config(Some(ca.client(Some("globex"))));
    let read = |id: u128| format!("/v1/accounts/{}", uuid(id));

    let reply =
        must_call(addr, &anonymous, Method::POST, "/v1/accounts", Some(acme), account(1)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "signed, no certificate: {}", body_text(&reply));
    let reply = must_call(addr, &as_acme, Method::GET, &read(1), None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "acme's certificate reads acme's account");
    let reply = must_call(addr, &as_acme, Method::POST, "/v1/accounts", None, account(2)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "acme's certificate creates");
    let reply = must_call(addr, &anonymous, Method::GET, &read(2), Some(acme), vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "the certificate's account is acme's");
    let reply = must_call(addr, &as_globex, Method::GET, &read(1), None, vec![]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "globex's certificate sees globex's ledger");
    let reply = must_call(addr, &as_acme, Method::GET, &read(1), Some(acme), vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "acme's certificate and acme's signature agree");

    let reference = must_call(addr, &anonymous, Method::GET, &read(1), None, vec![]).await;
    assert_eq!(reference.status, StatusCode::UNAUTHORIZED, "no certificate, no signature");
    let nobody = config(Some(ca.client(Some("nobody"))));
    let not_a_name = config(Some(ca.client(Some("Not A Tenant!"))));
    let no_name = config(Some(ca.client(None)));
    let refused = [
        ("acme's certificate with globex's signature", &as_acme, Some(globex)),
        ("globex's certificate with acme's signature", &as_globex, Some(acme)),
        ("a certificate for a tenant that does not exist", &nobody, None),
        ("a certificate whose name no tenant could have", &not_a_name, None),
        ("the same, with acme's signature", &not_a_name, Some(acme)),
        ("a certificate without a common name", &no_name, None),
        ("the same, with acme's signature", &no_name, Some(acme)),
    ];
    for (case, config, sign_as) in refused {
        let reply = must_call(addr, config, Method::GET, &read(1), sign_as, vec![]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", body_text(&reply));
        assert_eq!(json_of(&reply), json_of(&reference), "{case}: the same 401");
        assert_eq!(reply.header("www-authenticate"), reference.header("www-authenticate"));
    }
    let reply = must_call(addr, &as_acme, Method::GET, "/v1/admin/tenants", None, vec![]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "a tenant certificate is no operator");

    let stranger = Authority::new("Another CA");
    for versions in [ALL_VERSIONS, &[&rustls::version::TLS12]] {
        let foreign = client(ca, Some(stranger.client(Some("acme"))), &[b"h2"], versions);
        assert_refused(addr, &foreign, "UnknownCA", "a certificate from another CA").await;
    }
    let reply = must_call(addr, &as_acme, Method::GET, &read(1), None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "the gateway still serves");
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

/// With `--tls-client-auth required`: a client without a certificate is refused at the
/// TLS layer (`certificate_required`, before any request can be sent, so even for
/// `/livez` or a signed request), one with a certificate from another CA too
/// (`unknown_ca`), over TLS 1.3 and 1.2 and whatever ALPN; a client with the CA's
/// certificate is served, with and without a signature.
#[tokio::test]
async fn a_required_client_certificate_is_required() {
    let served = serve(&["acme"], ClientAuth::Required, &[]).await;
    let (addr, ca, acme) = (served.addr(), &served.ca, served.auth[0].as_str());
    let read = format!("/v1/accounts/{}", uuid(1));
    let stranger = Authority::new("Another CA");
    for versions in [ALL_VERSIONS, &[&rustls::version::TLS12]] {
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let alpn_name = String::from_utf8_lossy(alpn);
            let context = format!("{:?}, ALPN {alpn_name}", versions[0].version);
            let anonymous = client(ca, None, &[alpn], versions);
            let no_certificate = format!("no certificate, {context}");
            assert_refused(addr, &anonymous, "CertificateRequired", &no_certificate).await;
            let foreign = client(ca, Some(stranger.client(Some("acme"))), &[alpn], versions);
            let other_ca = format!("a certificate from another CA, {context}");
            assert_refused(addr, &foreign, "UnknownCA", &other_ca).await;
        }
    }
    let as_acme = client(ca, Some(ca.client(Some("acme"))), &[b"h2"], ALL_VERSIONS);
    let reply =
        must_call(addr, &as_acme, Method::POST, "/v1/accounts", Some(acme), account(1)).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a certificate and a signature: {}",
        body_text(&reply)
    );
    let reply = must_call(addr, &as_acme, Method::GET, &read, None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "a certificate alone: {}", body_text(&reply));
}
