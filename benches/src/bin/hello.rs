//! `hello`: the smallest useful hyper server, the baseline of `benches/compare`.
//!
//! It answers `200 hello` to every request on every path over HTTP/1.1 keep-alive, with
//! nothing else on the path: no routing, no auth, no logging, no metrics. Comparing
//! Protea's `GET /livez` with it shows what Protea's own request path costs on top of
//! hyper and tokio; comparing it with nginx shows where hyper itself stands.
//!
//! ```sh
//! hello --listen 127.0.0.1:18081 --threads 2
//! ```
//!
//! Prints `listening on ADDR` to stdout once the socket is bound, then serves until it is
//! killed. `--threads N` runs one multi-thread tokio runtime with N workers (default: all
//! cores). A bad flag exits with code 64.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `EX_USAGE` from sysexits.h: the command line is wrong.
const EXIT_USAGE: u8 = 64;

/// The body of every answer.
const BODY: &[u8] = b"hello";

const USAGE: &str = "usage: hello [--listen ADDR] [--threads N]";

/// Validated command line.
#[derive(Debug)]
struct Config {
    listen: SocketAddr,
    threads: usize,
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("hello: {message}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hello: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut listen = "127.0.0.1:18081".to_owned();
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--threads" => threads = value.parse().map_err(|_| format!("--threads: {value:?}"))?,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    let listen = listen.parse().map_err(|_| format!("--listen: {listen:?} is not ADDR:PORT"))?;
    if threads == 0 {
        return Err("--threads: must be at least 1".to_owned());
    }
    Ok(Config { listen, threads })
}

fn run(config: &Config) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()?;
    runtime.block_on(serve(config.listen))
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream));
            }
            Err(error) => eprintln!("hello: accept failed: {error}"),
        }
    }
}

async fn serve_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service_fn(hello));
    let _ = connection.await;
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}
