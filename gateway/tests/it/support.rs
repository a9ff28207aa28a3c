//! What every test here needs: the real `gateway` binary on a temporary data directory,
//! tenants created through its CLI, a small HTTP/1.1 and h2c client, and a seeded random
//! number generator.
//!
//! Every wait is bounded and fails with a message that says what did not happen (and the
//! gateway's stderr): start-up waits for the `listening` log line (at most 20 s),
//! readiness polls `/readyz` (at most 20 s), a request gives up after 10 s, and a process
//! expected to exit gets 20 s. A [`Gateway`] is killed when dropped, so a failing test
//! never leaves a server behind.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tempfile::TempDir;

/// The binary under test.
const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");
/// How long the gateway may take to log `listening`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `/readyz` may take to answer 200 once the gateway listens.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process that should exit may take.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request (headers and body) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client keeps an idle connection for reuse: below the gateway's default
/// header-read timeout (10 s), which closes an idle HTTP/1.1 connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A fresh, empty data directory, removed when dropped.
pub fn data_dir() -> TempDir {
    tempfile::Builder::new().prefix("protea-it-").tempdir().expect("creating a temporary data dir")
}

/// The keys document (key-encryption key and token keys) every gateway process of this
/// test binary shares when it runs on PostgreSQL: the processes of one database must
/// open each other's sealed secrets. Passed as `--keys-secret env:PROTEA_TEST_KEYS`.
fn shared_keys() -> &'static str {
    static KEYS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| gateway::keys::generate_document().expect("generating a keys document"))
}

/// The flags that point a gateway command at the shared keys (PostgreSQL needs them).
pub const SHARED_KEYS: [&str; 2] = ["--keys-secret", "env:PROTEA_TEST_KEYS"];

/// A command running the gateway binary, with no `PROTEA_*` variables inherited (they
/// would override flags the tests rely on) but the shared keys document.
fn gateway_command() -> Command {
    let mut command = Command::new(GATEWAY);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PROTEA_") {
            command.env_remove(key);
        }
    }
    command.env("PROTEA_TEST_KEYS", shared_keys());
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// What a finished process printed and how it exited.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs the gateway binary with `args` to completion (at most 20 s).
pub fn run_gateway(args: &[&str]) -> Finished {
    run_gateway_with_env(args, &[])
}

/// [`run_gateway`] with extra environment variables (for example [`aws_env`]).
pub fn run_gateway_with_env(args: &[&str], env: &[(&str, String)]) -> Finished {
    let mut command = gateway_command();
    command.envs(env.iter().map(|(key, value)| (key, value)));
    let mut child = command.args(args).spawn().expect("spawning the gateway binary");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = wait_bounded(child, EXIT_TIMEOUT);
    let stdout = join_text(stdout);
    let stderr = join_text(stderr);
    match status {
        Ok(status) => Finished { status, stdout, stderr },
        Err(error) => panic!("gateway {args:?}: {error}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

/// Creates tenant `name` in the store at `dir` and returns its credential as
/// `Bearer KEYID.SECRET`: [`Api`] signs every request made with it (or sends it as is, for
/// a gateway that allows bearer keys, through [`Api::bearer`]).
pub fn create_tenant(dir: &Path, name: &str) -> String {
    let dir = dir.to_str().expect("a UTF-8 temporary path");
    create_tenant_with(name, &["--data-dir", dir])
}

/// Creates tenant `name` through the CLI with `storage_args` (for example `--storage URL`)
/// and returns its credential as `Bearer KEYID.SECRET` (see [`create_tenant`]).
pub fn create_tenant_with(name: &str, storage_args: &[&str]) -> String {
    let mut args = vec!["tenant", "create", name];
    args.extend_from_slice(storage_args);
    let finished = run_gateway(&args);
    assert!(
        finished.status.success(),
        "gateway tenant create {name} exited with {}; stderr:\n{}",
        finished.status,
        finished.stderr
    );
    let line = |prefix: &str| {
        finished
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the output:\n{}", finished.stdout))
    };
    format!("Bearer {}.{}", line("key_id: "), line("secret: "))
}

/// GETs every transfer in `ids` from `api`, `readers` requests at a time; returns each
/// id with the status and body it got.
pub async fn get_transfers(
    api: &Api,
    auth: &str,
    ids: Vec<u128>,
    readers: usize,
) -> Vec<(u128, StatusCode, Value)> {
    let chunk = ids.len().div_ceil(readers).max(1);
    let tasks: Vec<_> = ids
        .chunks(chunk)
        .map(|ids| {
            let (api, auth, ids) = (api.clone(), auth.to_owned(), ids.to_vec());
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(ids.len());
                for id in ids {
                    let (status, body) =
                        api.get_json(&format!("/v1/transfers/{}", uuid(id)), &auth).await;
                    got.push((id, status, body));
                }
                got
            })
        })
        .collect();
    let mut got = Vec::with_capacity(ids.len());
    for task in tasks {
        got.extend(task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    got
}

/// A running gateway process, killed (SIGKILL) when dropped. Its stdout (the JSON log) and
/// stderr are read all along and kept; [`Gateway::stop`] returns them.
pub struct Gateway {
    child: Option<Child>,
    addr: SocketAddr,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Gateway {
    /// Starts the gateway on `dir`, listening on 127.0.0.1 with a port from the kernel and
    /// two cores, plus `extra` flags; returns once it logged `listening`. Panics (with its
    /// stderr) when it exits first or does not listen within 20 s.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// [`Gateway::start`] with extra environment variables (for example the AWS
    /// settings of a Secrets Manager source).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> Self {
        let mut child = gateway_command()
            .envs(env.iter().map(|(key, value)| (key, value)))
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .args(extra)
            .spawn()
            .expect("spawning the gateway binary");
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        let (listening, addr) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || watch_stdout(stdout, &listening));
        match addr.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                Self { child: Some(child), addr, stdout: Some(stdout), stderr: Some(stderr) }
            }
            Err(error) => {
                let why = match error {
                    mpsc::RecvTimeoutError::Timeout => "did not log \"listening\" within 20 s",
                    mpsc::RecvTimeoutError::Disconnected => "exited before logging \"listening\"",
                };
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                let stderr = join_text(stderr);
                panic!(
                    "the gateway on {} {why} (status {status}); stderr:\n{stderr}",
                    dir.display()
                )
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL: no drain, no flush, no clean close of the store.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("sending SIGKILL to the gateway");
            child.wait().expect("reaping the killed gateway");
        }
    }

    /// Sends SIGTERM (through `kill -TERM`, no libc needed) and waits at most 20 s for the
    /// process to exit; returns its exit status and everything it wrote to stderr.
    pub fn terminate(self) -> (ExitStatus, String) {
        let finished = self.stop();
        (finished.status, finished.stderr)
    }

    /// [`Gateway::terminate`], returning everything the process wrote to stdout (its JSON
    /// log, from the first line) as well.
    pub fn stop(mut self) -> Finished {
        let child = self.child.take().expect("a running gateway");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let status = wait_bounded(child, EXIT_TIMEOUT);
        let stderr = self.stderr.take().map(join_text).unwrap_or_default();
        let stdout = self.stdout.take().map(join_text).unwrap_or_default();
        match status {
            Ok(status) => Finished { status, stdout, stderr },
            Err(error) => panic!("after SIGTERM the gateway {error}; stderr:\n{stderr}"),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads the gateway's stdout until the `listening` line, sends its address, then keeps
/// reading so the gateway never blocks on a full pipe; returns everything read (lossily
/// decoded) once stdout closes.
fn watch_stdout(stdout: ChildStdout, listening: &mpsc::Sender<SocketAddr>) -> String {
    let mut reader = BufReader::new(stdout);
    let mut seen = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(_) => {}
        }
        seen.extend_from_slice(&line);
        if let Some(addr) = listening_addr(&line) {
            let _ = listening.send(addr);
            break;
        }
    }
    let _ = reader.read_to_end(&mut seen);
    String::from_utf8_lossy(&seen).into_owned()
}

/// The address of a `{"fields":{"message":"listening","addr":...}}` log line.
fn listening_addr(line: &[u8]) -> Option<SocketAddr> {
    let event: Value = serde_json::from_slice(line).ok()?;
    let fields = event.get("fields")?;
    if fields.get("message")? != "listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

fn read_all<R: Read + Send + 'static>(mut stream: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_text(reader: JoinHandle<String>) -> String {
    reader.join().unwrap_or_else(|_| "<the reader thread panicked>".to_owned())
}

/// Waits for `child` to exit, at most `timeout`; past it, kills it and says so.
fn wait_bounded(mut child: Child, timeout: Duration) -> Result<ExitStatus, String> {
    let pid = child.id();
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    match exited.recv_timeout(timeout) {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(error)) => Err(format!("could not be waited for: {error}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = exited.recv_timeout(timeout);
            Err(format!("did not exit within {} s and was killed", timeout.as_secs()))
        }
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// HTTP version the response came over.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`null` when empty); panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("{error}: not JSON ({}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one gateway: HTTP/1.1, or HTTP/2 over cleartext with prior knowledge.
///
/// A tenant credential passed as `Authorization: Bearer KEYID.SECRET` is turned into a
/// signed request (`Protea-HMAC-SHA256`, fresh timestamp and nonce) for every send, as a
/// real client does; [`Api::bearer`] sends it unchanged instead. Other authorization
/// values (operator tokens, deliberately broken headers) pass through as given.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    sign: bool,
}

impl Api {
    /// An HTTP/1.1 client of the gateway at `addr`.
    pub fn http1(addr: SocketAddr) -> Self {
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE_TIMEOUT).build_http();
        Self { client, base: format!("http://{addr}"), sign: true }
    }

    /// An h2c (HTTP/2 with prior knowledge, no upgrade) client of the gateway at `addr`.
    pub fn h2c(addr: SocketAddr) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_only(true)
            .build_http();
        Self { client, base: format!("http://{addr}"), sign: true }
    }

    /// The same client, sending tenant credentials as Bearer keys instead of signing.
    pub fn bearer(mut self) -> Self {
        self.sign = false;
        self
    }

    /// Sends one request; `Err` describes a connection failure or a timeout.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut request =
            Request::builder().method(method.clone()).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            let signed = match (self.sign, name.eq_ignore_ascii_case("authorization")) {
                (true, true) => sign(value, &method, path, &body),
                _ => None,
            };
            request = request.header(*name, signed.as_deref().unwrap_or(value));
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("{path}: no response within 10 s"))?
            .map_err(|error| format!("{path}: {error:?}"))?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
            .await
            .map_err(|_| format!("{path}: body not received within 10 s"))?
            .map_err(|error| format!("{path}: reading the body: {error:?}"))?
            .to_bytes();
        Ok(Reply { status: parts.status, version: parts.version, headers: parts.headers, body })
    }

    /// Sends one request and panics when no response arrives.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let described = format!("{method} {path}");
        self.send(method, path, headers, body)
            .await
            .unwrap_or_else(|error| panic!("{described}: {error}"))
    }

    /// POSTs `body` as JSON with `authorization`; `Err` when no response arrived.
    pub async fn try_post_json(
        &self,
        path: &str,
        authorization: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), String> {
        let bytes = serde_json::to_vec(body).expect("serialising a request body");
        let reply =
            self.send(Method::POST, path, &[("authorization", authorization)], bytes).await?;
        Ok((reply.status, reply.json()))
    }

    /// POSTs `body` as JSON with `authorization`.
    pub async fn post_json(
        &self,
        path: &str,
        authorization: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.try_post_json(path, authorization, &body)
            .await
            .unwrap_or_else(|error| panic!("POST {path}: {error}"))
    }

    /// GETs `path` with `authorization`; `Err` when no response arrived.
    pub async fn try_get_json(
        &self,
        path: &str,
        authorization: &str,
    ) -> Result<(StatusCode, Value), String> {
        let headers = [("authorization", authorization)];
        let reply = self.send(Method::GET, path, &headers, Vec::new()).await?;
        Ok((reply.status, reply.json()))
    }

    /// GETs `path` with `authorization`.
    pub async fn get_json(&self, path: &str, authorization: &str) -> (StatusCode, Value) {
        self.try_get_json(path, authorization)
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// Polls `/readyz` until it answers 200; panics after 20 s.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self.send(Method::GET, "/readyz", &[], Vec::new()).await {
                Ok(reply) if reply.status == StatusCode::OK => return,
                Ok(reply) => last = format!("status {}", reply.status),
                Err(error) => last = error,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!("{}/readyz did not answer 200 within 20 s; last: {last}", self.base);
    }
}

/// The signed `Authorization` value for a `Bearer KEYID.SECRET` credential (`None` for
/// any other value): the request's method, path and query as sent, its body, now, and a
/// fresh nonce.
pub fn sign(credential: &str, method: &Method, target: &str, body: &[u8]) -> Option<String> {
    let nonce = crypto::signature::random_nonce().expect("the OS random generator");
    sign_at(credential, method, target, body, unix_now(), &nonce)
}

/// [`sign`] with the timestamp and nonce given: for stale, future or replayed requests.
pub fn sign_at(
    credential: &str,
    method: &Method,
    target: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> Option<String> {
    use crypto::signature::{RequestParts, Scope, SigningKey, body_digest};
    let (key_id, secret) = credential.strip_prefix("Bearer pk_")?.split_once('.')?;
    let key_id = format!("pk_{key_id}");
    let key = SigningKey::new(secret.as_bytes()).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let digest = body_digest(body);
    let parts = RequestParts { method: method.as_str(), path, query, body_sha256: &digest };
    let scope = Scope { key_id: &key_id, timestamp, nonce };
    let header = crypto::signature::sign_request(&key, &scope, &parts).ok()?;
    Some(header.header_value())
}

/// Sends one request over a connection the caller opened (a TCP socket bound to a
/// chosen address, a TLS stream), as HTTP/1.1 or HTTP/2 (`version`), and reads the whole
/// response; `Err` describes a failed handshake, exchange or timeout (10 s each). For
/// HTTP/1.1 the request's URI is sent as is (give a path and a `host` header); HTTP/2
/// needs an absolute URI.
pub async fn exchange<IO>(
    io: IO,
    version: Version,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper::client::conn::{http1, http2};
    use hyper_util::rt::TokioIo;
    let bounded = |what: &'static str| move |_| format!("{what}: nothing within 10 s");
    let io = TokioIo::new(io);
    let response = if version == Version::HTTP_2 {
        let handshake = http2::handshake(TokioExecutor::new(), io);
        let (mut sender, connection) = tokio::time::timeout(REQUEST_TIMEOUT, handshake)
            .await
            .map_err(bounded("the HTTP/2 handshake"))?
            .map_err(|error| format!("the HTTP/2 handshake: {error:?}"))?;
        tokio::spawn(connection);
        tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(bounded("the response"))?
    } else {
        let (mut sender, connection) = tokio::time::timeout(REQUEST_TIMEOUT, http1::handshake(io))
            .await
            .map_err(bounded("the HTTP/1.1 handshake"))?
            .map_err(|error| format!("the HTTP/1.1 handshake: {error:?}"))?;
        tokio::spawn(connection);
        tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(bounded("the response"))?
    };
    let (parts, body) = response.map_err(|error| format!("the exchange: {error:?}"))?.into_parts();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
        .await
        .map_err(bounded("the body"))?
        .map_err(|error| format!("reading the body: {error:?}"))?
        .to_bytes();
    Ok(Reply { status: parts.status, version: parts.version, headers: parts.headers, body })
}

/// The local AWS stand-in (moto) the tests use: `PROTEA_TEST_MOTO_URL`, or the port
/// `scripts/test` starts it on.
pub fn moto_url() -> String {
    std::env::var("PROTEA_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".to_owned())
}

/// The AWS region the tests use on moto.
pub const AWS_REGION: &str = "us-east-1";

/// The AWS environment a gateway process gets: moto, a region, placeholder keys.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto_url()),
        ("AWS_REGION", AWS_REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

/// A UUID string for a 128-bit id.
pub fn uuid(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

/// The 128-bit id in a JSON UUID string.
pub fn id_of(value: &Value) -> u128 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a UUID string: {value}"));
    uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).as_u128()
}

/// The seed of the randomised tests: `PROTEA_TEST_SEED` when set, else a fixed one, so a
/// run is reproducible (up to thread and network interleavings).
pub fn seed() -> u64 {
    match std::env::var("PROTEA_TEST_SEED") {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("PROTEA_TEST_SEED={text:?}")),
        Err(_) => 0x5EED_CAFE_F00D_0001,
    }
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// An index below `len` (which must not be zero).
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.next_u64() % len as u64).expect("an index fits usize")
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A gateway process started with exactly the given arguments (no data directory or
/// listen flags added), whose stdout log lines are kept for inspection; killed when
/// dropped. For tests of a gateway that must not come up (it never logs `listening`).
pub struct Spawned {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Spawned {
    /// Spawns `gateway ARGS...`.
    pub fn start(args: &[&str]) -> Self {
        let mut child = gateway_command().args(args).spawn().expect("spawning the gateway binary");
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child: Some(child), lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    /// Waits at most `timeout` for a stdout line that `wanted` accepts and returns it;
    /// `None` when the time passes or stdout closes first. Every line read is kept.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Its exit status, if it has exited (does not wait).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Kills it (if still running) and returns what it wrote to stderr.
    pub fn kill(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stderr.take().map(join_text).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a JSON log line is the gateway's `listening` line.
pub fn is_listening_line(line: &str) -> bool {
    listening_addr(line.as_bytes()).is_some()
}

/// Every page of an account's history, oldest first, with the paging fields checked.
pub async fn history(api: &Api, auth: &str, account: u128, limit: u64) -> Vec<Value> {
    let mut transfers: Vec<Value> = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/accounts/{}/transfers?limit={limit}{after}", uuid(account));
        let (status, mut body) = api.get_json(&path, auth).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let page = body["data"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert!(page.len() as u64 <= limit, "{path}");
        for transfer in &page {
            let timestamp = transfer["timestamp"].as_u64().expect("timestamp");
            let previous =
                transfers.last().map_or(0, |t| t["timestamp"].as_u64().expect("timestamp"));
            assert!(timestamp > previous, "{path}: history goes oldest first, each once");
        }
        transfers.extend(page);
        if body["has_more"] != true {
            assert_eq!(
                (&body["has_more"], &body["next_after"]),
                (&json!(false), &Value::Null),
                "{path}"
            );
            return transfers;
        }
        let last = transfers.last().map(|t| t["timestamp"].to_string()).expect("a full page");
        assert_eq!(body["next_after"].as_str(), Some(last.as_str()), "{path}: next_after");
        after = format!("&after={last}");
    }
}

/// The status a single-object create answers with, by result.
pub fn status_of(result: &str) -> StatusCode {
    match result {
        "ok" => StatusCode::CREATED,
        "exists" => StatusCode::OK,
        "exists_with_different_fields" => StatusCode::CONFLICT,
        r if r.ends_with("_not_found") => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// An operator made through `gateway operator create`: what they sign in with.
#[derive(Debug)]
pub struct Operator {
    /// The store's id.
    pub id: u64,
    /// The sign-in name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The TOTP secret from the enrolment.
    pub totp: crypto::totp::TotpSecret,
    /// The last TOTP step used (a code is accepted once).
    last_step: std::cell::Cell<u64>,
}

/// The password every test operator gets.
pub const OPERATOR_PASSWORD: &str = "correct horse battery staple";

/// Creates operator `username` with `role` through the CLI with `storage_args` (the
/// data directory, or `--storage URL` and [`SHARED_KEYS`]), password on stdin.
pub fn create_operator(username: &str, role: &str, storage_args: &[&str]) -> Operator {
    use std::io::Write;
    let mut child = gateway_command()
        .args(["operator", "create", username, "--role", role])
        .args(storage_args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawning gateway operator create");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(format!("{OPERATOR_PASSWORD}\n").as_bytes()).expect("writing the password");
    drop(stdin);
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = wait_bounded(child, EXIT_TIMEOUT);
    let (stdout, stderr) = (join_text(stdout), join_text(stderr));
    assert!(matches!(status, Ok(s) if s.success()), "operator create: {stdout}\n{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the output:\n{stdout}"))
    };
    let totp =
        crypto::totp::TotpSecret::from_base32(line("totp_secret: "), crypto::totp::Params::DEFAULT)
            .expect("a base32 TOTP secret");
    Operator {
        id: line("operator: ").parse().expect("a numeric operator id"),
        username: username.to_owned(),
        password: OPERATOR_PASSWORD.to_owned(),
        totp,
        last_step: std::cell::Cell::new(0),
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

impl Operator {
    /// A TOTP code the gateway has not seen from this operator: the current step, or the
    /// next one when the current one is used (waiting for the clock when both are). Never
    /// the previous step: the gateway checks the code after the password's argon2id hash,
    /// which takes a while in a debug build, and a previous-step code generated just
    /// before a step boundary is out of the one-step skew by then.
    pub async fn fresh_code(&self) -> String {
        loop {
            let now_step = self.totp.step_at(unix_now());
            let step = (self.last_step.get() + 1).max(now_step);
            if step <= now_step + 1 {
                self.last_step.set(step);
                let code = self.totp.code_at(step * self.totp.params().period_seconds());
                return format!("{code:06}");
            }
            // Asleep on the runtime, not the thread: the client's connections must see a
            // server's close while the test waits, or the next request meets a dead one.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The sign-in body with a fresh code.
    pub async fn sign_in_body(&self) -> Value {
        let code = self.fresh_code().await;
        json!({"username": self.username, "password": self.password, "code": code})
    }
}

impl Api {
    /// Signs `operator` in; returns the status and body.
    pub async fn sign_in(&self, operator: &Operator) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&operator.sign_in_body().await).expect("json");
        let reply = self.call(Method::POST, "/v1/operator/sign-in", &[], body).await;
        (reply.status, reply.json())
    }

    /// Signs `operator` in and returns the `Authorization` value of their token.
    pub async fn operator_token(&self, operator: &Operator) -> String {
        let (status, body) = self.sign_in(operator).await;
        assert_eq!(status, StatusCode::OK, "sign-in of {}: {body}", operator.username);
        let token = body["token"].as_str().unwrap_or_else(|| panic!("no token: {body}"));
        format!("Bearer {token}")
    }
}
