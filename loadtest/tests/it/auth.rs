//! Credentials against the fake, which verifies signatures with `crypto::signature`:
//! every kind of request the tester sends verifies (POST bodies, reads, query strings,
//! on the pooled client and on both load lanes), timestamps are the send time, and
//! bearer mode sends the key as today.

use std::time::Duration;

use loadtest::auth::{AuthMode, Credentials};
use loadtest::client::{Client, Http2Slot, Settings};
use loadtest::engine::{Worker, Workload};
use loadtest::workload::{Ids, Mix, Picker};
use loadtest::{Error, runner};
use tokio::time::Instant;

use crate::config;
use crate::fake::{self, Auth, KEY, Mode, Options, Seen, WINDOW_SECONDS};

/// A short run of every ledger kind, with verification.
pub fn ledger_words(url: &str) -> Vec<String> {
    let flags = format!(
        "--target {url} --key {KEY} --rate 400 --duration 500ms --accounts 20 --batch-size 5 \
         --mix single=6,batch=1,authorise=3,linked=1,read_account=1,read_transfer=1,retry=4 \
         --connections 4 --seed 9 --timeout 2s"
    );
    flags.split_whitespace().map(str::to_owned).collect()
}

async fn run(fake: &fake::Fake, extra: &[&str]) -> Result<loadtest::Outcome, Error> {
    let mut words = ledger_words(&fake.url);
    words.extend(extra.iter().map(|w| (*w).to_owned()));
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    loadtest::run(&config(&words)).await
}

/// Every request but `/livez` authenticated as `expected`; none was refused.
pub fn all_authenticated(seen: &[Seen], expected: fn(&Auth) -> bool) {
    let refused: Vec<&Seen> = seen.iter().filter(|s| matches!(s.auth, Auth::Refused(_))).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    for request in seen.iter().filter(|s| s.target != "/livez") {
        assert!(expected(&request.auth), "{request:?}");
    }
}

fn count(seen: &[Seen], method: &str, prefix: &str) -> usize {
    seen.iter().filter(|s| s.method == method && s.target.starts_with(prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_verify_for_posts_and_reads() {
    let fake = fake::start(Mode::Honest).await;
    let outcome = run(&fake, &[]).await.expect("the run completes");
    let verification = outcome.report.verification.expect("verified");
    assert!(verification.passed, "{:?}", verification.violations);
    assert!(!outcome.report.statuses.contains_key("401"), "{:?}", outcome.report.statuses);
    let seen = fake.seen();
    all_authenticated(&seen, |auth| matches!(auth, Auth::Signed { .. }));
    assert_eq!(count(&seen, "POST", "/v1/accounts"), 1, "setup creates the accounts at once");
    assert!(count(&seen, "POST", "/v1/transfers") > 100);
    assert!(count(&seen, "GET", "/v1/accounts/") > 20, "reads and verification");
    assert!(count(&seen, "GET", "/v1/transfers/") > 20, "reads and read-backs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_strings_are_signed_as_sent_on_every_lane() {
    let fake = fake::start(Mode::Honest).await;
    // Not in canonical order (`after` sorts first), with a percent-encoded value.
    let target = "/v1/accounts/0190a1b2-0000-7000-8000-000000000001/transfers?limit=10&after=a%2Fb";
    for http2 in [false, true] {
        let client = client(&fake.url, AuthMode::Signed, http2);
        let pooled = client.get(target).await.expect("the pooled client answers");
        assert_eq!(pooled.status, 200, "pooled, http2 {http2}");
        let mut connection = client.connection(&Http2Slot::default());
        let load = connection.get(target).await.expect("the load's connection answers");
        assert_eq!(load.status, 200, "load lane, http2 {http2}");
    }
    let seen = fake.seen();
    all_authenticated(&seen, |auth| matches!(auth, Auth::Signed { .. }));
    let versions: Vec<_> = seen.iter().filter(|s| s.target == target).map(|s| s.version).collect();
    use hyper::Version;
    assert_eq!(versions, [Version::HTTP_11, Version::HTTP_11, Version::HTTP_2, Version::HTTP_2]);
}

fn client(url: &str, auth: AuthMode, http2: bool) -> Client {
    Client::new(Settings {
        base: url.to_owned(),
        credentials: Some(Credentials::new(KEY, auth).expect("the fake's key")),
        timeout: Duration::from_secs(5),
        connections: 2,
        http2,
        tls: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_carries_the_send_time_not_the_intended_start() {
    let fake = fake::start(Mode::Honest).await;
    let client = client(&fake.url, AuthMode::Signed, false);
    let ids = Ids::new(1, 2);
    let workload = Workload {
        mix: Mix::parse("read_account=1").expect("a mix"),
        seed: 1,
        ledger: 710,
        batch_size: 1,
        ids,
        accounts: runner::account_ids(4, &ids),
        picker: Picker::new(4, 0.0),
    };
    let engine = runner::engine(client, workload, Duration::from_secs(120), 1);
    let late = Duration::from_secs(4 * WINDOW_SECONDS);
    let intended = Instant::now().checked_sub(late).expect("the clock has run that long");
    Worker::new(&engine, 0, &Http2Slot::default()).execute(0, intended).await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].target.starts_with("/v1/accounts/"), "{seen:?}");
    let Auth::Signed { skew } = seen[0].auth else { panic!("not verified: {seen:?}") };
    assert!(skew <= 1, "signed {skew} s away from the fake's clock");
    let recorder = engine.collect(engine.start.elapsed());
    assert!(recorder.overall.histogram.max() >= late.as_micros() as u64, "latency from intended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_mode_sends_the_key_as_a_bearer_token() {
    let fake = fake::start_with(Options { bearer: true, ..Options::default() }).await;
    let outcome = run(&fake, &["--auth", "bearer"]).await.expect("the run completes");
    let verification = outcome.report.verification.expect("verified");
    assert!(verification.passed, "{:?}", verification.violations);
    let seen = fake.seen();
    all_authenticated(&seen, |auth| *auth == Auth::Bearer);
    assert!(count(&seen, "POST", "/v1/transfers") > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_bearer_keys_refuses_bearer_mode() {
    let fake = fake::start(Mode::Honest).await;
    let error = run(&fake, &["--auth", "bearer"]).await.expect_err("the key is refused");
    assert!(matches!(error, Error::KeyRefused), "{error}");
    assert_eq!(error.exit_code(), loadtest::EXIT_UNREACHABLE);
    assert!(fake.seen().iter().any(|s| s.auth == Auth::Refused("bearer".to_owned())));
}
