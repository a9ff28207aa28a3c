//! The observability contract end to end: the metrics the dashboards and alerts read
//! exist with the names and labels they use, against a real Prometheus (the Debian
//! package; `PROTEA_TEST_PROMETHEUS_BIN` names another binary) scraping a real gateway.
//! A missing Prometheus fails the test with a message saying how to install it; it never
//! skips.
//!
//! - [`every_dashboard_and_rule_query_returns_series`]: a gateway on a fresh PostgreSQL
//!   database (so the pool and row metrics exist) under a short load of signed transfers,
//!   reads, ledger rejections, 4xx, refused signatures and a rate-limited sign-in;
//!   Prometheus scrapes it every second with `dashboards/prometheus/rules.yml` and
//!   `alerts.yml` loaded. Then every PromQL expression of `dashboards/grafana/protea.json`
//!   (template variables substituted), every recording rule (its expression and the
//!   series it records) and every alert's operands go through `/api/v1/query`; the test
//!   fails naming each one that errs or returns no series.
//! - [`audit_chain_ok_turns_0_when_the_trail_is_tampered`] (both stores): the background
//!   verification sets `protea_audit_chain_ok 1` and a timestamp; one record changed
//!   around the store (the POPIA tests' tamperer) turns it to 0 and counts a `broken`
//!   verification.
//!
//! Every wait polls with a bound and says what did not happen; nothing is timed.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::pg_cluster::TestDatabase;
use crate::popia_site::{self as popia, Backend, Site};
use crate::support::{self, Api, Gateway, SHARED_KEYS, uuid};

/// Bound on every wait for Prometheus or a background job.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(250);
/// What `$__rate_interval` and `$__interval` stand for when the dashboard's queries run
/// here (wide enough to hold several 1 s scrapes of the load).
const RATE_INTERVAL: &str = "1m";
/// Ledger of every account here.
const LEDGER: u64 = 840;

/// The repository's `dashboards/` directory.
fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("dashboards")
}

// ---------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------

/// The Prometheus binary: `PROTEA_TEST_PROMETHEUS_BIN` or `prometheus` on PATH; panics
/// with how to get it when it does not run.
fn prometheus_bin() -> String {
    let bin = std::env::var("PROTEA_TEST_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    match Command::new(&bin).arg("--version").output() {
        Ok(output) if output.status.success() => bin,
        Ok(output) => panic!("{bin} --version exited with {}", output.status),
        Err(error) => panic!(
            "Prometheus is required for this test ({bin}: {error}); run scripts/test, which \
             installs the Debian package prometheus, or set PROTEA_TEST_PROMETHEUS_BIN"
        ),
    }
}

/// A Prometheus process on its own temporary directory, killed when dropped.
struct Prometheus {
    child: Child,
    api: Api,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second (job `protea`) and evaluating
    /// the repository's rules every second; returns once `/-/ready` answers 200.
    async fn start(target: SocketAddr) -> Self {
        let bin = prometheus_bin();
        let dir = support::data_dir();
        let rules = dashboards_dir().join("prometheus");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n  - {}\n\
             scrape_configs:\n  - job_name: protea\n    static_configs:\n      - targets: ['{target}']\n",
            rules.join("rules.yml").display(),
            rules.join("alerts.yml").display(),
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("writing prometheus.yml");
        // Prometheus cannot listen on port 0: take a free port from the kernel and hand
        // it over (another process could take it meanwhile; then Prometheus exits and
        // the wait below says so).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {bin}: {error}"));
        let mut prometheus = Self { child, api: Api::http1(addr), _dir: dir };
        prometheus.wait_ready().await;
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT_MAX;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Prometheus exited with {status}; its log:\n{}", self.log());
            }
            if let Ok(reply) = self.api.send(Method::GET, "/-/ready", &[], Vec::new()).await
                && reply.status == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("Prometheus was not ready within {WAIT_MAX:?}; its log:\n{}", self.log());
    }

    /// Evaluates `expr` now: the result's JSON (`data`), or what went wrong.
    async fn query(&self, expr: &str) -> Result<Value, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let reply = self.api.send(Method::GET, &path, &[], Vec::new()).await?;
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|error| format!("status {}: not JSON ({error})", reply.status))?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].clone())
    }

    /// The samples of `expr` now (`Err` when it errs or is not an instant vector).
    async fn vector(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.query(expr).await?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            other => Err(format!("a {other:?}, not an instant vector")),
        }
    }

    /// Polls until `expr` has a sample whose value satisfies `wanted`; panics after
    /// [`WAIT_MAX`] naming `what`.
    async fn wait_for(&self, expr: &str, what: &str, wanted: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + WAIT_MAX;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self.vector(expr).await {
                Ok(samples) if samples.iter().any(|s| wanted(sample_value(s))) => return,
                Ok(samples) => last = format!("{samples:?}"),
                Err(error) => last = error,
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("Prometheus: {what} ({expr}) within {WAIT_MAX:?}; last: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample_value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// `application/x-www-form-urlencoded`-safe percent-encoding of a query parameter.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The expressions under test
// ---------------------------------------------------------------------------------------

/// Every query of the Grafana dashboard, named by panel, with its template variables
/// substituted: `$instance` and `$route` by `.*` (the "All" value), the interval
/// variables by [`RATE_INTERVAL`]. The `label_values(SELECTOR, label)` of the query
/// variables contribute their selector.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = dashboards_dir().join("grafana").join("protea.json");
    let text = std::fs::read_to_string(&path).expect("reading dashboards/grafana/protea.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let substitute = |expr: &str| {
        expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$__interval", RATE_INTERVAL)
            .replace("$instance", ".*")
            .replace("$route", ".*")
    };
    let mut queries = Vec::new();
    for variable in dashboard["templating"]["list"].as_array().expect("template variables") {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.rsplit_once(','))
                .map(|(selector, _)| selector.trim())
                .unwrap_or_else(|| {
                    panic!("variable {}: not label_values: {query}", variable["name"])
                });
            queries.push((format!("variable {}", variable["name"]), substitute(inner)));
        }
    }
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            queries.push((format!("panel {}", panel["title"]), substitute(expr)));
        }
    }
    assert!(queries.len() > 20, "the dashboard's queries were found: {queries:?}");
    queries
}

/// A rule of a Prometheus rule file.
#[derive(serde::Deserialize)]
struct Rule {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
}

#[derive(serde::Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

fn rules_of(file: &str) -> Vec<Rule> {
    let path = dashboards_dir().join("prometheus").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let parsed: RuleFile =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file} is not a rule file: {e}"));
    parsed.groups.into_iter().flat_map(|group| group.rules).collect()
}

/// The recording rules: each expression, and each recorded name (Prometheus must have
/// recorded it).
fn recording_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for rule in rules_of("rules.yml") {
        let record = rule.record.expect("rules.yml holds recording rules only");
        queries.push((format!("recording rule {record}"), rule.expr.clone()));
        queries.push((format!("recorded series {record}"), record));
    }
    queries
}

/// The alert rules' operands. An alert expression is a condition that correctly returns
/// nothing while the gateway is healthy (`protea_ready == 0`, a burn rate over its
/// threshold), so "no series" from it would prove nothing. What must return series is
/// each side of its comparisons and set operators: the underlying metric or ratio. So
/// each expression is split at the comparison (`== != > < >= <=`) and set (`and or
/// unless`) operators outside brackets, recursively through enclosing parentheses;
/// `absent(X)` contributes `X`; numeric literals are left out. Then "no series" means a
/// broken metric name or label matcher.
fn alert_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for rule in rules_of("alerts.yml") {
        let alert = rule.alert.expect("alerts.yml holds alert rules only");
        let mut operands = Vec::new();
        split_operands(&rule.expr, &mut operands);
        assert!(!operands.is_empty(), "{alert}: no operand in {}", rule.expr);
        for operand in operands {
            queries.push((format!("alert {alert} operand"), operand));
        }
    }
    queries
}

/// Pushes the operands of `expr` (see [`alert_queries`]).
fn split_operands(expr: &str, out: &mut Vec<String>) {
    let expr = strip_modifiers(expr.trim());
    if let Some(inner) = enclosed(expr, "absent(") {
        return split_operands(inner, out);
    }
    if let Some(inner) = enclosed(expr, "(") {
        return split_operands(inner, out);
    }
    let parts = split_top_level(expr);
    if parts.len() == 1 {
        let operand = parts[0].trim();
        let literal = operand.chars().all(|c| c.is_ascii_digit() || " .*+-/()".contains(c));
        if !literal {
            out.push(operand.to_owned());
        }
        return;
    }
    for part in parts {
        split_operands(&part, out);
    }
}

/// `expr` without leading vector-matching modifiers (`on (..)`, `ignoring (..)`,
/// `group_left (..)`, `group_right (..)`, `bool`), which belong to the operator before.
fn strip_modifiers(mut expr: &str) -> &str {
    loop {
        let before = expr;
        for keyword in ["on", "ignoring", "group_left", "group_right"] {
            if let Some(rest) = expr.strip_prefix(keyword) {
                let rest = rest.trim_start();
                if let Some(rest) = rest.strip_prefix('(') {
                    if let Some(close) = rest.find(')') {
                        expr = rest[close + 1..].trim_start();
                    }
                } else if keyword.starts_with("group") {
                    expr = rest;
                }
            }
        }
        if let Some(rest) = expr.strip_prefix("bool ") {
            expr = rest.trim_start();
        }
        if expr == before {
            return expr;
        }
    }
}

/// The inside of `expr` when it is `prefix ... )` with the closing bracket matching the
/// opening one of `prefix`.
fn enclosed<'a>(expr: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = expr.strip_prefix(prefix)?;
    let mut depth = 1usize;
    let mut quoted = false;
    for (at, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' | '{' | '[' if !quoted => depth += 1,
            ')' | '}' | ']' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return (at == rest.len() - 1).then(|| &rest[..at]);
                }
            }
            _ => {}
        }
    }
    None
}

/// `expr` split at comparison and set operators outside brackets and quotes.
fn split_top_level(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let (mut parts, mut start, mut depth, mut quoted, mut at) = (Vec::new(), 0, 0i32, false, 0);
    while at < bytes.len() {
        let c = bytes[at];
        let mut operator_len = 0;
        match c {
            b'"' => quoted = !quoted,
            b'(' | b'{' | b'[' if !quoted => depth += 1,
            b')' | b'}' | b']' if !quoted => depth -= 1,
            _ if quoted || depth > 0 => {}
            b'=' | b'!' | b'>' | b'<' if bytes.get(at + 1) == Some(&b'=') => operator_len = 2,
            b'>' | b'<' => operator_len = 1,
            _ => {
                for word in ["and", "or", "unless"] {
                    let ends = at + word.len();
                    let boundary = |i: Option<&u8>| i.is_none_or(|b| b.is_ascii_whitespace());
                    if expr[at..].starts_with(word)
                        && (at == 0 || bytes[at - 1].is_ascii_whitespace())
                        && boundary(bytes.get(ends))
                    {
                        operator_len = word.len();
                    }
                }
            }
        }
        if operator_len > 0 {
            parts.push(expr[start..at].to_owned());
            start = at + operator_len;
            at = start;
        } else {
            at += 1;
        }
    }
    parts.push(expr[start..].to_owned());
    parts
}

// ---------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------

fn account(id: u128, flags: &[&str]) -> Value {
    json!({"id": uuid(id), "ledger": LEDGER, "code": 1, "flags": flags})
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Value {
    json!({"id": uuid(id), "debit_account_id": uuid(debit), "credit_account_id": uuid(credit),
           "amount": amount, "ledger": LEDGER, "code": 1})
}

/// Accounts 1 to 20 (20 limited to its credits), then `transfers` single transfers from 8
/// concurrent clients (every tenth from the limited account: `exceeds_credits`; every
/// fifteenth to an unknown account), a read of each, reads of unknown transfers (404),
/// a malformed body (400), a broken signature (401) and two sign-ins from one address
/// against a limit of one a minute (401, then 429). Returns the transfers POSTed.
async fn drive_load(api: &Api, auth: &str, transfers: u64) -> u64 {
    let mut accounts: Vec<Value> = (1..20).map(|id| account(id, &[])).collect();
    accounts.push(account(20, &["debits_must_not_exceed_credits"]));
    let (status, body) = api.post_json("/v1/accounts", auth, Value::Array(accounts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let clients = 8u64;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (api, auth) = (api.clone(), auth.to_owned());
            tokio::spawn(async move {
                let mut id = 1000 + client;
                while id < 1000 + transfers {
                    let n = u128::from(id);
                    let debit = if id % 10 == 0 { 20 } else { 1 + n % 19 };
                    let credit = if id % 15 == 0 { 999 } else { 1 + (n + 7) % 19 };
                    let credit = if credit == debit { 1 + (credit % 19) } else { credit };
                    let (status, body) =
                        api.post_json("/v1/transfers", &auth, transfer(n, debit, credit, 5)).await;
                    assert!(status.is_success() || status.is_client_error(), "{status}: {body}");
                    let (status, _) =
                        api.get_json(&format!("/v1/transfers/{}", uuid(n)), &auth).await;
                    assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND);
                    id += clients;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    for id in 0..10u128 {
        let (status, _) =
            api.get_json(&format!("/v1/transfers/{}", uuid(900_000 + id)), auth).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let headers = [("authorization", auth)];
    let reply = api.call(Method::POST, "/v1/transfers", &headers, b"{not json".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a malformed body");
    let raw = api.clone().bearer();
    let forged = [("authorization", "Bearer pk_unknown.not-a-secret")];
    let path = format!("/v1/transfers/{}", uuid(1000));
    let reply = raw.call(Method::GET, &path, &forged, Vec::new()).await;
    assert!(reply.status.is_client_error(), "a forged key: {}", reply.status);
    let sign_in = json!({"username": "nobody", "password": "wrong", "code": "000000"});
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let body = serde_json::to_vec(&sign_in).expect("JSON");
        statuses.push(api.call(Method::POST, "/v1/operator/sign-in", &[], body).await.status);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    transfers
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// See the module doc.
#[tokio::test]
async fn every_dashboard_and_rule_query_returns_series() {
    let db = TestDatabase::create().await;
    let url = db.gateway_url();
    let dir = support::data_dir();
    let auth = crate::pg_multi_process::create_tenant(&url, "acme", &[]);
    let flags = [
        "--storage",
        &url,
        SHARED_KEYS[0],
        SHARED_KEYS[1],
        "--sign-in-per-minute",
        "1",
        "--audit-verify-interval-seconds",
        "1",
    ];
    let gateway = Gateway::start(dir.path(), &flags);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let prometheus = Prometheus::start(gateway.addr()).await;
    prometheus.wait_for("up{job=\"protea\"}", "the gateway scraped and up", |v| v == 1.0).await;

    let posted = drive_load(&api, &auth, 400).await as f64;
    // Every series the load created has at least two samples (so rate() over it has a
    // value) once two scrapes started after the load ended.
    let ended_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64();
    let scraped = "timestamp(up{job=\"protea\"})";
    prometheus.wait_for(scraped, "two scrapes after the load", |at| at >= ended_s + 2.5).await;
    let transfers =
        "sum(protea_http_request_duration_seconds_count{route=\"/v1/transfers\",method=\"POST\"})";
    prometheus.wait_for(transfers, "every POSTed transfer scraped", |v| v >= posted).await;
    let recorded = "protea:slo_latency_bad:ratio_rate5m";
    prometheus.wait_for(recorded, "the SLO recording rules evaluated", f64::is_finite).await;
    prometheus.wait_for("protea_ready", "protea_ready 1", |v| v == 1.0).await;
    prometheus.wait_for("protea_audit_chain_ok", "the chain verified intact", |v| v == 1.0).await;
    let verified = "protea_audit_chain_verified_timestamp_seconds";
    prometheus.wait_for(verified, "a verification time", |v| v > 1.6e9).await;
    let limited = "protea_rate_limited_total{kind=\"sign_in\"}";
    prometheus.wait_for(limited, "the rate-limited sign-in scraped", |v| v >= 1.0).await;

    let queries: Vec<(String, String)> =
        dashboard_queries().into_iter().chain(recording_queries()).chain(alert_queries()).collect();
    let mut failures = Vec::new();
    for (source, expr) in &queries {
        match prometheus.query(expr).await {
            Err(error) => failures.push(format!("{source}: {expr}\n    error: {error}")),
            Ok(data) if data["resultType"] == "scalar" => {}
            Ok(data) if data["result"].as_array().is_some_and(|r| !r.is_empty()) => {}
            Ok(data) => failures.push(format!("{source}: {expr}\n    no series: {data}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
    drop(prometheus);
    let (status, stderr) = gateway.terminate();
    assert!(status.success(), "the gateway exits 0: {stderr}");
    db.drop_now().await;
}

/// The value of the unlabelled metric `name` in the gateway's `/metrics`.
async fn metric(api: &Api, name: &str) -> Option<f64> {
    let reply = api.call(Method::GET, "/metrics", &[], Vec::new()).await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `/metrics` until `name` satisfies `wanted`.
async fn wait_metric(api: &Api, name: &str, wanted: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + WAIT_MAX;
    let mut last = None;
    while Instant::now() < deadline {
        last = metric(api, name).await;
        if last.is_some_and(&wanted) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{name} did not reach the wanted value within {WAIT_MAX:?}; last: {last:?}");
}

/// See the module doc.
async fn audit_chain_ok_turns_0_when_the_trail_is_tampered(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let flags = ["--audit-verify-interval-seconds", "1"];
    let api = site.start(&flags).await;
    assert_eq!(metric(&api, "protea_ready").await, Some(1.0), "ready");
    assert_eq!(metric(&api, "protea_audit_verify_interval_seconds").await, Some(1.0));
    // Host commands leave no record, so this subject's creation is the trail's record 1.
    popia::create_subject(&api, &acme, &json!({"full_name": "Thandi Mokoena"})).await;
    wait_metric(&api, "protea_audit_chain_verified_timestamp_seconds", |v| v > 1.6e9).await;
    wait_metric(&api, "protea_audit_chain_ok", |v| v == 1.0).await;
    assert_eq!(metric(&api, "protea_audit_queue_lag_seconds").await, Some(0.0), "none waits");

    let api = match backend {
        Backend::Postgres => {
            popia::tamper(&site, 1, "pi.create", "pi.delete").await;
            api
        }
        Backend::Embedded => {
            site.stop();
            popia::tamper(&site, 1, "pi.create", "pi.delete").await;
            site.start(&flags).await
        }
    };
    wait_metric(&api, "protea_audit_chain_ok", |v| v == 0.0).await;
    let broken = "protea_audit_chain_verifications_total{outcome=\"broken\"}";
    wait_metric(&api, broken, |v| v >= 1.0).await;
    site.close().await;
}

mod embedded {
    #[tokio::test]
    async fn audit_chain_ok_turns_0_when_the_trail_is_tampered() {
        super::audit_chain_ok_turns_0_when_the_trail_is_tampered(super::Backend::Embedded).await;
    }
}

mod postgres {
    #[tokio::test]
    async fn audit_chain_ok_turns_0_when_the_trail_is_tampered() {
        super::audit_chain_ok_turns_0_when_the_trail_is_tampered(super::Backend::Postgres).await;
    }
}

#[test]
fn alert_expressions_split_into_their_operands() {
    let mut operands = Vec::new();
    split_operands(
        "(\n  a:rate1h > (14.4 * 0.01)\n  and\n  a:rate5m > (14.4 * 0.01)\n)\nor\n(b > 6)",
        &mut operands,
    );
    assert_eq!(operands, ["a:rate1h", "a:rate5m", "b"]);
    operands.clear();
    split_operands("x{a=~\"b|c\", d!=\"e\"} == 0\nand on (instance)\ny > 0", &mut operands);
    assert_eq!(operands, ["x{a=~\"b|c\", d!=\"e\"}", "y"]);
    operands.clear();
    split_operands("absent(up{job=\"protea\"} == 1)", &mut operands);
    assert_eq!(operands, ["up{job=\"protea\"}"]);
    operands.clear();
    split_operands("max by (i) (q)\n/ on (i)\nmax by (i) (m)\n> 0.8", &mut operands);
    assert_eq!(operands, ["max by (i) (q)\n/ on (i)\nmax by (i) (m)"]);
}
