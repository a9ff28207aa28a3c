//! The PostgreSQL backend under database faults, through the real binary:
//!
//! - `connections_killed_during_flushes_lose_nothing`: every ~50 ms a task terminates
//!   every backend of the gateway's database (`pg_terminate_backend`) while 8 clients
//!   send transfers; the flush reconnects (and asks `pg_xact_status` when COMMIT's answer
//!   was lost).
//! - `postgres_restart_mid_load_loses_nothing`: a private server is stopped (then
//!   started) and later restarted mid-load; `/readyz` turns 503 while it is down and 200
//!   once it is back.
//! - `tls_verifies_the_server_certificate`: with `sslmode=require` the gateway serves
//!   over TLS when given the CA that signed the server's certificate, and never comes up
//!   with the webpki roots or another CA.
//!
//! The clients retry a request whose answer was a 5xx or lost with the SAME ids (bounded,
//! with back-off), as a payment network does; a retry may find its transfers applied
//! (`exists`, `id_already_failed`) but never `exists_with_different_fields`. Afterwards
//! every request has a definitive answer, and the checks of `pg_multi_process::verify`
//! hold: every acknowledged transfer is stored with its fields, none twice, balances
//! equal their histories and the acknowledged sums, money is conserved, and the database
//! holds exactly the acknowledged transfers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::pg_cluster::{self, Cluster, TestDatabase};
use crate::pg_multi_process::{
    Book, Generator, Next, create_accounts, create_tenant, lock, resolve_unknown, send_retrying,
    verify, wait_for_key,
};
use crate::support::{self, Api, Gateway, Rng, SHARED_KEYS, Spawned, uuid};

/// Concurrent clients.
const CLIENTS: u64 = 8;
/// Concurrent readers of acknowledged transfers during the load.
const READERS: usize = 2;
/// Tries of one request before it is left for after the load.
const ATTEMPTS: u32 = 12;
/// How long the connection killer runs.
const KILL_LOAD: Duration = Duration::from_secs(8);
/// Pause between two rounds of `pg_terminate_backend`.
const KILL_EVERY: Duration = Duration::from_millis(50);
/// How long `/readyz` may take to turn 503 once the server is down.
const NOT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/readyz` may take to turn 200 once the server is back.
const READY_AGAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a gateway that must not come up is watched.
const NEVER_UP_WATCH: Duration = Duration::from_secs(6);

/// A client that sends until `stop`, retrying each request on 5xx or a lost answer.
async fn retrying_client(
    api: Api,
    auth: String,
    book: Arc<Mutex<Book>>,
    mut generator: Generator,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let request = match generator.next(&book) {
            Next::Send(request) => request,
            Next::Race(_) => unreachable!("one gateway: no races"),
        };
        send_retrying(&api, &auth, &book, request, false, ATTEMPTS).await;
    }
}

/// Reads acknowledged transfers back while the load runs, until `stop`: each answer
/// must be the record as sent, or 503 (a read is not retried inside the gateway); a 404
/// or any other status is a problem. Returns how many reads got each answer.
async fn reader(
    api: Api,
    auth: String,
    book: Arc<Mutex<Book>>,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let sent = {
            let book = lock(&book);
            let len = book.acknowledged.len();
            (len > 0).then(|| book.acknowledged.values().nth(rng.index(len)).cloned()).flatten()
        };
        let Some(sent) = sent else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let path = format!("/v1/transfers/{}", uuid(sent.id()));
        let kind = match api.send(Method::GET, &path, &[("authorization", &auth)], Vec::new()).await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                if let Some(problem) = sent.mismatch(&reply.json()) {
                    lock(&book).problems.push(format!("read during the load: {problem}"));
                }
                "200".to_owned()
            }
            Ok(reply) if reply.status == StatusCode::SERVICE_UNAVAILABLE => "503".to_owned(),
            Ok(reply) => {
                let body = String::from_utf8_lossy(&reply.body).into_owned();
                lock(&book).problems.push(format!("read during the load: {} {body}", reply.status));
                reply.status.as_u16().to_string()
            }
            Err(_) => "no answer".to_owned(),
        };
        *tally.entry(kind).or_default() += 1;
    }
    tally
}

/// Starts `READERS` readers of `api`.
fn start_readers(
    api: &Api,
    auth: &str,
    book: &Arc<Mutex<Book>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<BTreeMap<String, usize>>> {
    let mut rng = Rng::new(support::seed() ^ 0x5EAD);
    (0..READERS)
        .map(|_| {
            let reader_rng = Rng::new(rng.next_u64());
            let (api, auth, book, stop) =
                (api.clone(), auth.to_owned(), book.clone(), stop.clone());
            tokio::spawn(reader(api, auth, book, reader_rng, stop))
        })
        .collect()
}

/// Waits for the readers and adds up their answers.
async fn join_readers(
    readers: Vec<tokio::task::JoinHandle<BTreeMap<String, usize>>>,
) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for reader in readers {
        let counts = reader.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (kind, count) in counts {
            *tally.entry(kind).or_default() += count;
        }
    }
    tally
}

/// Starts `CLIENTS` retrying clients on `api`.
fn start_load(
    api: &Api,
    auth: &str,
    book: &Arc<Mutex<Book>>,
    test: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let seed = support::seed();
    (0..CLIENTS)
        .map(|client| {
            let generator = Generator::new(seed, test, client, false);
            tokio::spawn(retrying_client(
                api.clone(),
                auth.to_owned(),
                book.clone(),
                generator,
                stop.clone(),
            ))
        })
        .collect()
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
}

/// Fails the test on any answer that was neither definitive nor a 503.
fn assert_no_problems(book: &Mutex<Book>) {
    let book = lock(book);
    for problem in &book.problems {
        println!("unexpected answer: {problem}");
    }
    assert!(
        book.problems.is_empty(),
        "{} answers were 5xx other than 503 (see above)",
        book.problems.len()
    );
}

/// The sum of `protea_db_reconnects_total` over every core.
async fn reconnects_total(api: &Api) -> u64 {
    let reply = api.call(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&reply.body);
    let values: Vec<u64> = text
        .lines()
        .filter(|line| line.starts_with("protea_db_reconnects_total{"))
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or("");
            value.parse::<f64>().unwrap_or_else(|_| panic!("metric line {line:?}")) as u64
        })
        .collect();
    assert!(!values.is_empty(), "no protea_db_reconnects_total in /metrics:\n{text}");
    values.iter().sum()
}

/// The status `/readyz` answers now (`None`: no answer).
async fn readyz(api: &Api) -> Option<StatusCode> {
    api.send(Method::GET, "/readyz", &[], Vec::new()).await.ok().map(|reply| reply.status)
}

/// Polls `/readyz` until it answers `wanted`; returns how long that took, or panics after
/// `timeout` with `what`.
async fn wait_readyz(api: &Api, wanted: StatusCode, timeout: Duration, what: &str) -> Duration {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < timeout {
        last = readyz(api).await;
        if last == Some(wanted) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: /readyz did not answer {wanted} within {timeout:?} (last: {last:?})");
}

/// Prints what the load saw.
fn report(name: &str, book: &Mutex<Book>, elapsed: Duration) {
    let book = lock(book);
    println!(
        "{name}: load for {elapsed:?}: results {:?}; not definitive {:?}; \
         {} requests answered only on a retry",
        book.results, book.not_definitive, book.answered_on_retry
    );
}

#[tokio::test]
async fn connections_killed_during_flushes_lose_nothing() {
    let started = Instant::now();
    let db = TestDatabase::create().await;
    let url = db.gateway_url();
    let auth = create_tenant(&url, "killed", &[]);
    let dir = support::data_dir();
    let gateway = Gateway::start(dir.path(), &["--storage", &url, SHARED_KEYS[0], SHARED_KEYS[1]]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    wait_for_key(&api, &auth).await;
    create_accounts(&api, &auth).await;

    let book = Arc::new(Mutex::new(Book::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load_started = Instant::now();
    let clients = start_load(&api, &auth, &book, 2, &stop);
    let readers = start_readers(&api, &auth, &book, &stop);
    // The killer: every backend of the test database but its own, every ~50 ms.
    let killer_client = pg_cluster::connect(&pg_cluster::admin_url()).await;
    let mut kills = 0u64;
    let mut rounds = 0u64;
    while load_started.elapsed() < KILL_LOAD {
        let rows = killer_client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db.name()],
            )
            .await
            .expect("terminating backends");
        kills += rows.iter().filter(|row| row.get::<_, bool>(0)).count() as u64;
        rounds += 1;
        tokio::time::sleep(KILL_EVERY).await;
    }
    stop.store(true, Ordering::SeqCst);
    join_all(clients).await;
    let reads = join_readers(readers).await;
    let load_elapsed = load_started.elapsed();
    println!("killed {kills} backends in {rounds} rounds; reads during the load: {reads:?}");
    report("connections killed", &book, load_elapsed);
    assert!(kills > 0, "the killer found no backend of the gateway to terminate");

    wait_readyz(&api, StatusCode::OK, READY_AGAIN_TIMEOUT, "after the killing stopped").await;
    let resolved = resolve_unknown(&api, &auth, &book, ATTEMPTS).await;
    assert_no_problems(&book);
    let client = pg_cluster::connect(&db.conninfo()).await;
    let verified = verify(std::slice::from_ref(&api), &auth, &book, &client).await;
    let reconnects = reconnects_total(&api).await;
    println!(
        "verified {} acknowledged transfers, {} rejected ones absent, {} posted \
         ({resolved} requests resolved after the load); protea_db_reconnects_total \
         {reconnects}; {:?} in all",
        verified.acknowledged,
        verified.rejected,
        verified.posted,
        started.elapsed()
    );
    assert!(reconnects > 0, "no flush reconnect was counted although {kills} backends were killed");
    drop(client);
    let (status, stderr) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; stderr:\n{stderr}");
    db.drop_now().await;
}

/// Runs a blocking cluster operation off the runtime's thread, so the clients keep going.
async fn on_cluster(cluster: &Arc<Cluster>, operation: fn(&Cluster)) {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || operation(&cluster))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

#[tokio::test]
async fn postgres_restart_mid_load_loses_nothing() {
    let started = Instant::now();
    let cluster = Arc::new(Cluster::start_new());
    let url = cluster.url();
    let auth = create_tenant(&url, "restarted", &[]);
    let dir = support::data_dir();
    let gateway = Gateway::start(dir.path(), &["--storage", &url, SHARED_KEYS[0], SHARED_KEYS[1]]);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    wait_for_key(&api, &auth).await;
    create_accounts(&api, &auth).await;

    let book = Arc::new(Mutex::new(Book::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load_started = Instant::now();
    let clients = start_load(&api, &auth, &book, 3, &stop);
    let readers = start_readers(&api, &auth, &book, &stop);

    // 1: stop, see /readyz turn 503, start, see it turn 200.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = lock(&book).acknowledged.len();
    on_cluster(&cluster, Cluster::stop).await;
    let down_after = wait_readyz(
        &api,
        StatusCode::SERVICE_UNAVAILABLE,
        NOT_READY_TIMEOUT,
        "with PostgreSQL stopped",
    )
    .await;
    // While it is down, a read answers 503 (retry later), neither hangs nor says 500.
    let path = format!("/v1/accounts/{}", uuid(crate::pg_multi_process::hot(0)));
    let read_started = Instant::now();
    let reply = api.call(Method::GET, &path, &[("authorization", &auth)], Vec::new()).await;
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a read with PostgreSQL down: {body}"
    );
    assert!(body.contains("storage_unavailable"), "{body}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{body}");
    println!("with PostgreSQL down a read answered 503 in {:?}", read_started.elapsed());
    on_cluster(&cluster, Cluster::start).await;
    let up_after =
        wait_readyz(&api, StatusCode::OK, READY_AGAIN_TIMEOUT, "after PostgreSQL started again")
            .await;
    println!(
        "stop/start: {before} transfers acknowledged before; /readyz 503 after {down_after:?}, \
         200 again {up_after:?} after the start"
    );

    // 2: `pg_ctl restart -m fast` mid-load, then /readyz must be 200 again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = lock(&book).acknowledged.len();
    on_cluster(&cluster, Cluster::restart).await;
    let up_after =
        wait_readyz(&api, StatusCode::OK, READY_AGAIN_TIMEOUT, "after pg_ctl restart").await;
    println!("restart: {before} transfers acknowledged before; /readyz 200 {up_after:?} after it");

    // Some load on the restarted server, then stop.
    let at_restart = lock(&book).acknowledged.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while lock(&book).acknowledged.len() <= at_restart && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    join_all(clients).await;
    let reads = join_readers(readers).await;
    report("postgres restarted", &book, load_started.elapsed());
    println!("reads during the load: {reads:?}");
    assert!(
        lock(&book).acknowledged.len() > at_restart,
        "no transfer was acknowledged after the restart"
    );

    let resolved = resolve_unknown(&api, &auth, &book, ATTEMPTS).await;
    assert_no_problems(&book);
    let client = pg_cluster::connect(&cluster.socket_conninfo()).await;
    let verified = verify(std::slice::from_ref(&api), &auth, &book, &client).await;
    let reconnects = reconnects_total(&api).await;
    println!(
        "verified {} acknowledged transfers, {} rejected ones absent, {} posted \
         ({resolved} requests resolved after the load); protea_db_reconnects_total \
         {reconnects}; {:?} in all",
        verified.acknowledged,
        verified.rejected,
        verified.posted,
        started.elapsed()
    );
    drop(client);
    let (status, stderr) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; stderr:\n{stderr}");
}

/// Whether `text` reports a failed TLS handshake. (The gateway's message does not say
/// why: tokio-postgres's `Display` leaves out the rustls cause, `UnknownIssuer`.)
fn refused_by_tls(text: &str) -> bool {
    text.to_ascii_lowercase().contains("tls handshake")
}

#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    let started = Instant::now();
    let cluster = Cluster::start_new_tls();
    let url = format!("postgres://postgres@localhost:{}/postgres?sslmode=require", cluster.port());
    let ca = cluster.ca_file().to_str().expect("a UTF-8 path").to_owned();
    let other_ca = cluster.other_ca_file().to_str().expect("a UTF-8 path").to_owned();

    // Without the right CA nothing connects: `migrate` fails at once...
    for (what, extra) in
        [("the webpki roots", vec![]), ("another CA", vec!["--database-ca-file", &other_ca])]
    {
        let mut args = vec!["migrate", "--storage", &url];
        args.extend_from_slice(&extra);
        let finished = support::run_gateway(&args);
        assert!(
            !finished.status.success(),
            "gateway migrate with {what} succeeded: {}",
            finished.stdout
        );
        assert!(
            refused_by_tls(&finished.stderr),
            "gateway migrate with {what}: the error should name the TLS handshake:\n{}",
            finished.stderr
        );
    }
    // ...and a gateway exits at once, naming the certificate, rather than waiting out the
    // start-up deadline as it would for an unreachable database.
    for (what, extra) in
        [("the webpki roots", vec![]), ("another CA", vec!["--database-ca-file", &other_ca])]
    {
        let mut args = vec!["--storage", &url, "--listen", "127.0.0.1:0", "--threads", "1"];
        args.extend_from_slice(&SHARED_KEYS);
        args.extend_from_slice(&extra);
        let mut gateway = Spawned::start(&args);
        let line = gateway.wait_for_line(NEVER_UP_WATCH, |line| {
            line.contains("gateway failed") || support::is_listening_line(line)
        });
        let line = line.unwrap_or_else(|| {
            let seen = gateway.seen().join("\n");
            panic!(
                "the gateway with {what} neither failed nor listened in {NEVER_UP_WATCH:?}:\n{seen}"
            )
        });
        assert!(!support::is_listening_line(&line), "the gateway with {what} came up: {line}");
        assert!(line.contains("invalid peer certificate"), "with {what}: {line}");
        let deadline = Instant::now() + NEVER_UP_WATCH;
        let status = loop {
            match gateway.try_status() {
                Some(status) => break status,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                None => panic!("the gateway with {what} logged its failure but did not exit"),
            }
        };
        assert!(!status.success(), "the gateway with {what} exited with {status}");
        let _ = gateway.kill();
    }

    // With the CA that signed it: a tenant, a gateway, a transfer, all over TLS.
    let auth = create_tenant(&url, "tls", &["--database-ca-file", &ca]);
    let dir = support::data_dir();
    let gateway = Gateway::start(
        dir.path(),
        &["--storage", &url, "--database-ca-file", &ca, SHARED_KEYS[0], SHARED_KEYS[1]],
    );
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    wait_for_key(&api, &auth).await;
    create_accounts(&api, &auth).await;
    let transfer = json!({
        "id": uuid(0x7115_0001),
        "debit_account_id": uuid(crate::pg_multi_process::hot(0)),
        "credit_account_id": uuid(crate::pg_multi_process::hot(1)),
        "amount": 125,
        "ledger": crate::pg_multi_process::LEDGER,
        "code": crate::pg_multi_process::CODE,
    });
    let (status, body) = api.post_json("/v1/transfers", &auth, transfer).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{body}");
    let (status, body) = api.get_json(&format!("/v1/transfers/{}", uuid(0x7115_0001)), &auth).await;
    assert_eq!((status, &body["amount"]), (StatusCode::OK, &json!(125)), "{body}");

    // Every TCP session the server has (all the gateway's) is encrypted.
    let client = pg_cluster::connect(&cluster.socket_conninfo()).await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL",
            &[],
        )
        .await
        .expect("reading pg_stat_ssl");
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    println!(
        "TLS: {encrypted} encrypted sessions from the gateway, {plain} plain; {:?} in all",
        started.elapsed()
    );
    assert!(encrypted > 0, "no TLS session from the gateway in pg_stat_ssl");
    assert_eq!(plain, 0, "a plain-text TCP session although the URL says sslmode=require");
    drop(client);
    let (status, stderr) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; stderr:\n{stderr}");
}
