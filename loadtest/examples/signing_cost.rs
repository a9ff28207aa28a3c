//! What signing costs the load tester per request: `cargo run --release -p loadtest
//! --example signing_cost`. It times [`Credentials::authorization`] (the body's SHA-256,
//! the HMAC of the canonical request and the header) for the requests the tester sends,
//! bearer and signed, on one core. No network; prints one line per request shape.

use std::time::{Duration, Instant};

use http::Method;
use loadtest::auth::{AuthMode, Credentials};

/// A credential shaped like the ones `gateway tenant create` prints.
const KEY: &str =
    "pk_0123456789abcdef.6c6f6164746573742d7369676e696e672d636f73742d6578616d706c652d6b6579";
/// The account path of a read.
const ACCOUNT: &str = "/v1/accounts/0190a1b2-0000-7000-8000-000000000001";
/// Signatures per shape for small bodies (large ones get a twentieth).
const ROUNDS: u32 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let single = vec![b'x'; 260];
    let batch = vec![b'x'; 26_000];
    let history = format!("{ACCOUNT}/transfers?limit=10&after=0190a1b2");
    let shapes: [(&str, Method, &str, &[u8]); 4] = [
        ("GET an account", Method::GET, ACCOUNT, b""),
        ("GET with a query", Method::GET, &history, b""),
        ("POST one transfer (260 B)", Method::POST, "/v1/transfers", &single),
        ("POST 100 transfers (26 kB)", Method::POST, "/v1/transfers", &batch),
    ];
    for mode in [AuthMode::Bearer, AuthMode::Signed] {
        let credentials = Credentials::new(KEY, mode)?;
        for (name, method, target, body) in &shapes {
            let per_request = time(&credentials, method, target, body)?;
            println!("{mode:?}, {name}: {per_request:?} per request");
        }
    }
    Ok(())
}

fn time(
    credentials: &Credentials,
    method: &Method,
    target: &str,
    body: &[u8],
) -> Result<Duration, Box<dyn std::error::Error>> {
    let rounds = if body.len() > 1024 { ROUNDS / 20 } else { ROUNDS };
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += credentials.authorization(method, target, body)?.len();
    }
    let elapsed = start.elapsed();
    assert!(bytes > 0, "the headers were made");
    Ok(elapsed / rounds)
}
