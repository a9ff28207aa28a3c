//! Verification against the fake: honest passes; a dropped acknowledged transfer and a
//! retried id applied twice both fail, naming the id.

use loadtest::EXIT_VERIFICATION;

use crate::config;
use crate::fake::{self, KEY, Mode};

const MIX: &str = "single=6,batch=1,authorise=3,linked=1,read_account=1,read_transfer=1,retry=4";

fn words(url: &str) -> Vec<String> {
    let flags = format!(
        "--target {url} --key {KEY} --rate 400 --duration 500ms --accounts 20 --batch-size 5 \
         --mix {MIX} --connections 4 --seed 9 --timeout 500ms"
    );
    flags.split_whitespace().map(str::to_owned).collect()
}

async fn run(mode: Mode) -> (fake::Fake, loadtest::Outcome) {
    let fake = fake::start(mode).await;
    let words = words(&fake.url);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let outcome = loadtest::run(&config(&words)).await.expect("the run completes");
    (fake, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_server_passes() {
    let (_, outcome) = run(Mode::Honest).await;
    let verification = outcome.report.verification.clone().unwrap();
    assert!(verification.passed, "{:?}", verification.violations);
    assert!(verification.checked > 200);
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.report.requests, outcome.report.overall.requests);
    assert!(outcome.report.kinds.contains_key("retry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acknowledged_transfer_fails_naming_it() {
    let (fake, outcome) = run(Mode::DropAcknowledged(60)).await;
    let dropped = fake.faulted();
    assert_eq!(dropped.len(), 1);
    let verification = outcome.report.verification.unwrap();
    assert!(!verification.passed);
    assert_eq!(outcome.exit_code, EXIT_VERIFICATION);
    assert!(verification.violations.iter().any(|v| v.contains(&dropped[0])), "{verification:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_id_applied_twice_fails() {
    let (fake, outcome) = run(Mode::DoubleApplyRetries).await;
    assert!(!fake.faulted().is_empty(), "the workload retried something");
    let verification = outcome.report.verification.unwrap();
    assert!(!verification.passed);
    assert_eq!(outcome.exit_code, EXIT_VERIFICATION);
    let twice = fake.faulted();
    let named = |v: &String| twice.iter().any(|id| v.contains(id.as_str()));
    assert!(verification.violations.iter().any(named), "{verification:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_4_on_violation_and_2_on_refused_key() {
    let fake = fake::start(Mode::DropAcknowledged(60)).await;
    let mut args = words(&fake.url);
    let code = tokio::task::spawn_blocking(move || binary(&args)).await.unwrap();
    assert_eq!(code, Some(4));
    args = words(&fake.url);
    let key = args.iter().position(|w| w == KEY).unwrap();
    args[key] = format!("pk_wrong.{}", "0".repeat(64));
    let code = tokio::task::spawn_blocking(move || binary(&args)).await.unwrap();
    assert_eq!(code, Some(2));
}

fn binary(args: &[String]) -> Option<i32> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .env_remove("PROTEA_KEY")
        .output()
        .expect("running the loadtest binary");
    output.status.code()
}

#[tokio::test]
async fn unreachable_target_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error =
        loadtest::run(&config(&["--target", &url, "--mix", "livez=1", "--duration", "100ms"]))
            .await
            .unwrap_err();
    assert!(error.to_string().starts_with(&format!("cannot connect to {url}")), "{error}");
    assert_eq!(error.exit_code(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcome_is_resolved_by_resending() {
    let (fake, outcome) = run(Mode::SlowAnswer(60)).await;
    assert_eq!(fake.faulted().len(), 1);
    assert!(outcome.report.statuses.contains_key("0"), "{:?}", outcome.report);
    let verification = outcome.report.verification.unwrap();
    assert!(verification.passed, "{:?}", verification.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_plot_files() {
    let fake = fake::start(Mode::Honest).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (report, plot) = (dir.path().join("report.json"), dir.path().join("plot.png"));
    let (report_path, plot_path) = (report.to_str().expect("utf-8"), plot.to_str().expect("utf-8"));
    let flags = format!(
        "--target {} --mix livez=1 --rate 200 --duration 1500ms --report {report_path} \
         --plot {plot_path} --slo p99=10s,errors=0%",
        fake.url
    );
    let words: Vec<&str> = flags.split_whitespace().collect();
    assert_eq!(loadtest::run_cli(&config(&words)).await.expect("the run completes"), 0);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    let keys: Vec<&str> = json.as_object().expect("an object").keys().map(String::as_str).collect();
    let mut expected = [
        "target",
        "mode",
        "connections",
        "rate",
        "duration_s",
        "requests",
        "throughput_rps",
        "errors",
        "overall",
        "kinds",
        "statuses",
        "results",
        "windows",
        "slo",
        "verification",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["requests"], 300);
    assert_eq!(json["slo"]["passed"], true);
    assert!(json["verification"].is_null());
    let png = std::fs::read(&plot).expect("the plot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(png[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (1200, 900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_and_stepped_open_loop_pass_against_an_honest_server() {
    let fake = fake::start(Mode::Honest).await;
    for mode in ["--closed", "--step", "--rate-steps=100,300"] {
        let mut words = words(&fake.url);
        words.push(mode.to_owned());
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let outcome = loadtest::run(&config(&words)).await.expect("the run completes");
        let verification = outcome.report.verification.expect("verified");
        assert!(verification.passed, "{mode}: {:?}", verification.violations);
        assert!(outcome.report.requests > 0, "{mode}");
        let expected_mode = if mode == "--closed" { "closed" } else { "open" };
        assert_eq!(outcome.report.mode, expected_mode);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_not_answered_exists_fails_naming_it() {
    let (fake, outcome) = run(Mode::RetryConflicts).await;
    let conflicted = fake.faulted();
    assert!(!conflicted.is_empty(), "the workload retried something");
    let verification = outcome.report.verification.expect("verified");
    assert_eq!(outcome.exit_code, EXIT_VERIFICATION);
    let named = |v: &String| v.starts_with("retry of transfer") && v.contains(&conflicted[0]);
    assert!(verification.violations.iter().any(named), "{verification:?}");
}
