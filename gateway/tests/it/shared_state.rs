//! The state several gateway processes share, against real services: operator sessions in
//! DynamoDB (a local moto server at `PROTEA_TEST_MOTO_URL`, default
//! `http://127.0.0.1:5055`) cached in Redis (`PROTEA_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), sessions in PostgreSQL when there is no DynamoDB, and the
//! global rate limit in Redis, with its local fallback when Redis is away. `scripts/test`
//! starts all three services; a missing one fails the test with a message saying which,
//! never a skip.
//!
//! - [`sessions_in_dynamodb_are_shared_and_revoked_at_once`]: two processes on one
//!   database with `--sessions-table` and `--redis-url`: a token issued by one works on
//!   the other; sign-out, an admin's revocation and disabling an operator on one process
//!   take effect on the other at the very next request; the items are in DynamoDB (not in
//!   PostgreSQL) and the tombstones in Redis.
//! - [`sessions_in_postgres_without_dynamodb_are_shared`]: the same processes without AWS:
//!   sessions live in PostgreSQL, and a sign-out on one is refused on the other at once.
//! - [`a_global_rate_limit_is_shared_by_two_processes`]: one tenant's burst is spent once
//!   across both processes (not once per process), a 429 carries Retry-After, and another
//!   tenant is unaffected.
//! - [`rate_limits_fall_back_to_local_while_redis_is_away`]: a gateway whose Redis does not
//!   listen keeps serving and limits locally, says so in `/metrics` and in one warn log
//!   line, turns global again within seconds of Redis coming back — with no request in
//!   between: a background probe pings Redis once a second while degraded — and falls
//!   back again at once when Redis dies.
//!
//! Sessions on the embedded store are covered by `operators.rs`.
//!
//! Redis holds no per-test namespace, so every key a test relies on is unique to the run:
//! session ids are random, the tenants of the shared-Redis test get ids from a range drawn
//! per run (the fresh database's identity is restarted there), and their keys are deleted
//! before use in case an earlier run left them. The Redis of the fallback test is the
//! test's own `redis-server` on a free port.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use storage::secrets::AwsSettings;
use storage::sessions::{DynamoSessions, DynamoSessionsConfig};

use crate::pg_cluster::{TestDatabase, connect};
use crate::support::{
    self, Api, Gateway, Operator, SHARED_KEYS, Spawned, create_operator, create_tenant_with,
    run_gateway, unix_now,
};

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Bound on every wait for something to happen (a reconnection, a log line, a service).
const WAIT_MAX: Duration = Duration::from_secs(15);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(100);
/// The tenant quota of the rate-limit tests: a burst of 10, refilled at one a second.
const RATE_PER_SECOND: &str = "1";
const BURST: u64 = 10;

// ---------------------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("PROTEA_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// `host:port` of an `http://` or `redis://` URL (no user info, no path).
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// Panics with what to do when moto does not answer HTTP.
fn require_moto() {
    let url = support::moto_url();
    let answered = TcpStream::connect(host_port(&url)).and_then(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    });
    match answered {
        Ok(line) if line.starts_with("HTTP/") => {}
        other => panic!(
            "moto (a local AWS) is required at {url} (PROTEA_TEST_MOTO_URL) and did not \
             answer ({other:?}); run scripts/test, which starts it, or \
             `moto_server -H 127.0.0.1 -p 5055`"
        ),
    }
}

/// A connection to the shared Redis; panics with what to do when it does not answer.
fn require_redis() -> Resp {
    let url = redis_url();
    let mut redis = Resp::connect(&host_port(&url)).unwrap_or_else(|error| {
        panic!(
            "Redis is required at {url} (PROTEA_TEST_REDIS_URL) and refused the connection \
             ({error}); run scripts/test, which starts it"
        )
    });
    let pong = redis.command(&["PING"]);
    assert_eq!(pong, RespValue::Simple("PONG".into()), "Redis at {url} did not answer PING");
    redis
}

/// A minimal blocking RESP client: enough for PING, GET, DEL, KEYS, PTTL and TTL.
struct Resp {
    reader: BufReader<TcpStream>,
}

/// A RESP reply.
#[derive(Debug, PartialEq, Eq)]
enum RespValue {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<String>),
    Array(Vec<RespValue>),
}

impl RespValue {
    fn bulk(self) -> Option<String> {
        match self {
            RespValue::Bulk(value) => value,
            other => panic!("expected a bulk string from Redis, got {other:?}"),
        }
    }

    fn integer(self) -> i64 {
        match self {
            RespValue::Integer(value) => value,
            other => panic!("expected an integer from Redis, got {other:?}"),
        }
    }
}

impl Resp {
    fn connect(addr: &str) -> std::io::Result<Self> {
        let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self { reader: BufReader::new(stream) })
    }

    fn command(&mut self, args: &[&str]) -> RespValue {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.reader.get_mut().write_all(request.as_bytes()).expect("writing to Redis");
        self.read_reply()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("reading from Redis");
        assert!(line.ends_with("\r\n"), "a truncated Redis reply: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read_reply(&mut self) -> RespValue {
        let line = self.read_line();
        let (kind, rest) = line.split_at(1);
        let number = || rest.parse::<i64>().unwrap_or_else(|_| panic!("Redis sent {line:?}"));
        match kind {
            "+" => RespValue::Simple(rest.to_owned()),
            "-" => RespValue::Error(rest.to_owned()),
            ":" => RespValue::Integer(number()),
            "$" if number() < 0 => RespValue::Bulk(None),
            "$" => {
                let mut bytes = vec![0; usize::try_from(number()).expect("a length") + 2];
                std::io::Read::read_exact(&mut self.reader, &mut bytes).expect("a bulk string");
                bytes.truncate(bytes.len() - 2);
                RespValue::Bulk(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            "*" if number() < 0 => RespValue::Array(Vec::new()),
            "*" => RespValue::Array((0..number()).map(|_| self.read_reply()).collect()),
            _ => panic!("an unexpected Redis reply: {line:?}"),
        }
    }
}

/// A `redis-server` of the test's own on `port` (no persistence), killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts it and waits (bounded) until it answers PING.
    fn start(port: u16) -> Self {
        let dir = support::data_dir();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "redis-server is required on PATH for the fallback test ({error}); \
                     scripts/test installs it"
                )
            });
        let mut server = Self { child, port, _dir: dir };
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            if let Ok(mut redis) = Resp::connect(&server.addr())
                && redis.command(&["PING"]) == RespValue::Simple("PONG".into())
            {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not answer PING");
            std::thread::sleep(POLL);
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and waits for it to be gone.
    fn kill(mut self) {
        self.child.kill().expect("killing redis-server");
        self.child.wait().expect("reaping redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's choice, released at once).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("its address").port()
}

/// A number unique to this run (time and process id), for names and ids.
fn run_unique() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    u64::try_from(nanos % (1 << 40)).expect("below 2^40") ^ (u64::from(std::process::id()) << 24)
}

// ---------------------------------------------------------------------------------------
// Gateways, operators and tenants
// ---------------------------------------------------------------------------------------

/// A fresh database, migrated.
async fn migrated_database() -> TestDatabase {
    let db = TestDatabase::create().await;
    let migrated = run_gateway(&["migrate", "--storage", &db.gateway_url()]);
    assert!(migrated.status.success(), "gateway migrate: {}", migrated.stderr);
    db
}

/// `--storage URL` and the shared keys, as every command on the database needs.
fn storage_args(db: &TestDatabase) -> Vec<String> {
    vec!["--storage".into(), db.gateway_url(), SHARED_KEYS[0].into(), SHARED_KEYS[1].into()]
}

/// A gateway process on the database and its (unused, but required) data directory.
struct OnDatabase {
    // Declared first: the process is killed before its directory is removed.
    _gateway: Gateway,
    _dir: tempfile::TempDir,
    api: Api,
}

/// Starts a gateway on the database with `extra` flags and `env`, and waits until ready.
async fn start_on(db: &TestDatabase, extra: &[String], env: &[(&str, String)]) -> OnDatabase {
    let mut args = storage_args(db);
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = support::data_dir();
    let gateway = Gateway::start_with_env(dir.path(), &args, env);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    OnDatabase { _gateway: gateway, _dir: dir, api }
}

/// Owned copies of `args`.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&arg| arg.to_owned()).collect()
}

/// Sends `method path` with an operator's `token` (and no body); returns the status and
/// the JSON body.
async fn as_operator(api: &Api, token: &str, method: Method, path: &str) -> (StatusCode, Value) {
    let reply = api.call(method, path, &[("authorization", token)], Vec::new()).await;
    (reply.status, reply.json())
}

/// Whether `token` still opens an operator route on `api` (200), or is refused (401).
async fn token_works(api: &Api, token: &str) -> bool {
    let (status, body) = as_operator(api, token, Method::GET, "/v1/admin/tenants").await;
    match status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("GET /v1/admin/tenants with an operator token: {other} {body}"),
    }
}

/// The session id (`sid`) and operator (`sub`) in an `Authorization: Bearer JWT` value.
fn token_claims(authorization: &str) -> (String, String) {
    let token = authorization.strip_prefix("Bearer ").expect("a Bearer value");
    let payload = token.split('.').nth(1).expect("a JWT has three segments");
    let json = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).expect("base64url");
    let claims: Value = serde_json::from_slice(&json).expect("JSON claims");
    let text = |name: &str| claims[name].as_str().unwrap_or_else(|| panic!("{claims}")).to_owned();
    (text("sid"), text("sub"))
}

/// Signs `operator` in on `api` and expects a refusal (401).
async fn sign_in_refused(api: &Api, operator: &Operator, why: &str) {
    let (status, body) = api.sign_in(operator).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "sign-in of {} ({why}): {body}",
        operator.username
    );
}

/// The value of the sample `name` (no labels) in a Prometheus/OpenMetrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"))
}

/// `protea_rate_limit_degraded` and `protea_rate_limit_fallback_decisions_total` now.
async fn fallback_metrics(api: &Api) -> (f64, f64) {
    let reply = api.call(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK, "/metrics");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    (
        metric(&text, "protea_rate_limit_degraded"),
        metric(&text, "protea_rate_limit_fallback_decisions_total"),
    )
}

/// One tenant request that the rate limit decides: a GET of an account nobody made (404
/// when allowed). Returns the reply.
async fn tenant_get(api: &Api, auth: &str) -> support::Reply {
    let path = format!("/v1/accounts/{}", support::uuid(0xACC));
    api.call(Method::GET, &path, &[("authorization", auth)], Vec::new()).await
}

/// Whether a tenant request was let through the rate limit; a 429 is checked for its
/// Retry-After (whole seconds, at least 1 and at most `retry_max_s`) and its error code.
fn allowed(reply: &support::Reply, retry_max_s: u64) -> bool {
    match reply.status {
        StatusCode::NOT_FOUND => true,
        StatusCode::TOO_MANY_REQUESTS => {
            let retry = reply.header("retry-after").unwrap_or_else(|| {
                panic!("a 429 without Retry-After: {:?}", reply.headers);
            });
            let seconds: u64 = retry.parse().unwrap_or_else(|_| panic!("Retry-After {retry:?}"));
            assert!((1..=retry_max_s).contains(&seconds), "Retry-After {seconds}");
            assert_eq!(reply.json()["error"]["code"], "rate_limited", "{:?}", reply.body);
            false
        }
        other => panic!("a tenant request answered {other}: {:?}", reply.body),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Sessions in DynamoDB, cached in Redis
// ---------------------------------------------------------------------------------------

/// One item of the sessions table, as the test reads it straight from DynamoDB.
#[derive(Debug)]
struct SessionItem {
    operator_id: String,
    role: String,
    revoked: bool,
    expires_at: u64,
}

/// A direct client of the sessions table on moto (no cache).
async fn dynamo_table(table: &str) -> DynamoSessions {
    DynamoSessions::connect(DynamoSessionsConfig {
        table: table.to_owned(),
        aws: AwsSettings::local(support::moto_url(), support::AWS_REGION),
        redis_url: None,
    })
    .await
    .unwrap_or_else(|error| {
        panic!("a DynamoDB client for moto at {}: {error}", support::moto_url())
    })
}

/// Every item of the table by session id (a strongly consistent scan).
async fn scan_sessions(table: &DynamoSessions) -> std::collections::HashMap<String, SessionItem> {
    let output = table
        .dynamo_client()
        .scan()
        .table_name(table.table())
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|error| panic!("scanning {} on moto: {error:?}", table.table()));
    assert!(output.last_evaluated_key().is_none(), "the test's table fits one scan page");
    output
        .items()
        .iter()
        .map(|item| {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|value| value.as_s().ok())
                    .unwrap_or_else(|| panic!("item without {name}: {item:?}"))
                    .clone()
            };
            let number = |name: &str| {
                item.get(name)
                    .and_then(|value| value.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("item without a number {name}: {item:?}"))
            };
            let revoked = item
                .get("revoked")
                .and_then(|value| value.as_bool().ok())
                .copied()
                .unwrap_or_else(|| panic!("item without revoked: {item:?}"));
            let session = SessionItem {
                operator_id: text("operator_id"),
                role: text("role"),
                revoked,
                expires_at: number("expires_at"),
            };
            (text("session_id"), session)
        })
        .collect()
}

/// What the shared Redis caches for session `sid`, and the key's remaining TTL (s).
fn cached_session(redis: &mut Resp, sid: &str) -> (Option<String>, i64) {
    let key = format!("protea:session:{sid}");
    let value = redis.command(&["GET", &key]).bulk();
    let ttl = redis.command(&["TTL", &key]).integer();
    (value, ttl)
}

/// Checks that the cache holds the tombstone for `sid`, with a TTL of at most 30 s.
fn assert_tombstone(redis: &mut Resp, sid: &str, what: &str) {
    let (value, ttl) = cached_session(redis, sid);
    assert_eq!(value.as_deref(), Some("revoked"), "{what}: the Redis tombstone of the session");
    assert!((1..=30).contains(&ttl), "{what}: the tombstone's TTL is {ttl} s");
}

#[tokio::test]
async fn sessions_in_dynamodb_are_shared_and_revoked_at_once() {
    require_moto();
    let mut redis = require_redis();
    let db = migrated_database().await;
    let storage = storage_args(&db);
    let storage: Vec<&str> = storage.iter().map(String::as_str).collect();
    let root = create_operator("root", "admin", &storage);
    let olive = create_operator("olive", "operator", &storage);
    let dora = create_operator("dora", "auditor", &storage);

    let table_name = format!("protea-it-sessions-{}", run_unique());
    let redis_url = redis_url();
    let flags = strings(&[
        "--sessions-table",
        &table_name,
        "--sessions-table-create",
        "--redis-url",
        &redis_url,
        // Sign-ins from 127.0.0.1 share one global limit in Redis with every other test.
        "--sign-in-per-minute",
        "10000",
    ]);
    let gateway_a = start_on(&db, &flags, &support::aws_env()).await;
    let gateway_b = start_on(&db, &flags, &support::aws_env()).await;
    let (a, b) = (&gateway_a.api, &gateway_b.api);
    let table = dynamo_table(&table_name).await;
    let ttl = table
        .dynamo_client()
        .describe_time_to_live()
        .table_name(&table_name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("DescribeTimeToLive {table_name}: {error:?}"));
    let ttl_attribute = ttl.time_to_live_description().and_then(|d| d.attribute_name());
    assert_eq!(ttl_attribute, Some("expires_at"), "the table made at start expires sessions");

    // A token issued by A works on B: B finds the session in DynamoDB (and caches it).
    let token = a.operator_token(&root).await;
    let (sid, sub) = token_claims(&token);
    assert_eq!(sub, root.id.to_string());
    assert!(token_works(b, &token).await, "A's token on B");
    assert!(token_works(a, &token).await, "A's token on A");
    let items = scan_sessions(&table).await;
    let item = items.get(&sid).unwrap_or_else(|| panic!("session not in DynamoDB: {items:?}"));
    assert_eq!((item.operator_id.as_str(), item.role.as_str()), (sub.as_str(), "admin"));
    assert!(!item.revoked, "{item:?}");
    assert!(item.expires_at > unix_now() + 11 * 3600, "a 12-hour session: {item:?}");
    let (cached, ttl) = cached_session(&mut redis, &sid);
    let cached: Value = serde_json::from_str(cached.as_deref().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("Redis caches the session as JSON: {cached:?}"));
    assert_eq!((&cached["id"], &cached["revoked"]), (&json!(sid), &json!(false)), "{cached}");
    assert!((1..=30).contains(&ttl), "the cached session's TTL is {ttl} s");
    let on_db = connect(&db.conninfo()).await;
    let in_postgres: i64 = on_db
        .query_one("SELECT count(*) FROM operator_sessions", &[])
        .await
        .expect("counting PostgreSQL sessions")
        .get(0);
    assert_eq!(in_postgres, 0, "with DynamoDB configured, no session lives in PostgreSQL");

    // Sign-out on B: A refuses the token at the very next request.
    let (status, body) = as_operator(b, &token, Method::POST, "/v1/operator/sign-out").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "sign-out on B: {body}");
    assert!(!token_works(a, &token).await, "A accepted a token signed out on B");
    assert!(!token_works(b, &token).await, "B accepted a token signed out on B");
    assert!(scan_sessions(&table).await[&sid].revoked, "DynamoDB marks the session revoked");
    assert_tombstone(&mut redis, &sid, "sign-out");

    // An admin on A revokes all of olive's sessions (one from each process): B refuses
    // them at the very next request.
    let admin = a.operator_token(&root).await;
    let olive_on_b = b.operator_token(&olive).await;
    let olive_on_a = a.operator_token(&olive).await;
    for (token, on) in [(&olive_on_b, "B"), (&olive_on_a, "A")] {
        assert!(token_works(a, token).await && token_works(b, token).await, "olive's from {on}");
    }
    let revoke = format!("/v1/admin/operators/{}/sessions", olive.id);
    let (status, body) = as_operator(a, &admin, Method::DELETE, &revoke).await;
    assert_eq!((status, &body["revoked"]), (StatusCode::OK, &json!(2)), "{body}");
    for (token, on) in [(&olive_on_b, "B"), (&olive_on_a, "A")] {
        assert!(!token_works(b, token).await, "B accepted olive's token from {on} after revoke");
        assert!(!token_works(a, token).await, "A accepted olive's token from {on} after revoke");
        let (sid, _) = token_claims(token);
        assert!(scan_sessions(&table).await[&sid].revoked, "olive's session from {on}");
        assert_tombstone(&mut redis, &sid, "an admin's revocation");
    }
    assert!(token_works(b, &admin).await, "the admin's own session is untouched");

    // Dora is signed in on A; an admin disables her on B: her token dies on A at once,
    // and she cannot sign in on either process.
    let dora_token = a.operator_token(&dora).await;
    assert!(token_works(b, &dora_token).await, "dora's token on B");
    let disable = format!("/v1/admin/operators/{}/disable", dora.id);
    let (status, body) = as_operator(b, &admin, Method::POST, &disable).await;
    assert_eq!((status, &body["disabled"]), (StatusCode::OK, &json!(true)), "{body}");
    assert!(!token_works(a, &dora_token).await, "A accepted a disabled operator's token");
    sign_in_refused(a, &dora, "disabled, on A").await;
    sign_in_refused(b, &dora, "disabled, on B").await;
    let items = scan_sessions(&table).await;
    let dora_items: Vec<&SessionItem> =
        items.values().filter(|item| item.operator_id == dora.id.to_string()).collect();
    assert!(
        dora_items.len() == 1 && dora_items[0].revoked,
        "dora has exactly her one revoked session: {dora_items:?}"
    );
    assert_tombstone(&mut redis, &token_claims(&dora_token).0, "disabling dora");

    drop((gateway_a, gateway_b, on_db));
    let _ = table.dynamo_client().delete_table().table_name(&table_name).send().await;
    db.drop_now().await;
}

// ---------------------------------------------------------------------------------------
// 4. Sessions in PostgreSQL when there is no DynamoDB
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_in_postgres_without_dynamodb_are_shared() {
    let db = migrated_database().await;
    let storage = storage_args(&db);
    let storage: Vec<&str> = storage.iter().map(String::as_str).collect();
    let root = create_operator("root", "admin", &storage);
    let gateway_a = start_on(&db, &[], &[]).await;
    let gateway_b = start_on(&db, &[], &[]).await;
    let (a, b) = (&gateway_a.api, &gateway_b.api);

    let token = a.operator_token(&root).await;
    let (sid, _) = token_claims(&token);
    assert!(token_works(b, &token).await, "A's token on B");
    let on_db = connect(&db.conninfo()).await;
    let row = on_db
        .query_opt("SELECT operator_id, revoked FROM operator_sessions WHERE id = $1", &[&sid])
        .await
        .expect("reading operator_sessions")
        .expect("the session is a PostgreSQL row");
    assert_eq!((row.get::<_, String>(0), row.get::<_, bool>(1)), (root.id.to_string(), false));

    let (status, body) = as_operator(a, &token, Method::POST, "/v1/operator/sign-out").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "sign-out on A: {body}");
    assert!(!token_works(b, &token).await, "B accepted a token signed out on A");
    let revoked: bool = on_db
        .query_one("SELECT revoked FROM operator_sessions WHERE id = $1", &[&sid])
        .await
        .expect("reading operator_sessions")
        .get(0);
    assert!(revoked, "the PostgreSQL row is marked revoked");

    drop((gateway_a, gateway_b, on_db));
    db.drop_now().await;
}

// ---------------------------------------------------------------------------------------
// 2. One global rate limit for two processes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_global_rate_limit_is_shared_by_two_processes() {
    let mut redis = require_redis();
    let db = migrated_database().await;
    // Tenant ids restart at 1 in every fresh database, and Redis is shared with every
    // other run: give this run's tenants ids of their own, and clear any leftover state.
    let first_id = (1 << 41) + run_unique();
    let on_db = connect(&db.conninfo()).await;
    on_db
        .batch_execute(&format!("ALTER TABLE tenants ALTER COLUMN id RESTART WITH {first_id}"))
        .await
        .expect("restarting the tenant ids");
    let storage = storage_args(&db);
    let storage: Vec<&str> = storage.iter().map(String::as_str).collect();
    let warmup = create_tenant_with("warmup", &storage);
    let busy = create_tenant_with("busy", &storage);
    let quiet = create_tenant_with("quiet", &storage);
    let rows = on_db.query("SELECT id FROM tenants ORDER BY id", &[]).await.expect("tenants");
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    let first = i64::try_from(first_id).expect("below 2^63");
    assert_eq!(ids, vec![first, first + 1, first + 2], "the tenants' ids");
    let busy_key = format!("protea:rl:{}", first + 1);
    for id in &ids {
        redis.command(&["DEL", &format!("protea:rl:{id}")]);
    }

    let (redis_url, burst) = (redis_url(), BURST.to_string());
    let flags = strings(&[
        "--redis-url",
        &redis_url,
        "--rate-limit-per-second",
        RATE_PER_SECOND,
        "--rate-limit-burst",
        &burst,
    ]);
    let gateway_a = start_on(&db, &flags, &[]).await;
    let gateway_b = start_on(&db, &flags, &[]).await;
    let (a, b) = (&gateway_a.api, &gateway_b.api);

    // Each process connects to Redis in the background; a decision before that is local.
    // Warm up with a tenant of its own until both decide on Redis.
    for (api, name) in [(a, "A"), (b, "B")] {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            tenant_get(api, &warmup).await;
            if fallback_metrics(api).await.0 == 0.0 {
                break;
            }
            assert!(Instant::now() < deadline, "gateway {name} never decided on Redis");
            tokio::time::sleep(POLL).await;
        }
    }
    let fallback_before = [fallback_metrics(a).await.1, fallback_metrics(b).await.1];

    // The busy tenant alternates between A and B: the burst is spent once in all.
    let started = Instant::now();
    let mut accepted = [0_u64; 2];
    let mut refused = [0_u64; 2];
    for i in 0..(3 * BURST) {
        let (api, side) = if i % 2 == 0 { (a, 0) } else { (b, 1) };
        if allowed(&tenant_get(api, &busy).await, 1) {
            accepted[side] += 1;
        } else {
            refused[side] += 1;
        }
    }
    let elapsed = started.elapsed();
    let total = accepted[0] + accepted[1];
    // One more request conforms for each second the loop took (the refill).
    let refill = elapsed.as_secs() + 1;
    assert!(
        (BURST..=BURST + refill).contains(&total),
        "accepted {accepted:?} (A, B) = {total} of {} in {elapsed:?}; expected the burst of \
         {BURST} once across both processes (+{refill} refill), not {BURST} per process",
        3 * BURST
    );
    assert!(accepted.iter().all(|&n| n > 0), "both processes served some: {accepted:?}");
    assert!(refused.iter().all(|&n| n > 0), "both processes refused some: {refused:?}");
    let pttl = redis.command(&["PTTL", &busy_key]).integer();
    assert!(pttl > 0, "the busy tenant's state is in Redis ({busy_key}, PTTL {pttl})");

    // Another tenant is unaffected, on either process.
    for i in 0..4 {
        let api = if i % 2 == 0 { a } else { b };
        assert!(allowed(&tenant_get(api, &quiet).await, 1), "the quiet tenant was limited");
    }
    let fallback_after = [fallback_metrics(a).await.1, fallback_metrics(b).await.1];
    assert_eq!(fallback_after, fallback_before, "every decision was made on Redis");

    drop((gateway_a, gateway_b, on_db));
    for id in &ids {
        redis.command(&["DEL", &format!("protea:rl:{id}")]);
    }
    db.drop_now().await;
}

// ---------------------------------------------------------------------------------------
// 3. Redis away: local limits, said in metrics and logs
// ---------------------------------------------------------------------------------------

/// A gateway on the embedded store at `dir` whose log lines the test reads.
struct Logged {
    process: Spawned,
    api: Api,
}

impl Logged {
    async fn start(dir: &Path, extra: &[&str]) -> Self {
        let dir = dir.to_str().expect("a UTF-8 path");
        let mut args = vec!["--data-dir", dir, "--listen", "127.0.0.1:0", "--threads", "2"];
        args.extend_from_slice(extra);
        let mut process = Spawned::start(&args);
        let Some(line) = process.wait_for_line(Duration::from_secs(20), support::is_listening_line)
        else {
            let stderr = process.kill();
            panic!("the gateway did not log \"listening\" within 20 s; stderr:\n{stderr}");
        };
        let event: Value = serde_json::from_str(&line).expect("a JSON log line");
        let addr = event["fields"]["addr"].as_str().expect("addr").parse().expect("an address");
        let api = Api::http1(addr);
        api.wait_ready().await;
        Self { process, api }
    }

    /// Reads log lines until `count` of them have `message` at `level`; panics (with the
    /// log) when that does not happen within [`WAIT_MAX`].
    fn wait_for_log(&mut self, level: &str, message: &str, count: usize) {
        let deadline = Instant::now() + WAIT_MAX;
        while self.seen_log(level, message) < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let matched = self.process.wait_for_line(left, |line| is_log(line, level, message));
            if matched.is_none() {
                panic!(
                    "fewer than {count} {level} log lines {message:?}; log:\n{}",
                    self.process.seen().join("\n")
                );
            }
        }
    }

    /// How many lines with `message` at `level` the gateway wrote, after 200 ms more of
    /// reading its log.
    fn count_log(&mut self, level: &str, message: &str) -> usize {
        let _ = self.process.wait_for_line(Duration::from_millis(200), |_| false);
        self.seen_log(level, message)
    }

    fn seen_log(&self, level: &str, message: &str) -> usize {
        self.process.seen().iter().filter(|line| is_log(line, level, message)).count()
    }
}

/// Whether a JSON log line has `message` at `level`.
fn is_log(line: &str, level: &str, message: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|event| event["level"] == level && event["fields"]["message"] == message)
}

const WENT_LOCAL: &str = "rate limits: Redis failed, deciding locally until it answers";
const WENT_GLOBAL: &str = "rate limits: Redis answers again, limits are global";

/// Sends `count` tenant requests; returns how many the limit let through.
async fn spend(api: &Api, auth: &str, count: u64) -> u64 {
    let mut accepted = 0;
    for _ in 0..count {
        if allowed(&tenant_get(api, auth).await, 1) {
            accepted += 1;
        }
    }
    accepted
}

#[tokio::test]
async fn rate_limits_fall_back_to_local_while_redis_is_away() {
    let dir = support::data_dir();
    let auth = support::create_tenant(dir.path(), "acme");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let burst = BURST.to_string();
    let flags =
        ["--redis-url", &url, "--rate-limit-per-second", RATE_PER_SECOND, "--rate-limit-burst"];
    let mut flags = flags.to_vec();
    flags.push(&burst);
    let mut gateway = Logged::start(dir.path(), &flags).await;
    let api = gateway.api.clone();

    // Nothing listens on the port: the gateway serves, and limits on its own (the whole
    // burst for this process alone).
    let started = Instant::now();
    let sent = 2 * BURST;
    let accepted = spend(&api, &auth, sent).await;
    let refill = started.elapsed().as_secs() + 1;
    assert!(
        (BURST..=BURST + refill).contains(&accepted),
        "with Redis away the gateway allowed {accepted} of {sent}; expected its local burst"
    );
    let (degraded, fallback) = fallback_metrics(&api).await;
    assert_eq!(degraded, 1.0, "protea_rate_limit_degraded with Redis away");
    assert_eq!(fallback, sent as f64, "every decision was a local fallback");
    spend(&api, &auth, 3).await;
    let (degraded, grown) = fallback_metrics(&api).await;
    assert_eq!((degraded, grown), (1.0, fallback + 3.0), "the fallback counter grows");
    gateway.wait_for_log("WARN", WENT_LOCAL, 1);
    assert_eq!(gateway.count_log("WARN", WENT_LOCAL), 1, "one warn line for the change");

    // Redis comes up on that port: within seconds the gateway is global again, without a
    // single request in between (its background probe pings Redis while degraded).
    let server = RedisServer::start(port);
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if fallback_metrics(&api).await.0 == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "protea_rate_limit_degraded stayed 1 for {WAIT_MAX:?} after Redis came back"
        );
        tokio::time::sleep(POLL).await;
    }
    gateway.wait_for_log("INFO", WENT_GLOBAL, 1);
    let (_, fallback) = fallback_metrics(&api).await;
    assert!(allowed(&tenant_get(&api, &auth).await, 1), "a fresh budget on the new Redis");
    assert_eq!(fallback_metrics(&api).await, (0.0, fallback), "decided on Redis, not locally");
    let mut redis = Resp::connect(&server.addr()).expect("the test's Redis");
    let keys = redis.command(&["KEYS", "protea:rl:*"]);
    let RespValue::Array(keys) = keys else { panic!("KEYS answered {keys:?}") };
    assert_eq!(keys.len(), 1, "the tenant's state (and only it) is in the new Redis: {keys:?}");

    // Redis dies: the very next decision is local again, and says so once more.
    server.kill();
    tenant_get(&api, &auth).await;
    let (degraded, after) = fallback_metrics(&api).await;
    assert_eq!(degraded, 1.0, "protea_rate_limit_degraded right after Redis died");
    assert!(after > fallback, "the decision after Redis died was local");
    gateway.wait_for_log("WARN", WENT_LOCAL, 2);
    assert_eq!(gateway.count_log("WARN", WENT_LOCAL), 2, "a warn line for each change");
    assert_eq!(gateway.count_log("INFO", WENT_GLOBAL), 1, "one info line for the recovery");
}
