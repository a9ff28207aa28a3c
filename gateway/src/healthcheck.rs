//! `gateway healthcheck`: the container image's health probe. The runtime image has no
//! shell and no curl, so the binary probes itself: one plain-HTTP/1.1 `GET` of `--url`
//! (by default the gateway's `/livez` on localhost), exit 0 on a 200 and 1 otherwise.
//!
//! It must never send credentials, read more than a bounded response head, or wait
//! without a bound: connect, write and read together take at most `--timeout-seconds`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::Args;

/// The most bytes of the response read: enough for the status line.
const RESPONSE_HEAD_BYTES_MAX: usize = 1024;

/// Flags of `gateway healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to probe: `http://HOST:PORT/PATH` (plain HTTP; `/livez` for liveness,
    /// `/readyz` for readiness).
    #[arg(long, env = "PROTEA_HEALTHCHECK_URL", default_value = "http://127.0.0.1:8080/livez")]
    pub url: String,
    /// Bound on the whole probe: connect, send and read the status line.
    #[arg(long, env = "PROTEA_HEALTHCHECK_TIMEOUT_SECONDS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout_seconds: u64,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("healthcheck: url must be http://HOST[:PORT][/PATH], got {0:?}")]
    InvalidUrl(String),
    /// The host did not resolve to an address.
    #[error("healthcheck: {0} does not resolve to an address")]
    Unresolved(String),
    /// Connecting, sending or reading failed (or timed out).
    #[error("healthcheck: {url}: {source}")]
    Io {
        /// The URL probed.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The answer was not `HTTP/1.x 200`.
    #[error("healthcheck: {url} answered {status_line:?}")]
    NotHealthy {
        /// The URL probed.
        url: String,
        /// The response's status line (or what came instead).
        status_line: String,
    },
}

/// A URL split for the probe.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `HOST:PORT`, for connecting and for the `Host` header.
    authority: String,
    /// The path (and query), starting with `/`.
    path: String,
}

fn parse_url(url: &str) -> Result<Target, HealthcheckError> {
    let invalid = || HealthcheckError::InvalidUrl(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
    if authority.is_empty() || !authority.chars().all(valid) || path.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
    let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    Ok(Target { authority, path: path.to_owned() })
}

/// Probes `args.url`; `Ok` when it answered 200.
pub fn probe(args: &HealthcheckArgs) -> Result<(), HealthcheckError> {
    let target = parse_url(&args.url)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let io = |source| HealthcheckError::Io { url: args.url.clone(), source };
    let address: SocketAddr = target
        .authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| HealthcheckError::Unresolved(target.authority.clone()))?;
    let mut stream = TcpStream::connect_timeout(&address, remaining(deadline)).map_err(io)?;
    stream.set_write_timeout(Some(remaining(deadline))).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: protea-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let head = read_head(&mut stream, deadline).map_err(io)?;
    let status_line = head.lines().next().unwrap_or("").to_owned();
    let mut words = status_line.split(' ');
    let healthy =
        words.next().is_some_and(|v| v.starts_with("HTTP/1.")) && words.next() == Some("200");
    if healthy {
        Ok(())
    } else {
        Err(HealthcheckError::NotHealthy { url: args.url.clone(), status_line })
    }
}

/// Time left before `deadline`, at least 1 ms (a zero timeout means "none" to std).
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
}

/// Reads until the end of the status line, the end of the stream, or
/// [`RESPONSE_HEAD_BYTES_MAX`] bytes.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(RESPONSE_HEAD_BYTES_MAX);
    let mut buffer = [0u8; 256];
    while head.len() < RESPONSE_HEAD_BYTES_MAX && !head.contains(&b'\n') {
        stream.set_read_timeout(Some(remaining(deadline)))?;
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read.min(RESPONSE_HEAD_BYTES_MAX - head.len())]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(authority: &str, path: &str) -> Target {
        Target { authority: authority.to_owned(), path: path.to_owned() }
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        let cases = [
            ("http://127.0.0.1:8080/livez", target("127.0.0.1:8080", "/livez")),
            ("http://localhost/readyz", target("localhost:80", "/readyz")),
            ("http://[::1]:9000", target("[::1]:9000", "/")),
            ("http://[::1]/livez", target("[::1]:80", "/livez")),
        ];
        for (url, expected) in cases {
            assert_eq!(parse_url(url).expect(url), expected, "{url}");
        }
    }

    #[test]
    fn other_urls_are_refused_by_name() {
        for url in ["https://127.0.0.1/livez", "127.0.0.1:8080", "http:///livez", "http://a b/"] {
            let error = parse_url(url).expect_err(url).to_string();
            assert!(error.contains("url must be http://"), "{url}: {error}");
        }
    }
}
