//! `https://` targets against the fake behind tokio-rustls, with a CA and certificates
//! made at test time: both ALPN protocols, mTLS, an untrusted server, and the TLS flags'
//! errors.

use hyper::Version;
use loadtest::{EXIT_FLAGS, EXIT_UNREACHABLE, Error};

use crate::auth::{all_authenticated, ledger_words};
use crate::config;
use crate::fake::{self, Auth, Fake, Options};
use crate::pki::{self, ClientAuth, Pki};

async fn start(pki: &Pki, client_auth: ClientAuth) -> Fake {
    fake::start_with(Options { tls: Some(pki.server(client_auth)), ..Options::default() }).await
}

async fn run(fake: &Fake, extra: &[&str]) -> Result<loadtest::Outcome, Error> {
    let mut words = ledger_words(&fake.url);
    words.extend(extra.iter().map(|w| (*w).to_owned()));
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    loadtest::run(&config(&words)).await
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// A verified run over TLS speaking `version`, agreed as `alpn` on every connection,
/// with connections reused (a handshake per connection, not per request).
async fn passes_over(alpn: &[u8], version: Version, extra: &[&str]) {
    let pki = pki::generate();
    let fake = start(&pki, ClientAuth::Off).await;
    let mut flags = vec!["--ca-file", path(&pki.ca_file)];
    flags.extend_from_slice(extra);
    let outcome = run(&fake, &flags).await.expect("the run completes");
    let verification = outcome.report.verification.expect("verified");
    assert!(verification.passed, "{:?}", verification.violations);
    assert_eq!(outcome.report.overall.errors, 0, "{:?}", outcome.report.statuses);
    let seen = fake.seen();
    all_authenticated(&seen, |auth| matches!(auth, Auth::Signed { .. }));
    assert!(seen.iter().all(|s| s.version == version), "{seen:?}");
    let handshakes = fake.handshakes();
    assert!(handshakes.iter().all(|h| h.alpn.as_deref() == Some(alpn)), "{handshakes:?}");
    assert!(!handshakes.is_empty() && handshakes.len() <= 12, "{} handshakes", handshakes.len());
    assert!(seen.len() > 10 * handshakes.len(), "{} requests", seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http1_after_alpn_http11() {
    passes_over(b"http/1.1", Version::HTTP_11, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_h2_after_alpn_h2() {
    passes_over(b"h2", Version::HTTP_2, &["--http2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_presents_the_client_certificate() {
    let pki = pki::generate();
    let fake = start(&pki, ClientAuth::Required).await;
    let (ca, cert, key) = (path(&pki.ca_file), path(&pki.client_cert), path(&pki.client_key));
    let identity = ["--ca-file", ca, "--client-cert", cert, "--client-key", key];
    let outcome = run(&fake, &identity).await.expect("the run completes");
    assert!(outcome.report.verification.expect("verified").passed);
    let handshakes = fake.handshakes();
    assert!(!handshakes.is_empty() && handshakes.iter().all(|h| h.client_certificate));
    assert_eq!(fake.failed_handshakes(), 0);

    let error = run(&fake, &["--ca-file", ca]).await.expect_err("no client certificate");
    assert!(matches!(error, Error::Connect { .. }), "{error}");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(fake.failed_handshakes() >= 1, "the fake refused the handshake");
    assert_eq!(fake.handshakes().len(), handshakes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_roots_do_not_trust_is_refused() {
    let pki = pki::generate();
    let fake = start(&pki, ClientAuth::Off).await;
    let error = run(&fake, &[]).await.expect_err("the webpki roots do not hold the test CA");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    assert!(fake.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flag_files_are_checked_naming_the_flag() {
    let pki = pki::generate();
    let fake = start(&pki, ClientAuth::Off).await;
    let (ca, cert) = (path(&pki.ca_file), path(&pki.client_cert));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let other_key = dir.path().join("other.key");
    let pem = rcgen::KeyPair::generate().expect("a key").serialize_pem();
    std::fs::write(&other_key, pem).expect("writing a key");
    let cases = [
        (vec!["--ca-file", "/nonexistent/ca.pem"], "invalid --ca-file: cannot read /nonexistent"),
        (vec!["--ca-file", path(&pki.client_key)], "invalid --ca-file: "),
        (
            vec!["--ca-file", ca, "--client-cert", cert, "--client-key", cert],
            "invalid --client-key: ",
        ),
        (
            vec!["--ca-file", ca, "--client-cert", cert, "--client-key", path(&other_key)],
            "invalid --client-key: ",
        ),
    ];
    for (flags, expected) in cases {
        let error = run(&fake, &flags).await.expect_err("a bad file");
        assert!(error.to_string().starts_with(expected), "{flags:?}: {error}");
        assert_eq!(error.exit_code(), EXIT_FLAGS);
    }
    assert!(fake.seen().is_empty() && fake.handshakes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_64_on_an_unreadable_ca_file() {
    let words =
        ["--target", "https://127.0.0.1:9", "--mix", "livez=1", "--ca-file", "/nonexistent/ca.pem"];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(words)
            .output()
            .expect("running the loadtest binary")
    })
    .await
    .expect("the binary ran");
    assert_eq!(output.status.code(), Some(i32::from(EXIT_FLAGS)));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid --ca-file: cannot read /nonexistent/ca.pem"), "{stderr}");
}
