//! The local stack (`scripts/stack`) end to end, and the container files' checks.
//!
//! [`stopping_one_gateway_behind_the_balancer_loses_no_acknowledged_transfer`]: `scripts/stack
//! up` in a temporary directory (nginx in front of two gateways on a fresh PostgreSQL
//! database, Redis, moto, Prometheus); a tenant from the CLI; 8 clients sending the
//! workload of [`crate::pg_multi_process`] through nginx; after 150 answered requests
//! gateway-1 gets SIGTERM, and the load goes on for 300 more. Then:
//!
//! 1. gateway-1 drained and exited 0;
//! 2. no client saw a 5xx other than 503 (which it retries with the same ids);
//! 3. every transfer acknowledged through the balancer (`ok` or `exists`) exists exactly
//!    once, with the fields sent, read through gateway-2 and the balancer and in the
//!    database itself; balances equal the acknowledged transfers' sums and debits equal
//!    credits (`pg_multi_process::verify`);
//! 4. `/metrics` is not served through the balancer, Prometheus scraped both gateways;
//! 5. `scripts/stack down` leaves no process of the stack running and drops the database.
//!
//! nginx and Prometheus are required: `scripts/test` installs them (Debian's
//! `nginx-light` and `prometheus`); without them the test fails with a message saying so.
//!
//! [`compose_aws_init_makes_secrets_the_gateway_opens`]: docker-compose.yml's one-shot
//! `aws-init` (run here against moto) makes a keys document the gateway accepts, once.
//!
//! [`container_files_pass_their_linters`] runs `scripts/stack.d/check`: hadolint and
//! checkov on the Dockerfile, actionlint and checkov on the workflows, and the compose
//! file's structure against scripts/stack's topology.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tempfile::TempDir;

use crate::pg_cluster;
use crate::pg_multi_process::{
    Book, Generator, Next, create_accounts, lock, resolve_unknown, send_retrying, verify,
    wait_for_key,
};
use crate::support::{self, Api};

/// The binary under test, which the stack runs instead of building a release one.
const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");
/// Concurrent clients, all through the balancer.
const CLIENTS: u64 = 8;
/// Answered requests before gateway-1 gets SIGTERM.
const ANSWERED_BEFORE_STOP: usize = 150;
/// Answered requests after it, before the load stops.
const ANSWERED_AFTER_STOP: usize = 300;
/// Tries of one request that gets no definitive answer (503, no connection).
const SEND_ATTEMPTS: u32 = 20;
/// Bound on each phase of the load (it normally takes a few seconds).
const LOAD_PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped gateway may take to drain and exit (its drain is 25 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(40);
/// How long Prometheus may take to report both gateways up (it scrapes every 5 s).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Runs `scripts/stack ARGS` to completion.
fn stack_command(args: &[&str]) -> Output {
    Command::new(repo_root().join("scripts/stack"))
        .args(args)
        .env("PROTEA_MOTO_URL", support::moto_url())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running scripts/stack")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A base port P with P+1..=P+3 free too (the stack's four ports).
fn free_base_port() -> u16 {
    for _ in 0..50 {
        let base = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = base.local_addr().expect("a bound address").port();
        if port > 65_530 {
            continue;
        }
        let others: Vec<_> =
            (1..=3).map(|offset| TcpListener::bind(("127.0.0.1", port + offset))).collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no four consecutive free ports found on 127.0.0.1 in 50 tries");
}

/// Whether process `pid` runs (a zombie does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// A stack brought up by `scripts/stack up`, brought down when dropped.
struct Stack {
    dir: TempDir,
    env: HashMap<String, String>,
}

impl Stack {
    fn up() -> Self {
        let dir = tempfile::Builder::new().prefix("protea-stack-").tempdir().expect("a temp dir");
        let path = dir.path().to_str().expect("a UTF-8 path").to_owned();
        let port = free_base_port().to_string();
        let output =
            stack_command(&["up", "--dir", &path, "--port", &port, "--gateway-bin", GATEWAY]);
        let mut stack = Self { dir, env: HashMap::new() };
        assert!(output.status.success(), "scripts/stack up failed: {}", text(&output));
        let env = std::fs::read_to_string(stack.dir.path().join("stack.env"))
            .expect("scripts/stack up writes stack.env");
        stack.env = env
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        stack
    }

    fn value(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|| panic!("stack.env has no {key}"))
    }

    fn addr(&self, key: &str) -> SocketAddr {
        let port: u16 = self.value(key).parse().unwrap_or_else(|_| panic!("{key} is a port"));
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The pid `scripts/stack` recorded for `name`.
    fn pid(&self, name: &str) -> u32 {
        let file = self.dir.path().join(format!("pids/{name}.pid"));
        let pid = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        pid.trim().parse().unwrap_or_else(|_| panic!("{file:?} holds a pid: {pid:?}"))
    }

    /// Every pid the stack recorded.
    fn pids(&self) -> Vec<(String, u32)> {
        let entries = std::fs::read_dir(self.dir.path().join("pids")).expect("the pids dir");
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().strip_suffix(".pid")?.to_owned();
                Some((name.clone(), self.pid(&name)))
            })
            .collect()
    }

    /// Waits for the exit status the stack's supervisor records for `name`.
    async fn exit_status(&self, name: &str) -> String {
        let file = self.dir.path().join(format!("{name}.exit"));
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(status) = std::fs::read_to_string(&file) {
                return status.trim().to_owned();
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!("{name} did not exit within {EXIT_TIMEOUT:?}; its log:\n{}", self.log(name));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn down(&self) -> Output {
        stack_down(self.dir.path())
    }

    /// [`Stack::down`] off the runtime's thread (it waits for the gateways to drain).
    async fn down_async(&self) -> Output {
        let dir = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || stack_down(&dir)).await.expect("scripts/stack down")
    }
}

fn stack_down(dir: &Path) -> Output {
    stack_command(&["down", "--dir", dir.to_str().expect("a UTF-8 path")])
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// One client: sends the workload through the balancer until `stop`, counting answers.
async fn client(
    api: Api,
    auth: String,
    book: Arc<Mutex<Book>>,
    mut generator: Generator,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Next::Send(request) = generator.next(&book) else {
            panic!("the generator of this test sends no races");
        };
        // The balancer may have sent the request to the other gateway after a failed
        // first try: any answer may follow an earlier attempt, so `exists` is allowed.
        send_retrying(&api, &auth, &book, request, true, SEND_ATTEMPTS).await;
        answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until `answered` reaches `target`; panics after [`LOAD_PHASE_TIMEOUT`].
async fn wait_answered(answered: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + LOAD_PHASE_TIMEOUT;
    while answered.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "the load did not reach {target} answered requests within {LOAD_PHASE_TIMEOUT:?} \
             ({} so far)",
            answered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls Prometheus until it reports both gateways' scrape targets up.
async fn wait_scraped(prometheus: SocketAddr) {
    let api = Api::http1(prometheus);
    let deadline = Instant::now() + SCRAPE_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        let reply = api.call(Method::GET, "/api/v1/targets?state=active", &[], Vec::new()).await;
        let body = reply.json();
        let targets = body["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let up = targets.iter().filter(|t| t["health"] == "up").count();
        if targets.len() == 2 && up == 2 {
            return;
        }
        last = body.to_string();
        tokio::time::sleep(POLL_INTERVAL * 10).await;
    }
    panic!("Prometheus did not report both gateways up within {SCRAPE_TIMEOUT:?}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_gateway_behind_the_balancer_loses_no_acknowledged_transfer() {
    let stack = Stack::up();
    assert!(
        !stack.value("PROMETHEUS_PORT").is_empty(),
        "prometheus is required for the stack's test (Debian package `prometheus`; \
         scripts/test installs it)"
    );
    let front = Api::http1(stack.addr("FRONT_PORT"));
    let gateways =
        [Api::http1(stack.addr("GATEWAY_1_PORT")), Api::http1(stack.addr("GATEWAY_2_PORT"))];
    let auth = support::create_tenant_with(
        "stack",
        &["--storage", stack.value("STORAGE_URL"), "--keys-secret", stack.value("KEYS_SECRET")],
    );
    for api in &gateways {
        wait_for_key(api, &auth).await;
    }
    create_accounts(&front, &auth).await;

    // What the balancer serves, and what it does not.
    let metrics = front.call(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(metrics.status, StatusCode::NOT_FOUND, "/metrics through the balancer");
    let direct = gateways[1].call(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(direct.status, StatusCode::OK, "/metrics on the gateway's own port");
    assert!(String::from_utf8_lossy(&direct.body).contains("protea_"), "Prometheus text");
    wait_scraped(stack.addr("PROMETHEUS_PORT")).await;

    let seed = support::seed();
    let book = Arc::new(Mutex::new(Book::default()));
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let generator = Generator::new(seed, 7, n, false);
            let (book, answered, stop) = (book.clone(), answered.clone(), stop.clone());
            tokio::spawn(client(front.clone(), auth.clone(), book, generator, answered, stop))
        })
        .collect();
    wait_answered(&answered, ANSWERED_BEFORE_STOP).await;
    let pid = stack.pid("gateway-1").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
    assert!(sent.success(), "kill -TERM {pid}: {sent}");
    wait_answered(&answered, ANSWERED_BEFORE_STOP + ANSWERED_AFTER_STOP).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }

    let status = stack.exit_status("gateway-1").await;
    let log = stack.log("gateway-1");
    assert_eq!(status, "0", "gateway-1 exits 0 after SIGTERM; its log:\n{log}");
    assert!(log.contains("draining"), "gateway-1 logged its drain:\n{log}");
    // The balancer sent load to both gateways (so gateway-1 was stopped under load).
    let access = std::fs::read_to_string(stack.dir.path().join("nginx-access.log"))
        .expect("nginx's access log");
    for key in ["GATEWAY_1_PORT", "GATEWAY_2_PORT"] {
        let upstream = format!("127.0.0.1:{}", stack.value(key));
        assert!(access.contains(&upstream), "nginx sent no request to {upstream}");
    }
    {
        let book = lock(&book);
        println!(
            "stack: seed {seed}, {} answered; results {:?}; not definitive {:?}; {} unknown",
            answered.load(Ordering::Relaxed),
            book.results,
            book.not_definitive,
            book.unknown.len()
        );
        assert!(
            book.problems.is_empty(),
            "5xx other than 503 through the balancer: {:?}",
            book.problems
        );
    }
    resolve_unknown(&front, &auth, &book, SEND_ATTEMPTS).await;
    let mut config: tokio_postgres::Config =
        pg_cluster::admin_url().parse().expect("PROTEA_TEST_POSTGRES_URL");
    config.dbname(stack.value("DATABASE"));
    let (db, connection) =
        config.connect(tokio_postgres::NoTls).await.expect("connecting to the stack's database");
    tokio::spawn(connection);
    let verified = verify(&[gateways[1].clone(), front.clone()], &auth, &book, &db).await;
    println!(
        "stack: {} acknowledged transfers exist once each (gateway-2, the balancer, the \
         database), {} rejected ones absent, {} posted",
        verified.acknowledged, verified.rejected, verified.posted
    );
    assert!(verified.acknowledged > 0, "the load acknowledged transfers");
    drop(db);

    let pids = stack.pids();
    let database = stack.value("DATABASE").to_owned();
    let down = stack.down_async().await;
    assert!(down.status.success(), "scripts/stack down: {}", text(&down));
    for (name, pid) in pids {
        assert!(!running(pid), "{name} (pid {pid}) still runs after scripts/stack down");
    }
    assert_eq!(stack.exit_status("gateway-2").await, "0", "gateway-2 exits 0 when the stack stops");
    let admin = pg_cluster::connect(&pg_cluster::admin_url()).await;
    let left = admin
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .expect("listing databases");
    assert!(left.is_empty(), "scripts/stack down drops database {database}");
}

#[test]
fn healthcheck_answers_for_livez_and_fails_otherwise() {
    let dir = support::data_dir();
    let gateway = support::Gateway::start(dir.path(), &[]);
    let url = |path: &str| format!("http://{}{path}", gateway.addr());
    let probe = |url: &str| support::run_gateway(&["healthcheck", "--url", url]);
    let live = probe(&url("/livez"));
    assert!(live.status.success(), "healthcheck of /livez: {live:?}");
    let missing = probe(&url("/no-such-route"));
    assert_eq!(missing.status.code(), Some(1), "a 404 is unhealthy: {missing:?}");
    assert!(missing.stderr.contains("404"), "names the answer: {missing:?}");
    let unused = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let closed = format!("http://{}/livez", unused.local_addr().expect("an address"));
    drop(unused);
    let refused = probe(&closed);
    assert_eq!(refused.status.code(), Some(1), "nothing listening: {refused:?}");
    let invalid = probe("https://127.0.0.1/livez");
    assert_eq!(invalid.status.code(), Some(1), "{invalid:?}");
    assert!(invalid.stderr.contains("url must be http://"), "{invalid:?}");
    let (status, _) = gateway.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn container_files_pass_their_linters() {
    let output = Command::new(repo_root().join("scripts/stack.d/check"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running scripts/stack.d/check");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "scripts/stack.d/check failed: {}", text(&output));
}

#[test]
fn compose_aws_init_makes_secrets_the_gateway_opens() {
    let id = |what: &str| format!("protea/it-{}/{what}", std::process::id());
    let (keys, database) = (id("keys"), id("database"));
    let run_init = || {
        Command::new("python3")
            .arg(repo_root().join("scripts/stack.d/compose-aws-init.py"))
            .envs(support::aws_env())
            .env("PROTEA_KEYS_SECRET_ID", &keys)
            .env("PROTEA_DATABASE_SECRET_ID", &database)
            .env("POSTGRES_USER", "postgres")
            .env("POSTGRES_PASSWORD", "local-only-password")
            .output()
            .expect("running python3 compose-aws-init.py (needs boto3 and cryptography, as moto)")
    };
    let first = run_init();
    assert!(first.status.success(), "compose-aws-init.py: {}", text(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains(&format!("created secret {keys}")));
    let again = run_init();
    assert!(again.status.success(), "a second run: {}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(&format!("secret {keys} exists; kept")),
        "a second run keeps the keys: {}",
        text(&again)
    );
    // The keys document it made is one the gateway accepts: a tenant's secret seals with it.
    let dir = support::data_dir();
    let output = Command::new(GATEWAY)
        .args(["tenant", "create", "compose"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--keys-secret", &format!("aws-secretsmanager:{keys}")])
        .envs(support::aws_env())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running gateway tenant create");
    assert!(output.status.success(), "gateway tenant create with the keys: {}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("key_id: pk_"), "{}", text(&output));
}
