//! The secrets provider against real sources: environment variables, files, and AWS
//! Secrets Manager as served by a local moto server at `PROTEA_TEST_MOTO_URL` (default
//! `http://127.0.0.1:5055`; `scripts/test` starts it). A moto that does not answer fails
//! the test with a message saying so: these tests never skip.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use storage::secrets::{
    self, SecretError, SecretSource, SecretValue, SecretsProvider, VALUE_BYTES_MAX,
};
use tokio::sync::mpsc;

const DEFAULT_MOTO_URL: &str = "http://127.0.0.1:5055";
const REGION: &str = "us-east-1";
/// The watch interval of these tests; waits are bounded by [`WAIT_MAX`], not timed.
const INTERVAL: Duration = Duration::from_millis(100);
const WAIT_MAX: Duration = Duration::from_secs(15);
/// Set in the child process that checks the standard-environment path.
const CHILD_ENV: &str = "PROTEA_IT_SECRETS_CHILD";

/// The moto endpoint, after checking that it accepts connections.
async fn moto_url() -> String {
    let url = std::env::var("PROTEA_TEST_MOTO_URL").unwrap_or_else(|_| DEFAULT_MOTO_URL.to_owned());
    let authority = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let connect = tokio::net::TcpStream::connect(authority);
    let outcome = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => return url,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    let ci = if std::env::var_os("CI").is_some() { " (CI)" } else { "" };
    panic!(
        "moto not reachable at {url}{ci}: {outcome}; scripts/test starts it \
         (or run `moto_server -H 127.0.0.1 -p 5055`, or set PROTEA_TEST_MOTO_URL)"
    );
}

/// A secret name unique to this process and call.
fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("protea-it/{}-{}-{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn aws_source(name: &str) -> SecretSource {
    format!("aws-secretsmanager:{name}").parse().unwrap()
}

/// A provider of secret `name` on moto, and the client it uses (to manage the secret).
async fn aws_provider(name: &str) -> (SecretsProvider, Client) {
    let url = moto_url().await;
    let provider = SecretsProvider::with_aws_endpoint(aws_source(name), url, REGION).await.unwrap();
    let client = provider.aws_client().expect("an AWS source has a client").clone();
    (provider, client)
}

async fn create_secret(client: &Client, name: &str, value: &str) {
    client.create_secret().name(name).secret_string(value).send().await.unwrap();
}

async fn put_value(client: &Client, name: &str, value: &str) {
    client.put_secret_value().secret_id(name).secret_string(value).send().await.unwrap();
}

async fn file_provider(path: &Path) -> SecretsProvider {
    SecretsProvider::new(SecretSource::File(path.to_owned())).await.unwrap()
}

/// Replaces a file's contents at once (write then rename), so a reader never sees half.
fn write_atomically(path: &Path, contents: &[u8]) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A watcher whose changes arrive on the returned channel.
fn watch_into_channel(
    provider: SecretsProvider,
    initial: SecretValue,
) -> (tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<SecretValue>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let handle = secrets::watch(provider, INTERVAL, initial, move |value| {
        let _ = sender.send(value);
    });
    (handle, receiver)
}

/// The next change, waiting at most [`WAIT_MAX`].
async fn next_change(changes: &mut mpsc::UnboundedReceiver<SecretValue>, what: &str) -> String {
    match tokio::time::timeout(WAIT_MAX, changes.recv()).await {
        Ok(Some(value)) => value.expose().to_owned(),
        Ok(None) => panic!("the watcher stopped while waiting for {what}"),
        Err(_) => panic!("no change within {WAIT_MAX:?} while waiting for {what}"),
    }
}

/// Asserts that no change arrives during a few intervals.
async fn no_change_for_a_while(changes: &mut mpsc::UnboundedReceiver<SecretValue>, when: &str) {
    tokio::time::sleep(INTERVAL * 6).await;
    if let Ok(value) = changes.try_recv() {
        panic!("unexpected change {when}: {:?}", value.expose());
    }
}

fn everything(error: &SecretError) -> String {
    format!("{error} / {error:?}")
}

#[tokio::test]
async fn env_source_reads_the_variable() {
    let expected = std::env::var("PATH").expect("PATH is set for tests");
    let provider = SecretsProvider::new("env:PATH".parse().unwrap()).await.unwrap();
    assert!(provider.aws_client().is_none());
    assert_eq!(provider.read().await.unwrap().expose(), expected);
}

#[tokio::test]
async fn env_source_unset_names_the_variable() {
    let var = format!("PROTEA_IT_UNSET_{}", std::process::id());
    let provider = SecretsProvider::new(SecretSource::Env(var.clone())).await.unwrap();
    let error = provider.read().await.unwrap_err();
    assert!(matches!(&error, SecretError::EnvNotSet { var: v } if *v == var), "{error:?}");
    assert!(error.to_string().contains(&var), "{error}");
}

#[tokio::test]
async fn file_source_trims_trailing_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db-password");
    std::fs::write(&path, "correct horse battery staple\n").unwrap();
    let provider = file_provider(&path).await;
    assert_eq!(provider.read().await.unwrap().expose(), "correct horse battery staple");
    std::fs::write(&path, "  spaced  \r\n\n").unwrap();
    assert_eq!(provider.read().await.unwrap().expose(), "  spaced  ", "only newlines are trimmed");
    // A relative path is read from the working directory, as given.
    let relative = SecretsProvider::new("file:Cargo.toml".parse().unwrap()).await.unwrap();
    assert!(relative.read().await.unwrap().expose().contains("name = \"storage\""));
}

#[tokio::test]
async fn file_source_bounds_and_errors_name_the_path_not_the_value() {
    let dir = tempfile::tempdir().unwrap();

    let largest = dir.path().join("largest");
    std::fs::write(&largest, "s".repeat(VALUE_BYTES_MAX)).unwrap();
    assert_eq!(file_provider(&largest).await.read().await.unwrap().expose().len(), VALUE_BYTES_MAX);

    let too_large = dir.path().join("too-large");
    std::fs::write(&too_large, "s3cr3t".repeat(VALUE_BYTES_MAX / 6 + 1)).unwrap();
    let error = file_provider(&too_large).await.read().await.unwrap_err();
    assert!(matches!(error, SecretError::TooLarge { max: VALUE_BYTES_MAX, .. }), "{error:?}");
    assert!(everything(&error).contains("too-large"), "{error}");
    assert!(!everything(&error).contains("s3cr3t"), "{error:?}");

    let missing = dir.path().join("missing-file");
    let error = file_provider(&missing).await.read().await.unwrap_err();
    assert!(matches!(error, SecretError::FileRead { .. }), "{error:?}");
    assert!(error.to_string().contains(&*missing.to_string_lossy()), "{error}");

    let error = file_provider(dir.path()).await.read().await.unwrap_err();
    assert!(matches!(error, SecretError::NotAFile { .. }), "{error:?}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let error = file_provider(&empty).await.read().await.unwrap_err();
    assert!(matches!(error, SecretError::Empty(_)), "{error:?}");

    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"s3cr3t\xff\xfe").unwrap();
    let error = file_provider(&binary).await.read().await.unwrap_err();
    assert!(matches!(error, SecretError::NotUtf8(_)), "{error:?}");
    assert!(everything(&error).contains("binary"), "{error}");
    assert!(!everything(&error).contains("s3cr3t"), "{error:?}");
}

#[tokio::test]
async fn aws_source_reads_the_current_value() {
    let name = unique_name("read");
    let (provider, client) = aws_provider(&name).await;
    create_secret(&client, &name, "first value").await;
    assert_eq!(provider.read().await.unwrap().expose(), "first value");
    put_value(&client, &name, "second value").await;
    assert_eq!(provider.read().await.unwrap().expose(), "second value");
    // By ARN as well as by name.
    let arn = client.describe_secret().secret_id(&name).send().await.unwrap().arn.unwrap();
    let by_arn = SecretsProvider::with_aws_endpoint(aws_source(&arn), moto_url().await, REGION)
        .await
        .unwrap();
    assert_eq!(by_arn.read().await.unwrap().expose(), "second value");
}

#[tokio::test]
async fn aws_source_binary_secret_is_read_as_text() {
    let name = unique_name("binary");
    let (provider, client) = aws_provider(&name).await;
    client
        .create_secret()
        .name(&name)
        .secret_binary(Blob::new(b"binary but text".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(provider.read().await.unwrap().expose(), "binary but text");
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_binary(Blob::new(b"s3cr3t\xff".to_vec()))
        .send()
        .await
        .unwrap();
    let error = provider.read().await.unwrap_err();
    assert!(matches!(error, SecretError::NotUtf8(_)), "{error:?}");
    assert!(!everything(&error).contains("s3cr3t"), "{error:?}");
}

#[tokio::test]
async fn aws_source_missing_secret_is_a_clear_error() {
    let name = unique_name("missing");
    let (provider, _client) = aws_provider(&name).await;
    let error = provider.read().await.unwrap_err();
    assert!(
        matches!(&error, SecretError::AwsNotFound { secret_id } if *secret_id == name),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&name) && message.contains("no such secret"), "{message}");
}

#[tokio::test]
async fn aws_source_other_failures_carry_the_service_error() {
    // A secret scheduled for deletion has no readable value: Secrets Manager answers
    // InvalidRequestException, which the error describes by its code and message.
    let name = unique_name("deleted");
    let (provider, client) = aws_provider(&name).await;
    create_secret(&client, &name, "s3cr3t-deleted").await;
    client.delete_secret().secret_id(&name).recovery_window_in_days(7).send().await.unwrap();
    let error = provider.read().await.unwrap_err();
    assert!(matches!(error, SecretError::Aws { .. }), "{error:?}");
    let text = everything(&error);
    assert!(text.contains(&name) && text.contains("InvalidRequestException"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[tokio::test]
async fn watch_delivers_an_aws_rotation() {
    let name = unique_name("rotation");
    let (provider, client) = aws_provider(&name).await;
    create_secret(&client, &name, "password-v1").await;
    let initial = provider.read().await.unwrap();
    let (handle, mut changes) = watch_into_channel(provider.clone(), initial);
    no_change_for_a_while(&mut changes, "before any rotation").await;

    put_value(&client, &name, "password-v2").await;
    assert_eq!(next_change(&mut changes, "password-v2").await, "password-v2");
    put_value(&client, &name, "password-v3").await;
    assert_eq!(next_change(&mut changes, "password-v3").await, "password-v3");
    no_change_for_a_while(&mut changes, "after the last rotation").await;
    handle.abort();
}

#[tokio::test]
async fn watch_keeps_the_last_good_value_through_failed_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotating");
    write_atomically(&path, b"v1\n");
    let provider = file_provider(&path).await;
    let initial = provider.read().await.unwrap();
    let (handle, mut changes) = watch_into_channel(provider, initial);

    write_atomically(&path, b"v2\n");
    assert_eq!(next_change(&mut changes, "v2").await, "v2");

    // Reads fail (no file, then an empty one): nothing is reported, v2 stays in force.
    std::fs::remove_file(&path).unwrap();
    no_change_for_a_while(&mut changes, "while the file is missing").await;
    write_atomically(&path, b"\n");
    no_change_for_a_while(&mut changes, "while the file is empty").await;
    // The same value back is no change either: it is still the last good one.
    write_atomically(&path, b"v2");
    no_change_for_a_while(&mut changes, "when v2 came back").await;

    write_atomically(&path, b"v3\n");
    assert_eq!(next_change(&mut changes, "v3").await, "v3");
    handle.abort();
}

#[tokio::test]
async fn watch_stops_when_aborted() {
    let provider = SecretsProvider::new("env:PATH".parse().unwrap()).await.unwrap();
    let handle = secrets::watch(provider, Duration::ZERO, SecretValue::new("not PATH"), |_| {});
    handle.abort();
    let joined = handle.await.unwrap_err();
    assert!(joined.is_cancelled());
}

#[tokio::test]
async fn database_config_from_a_url_secret_replaces_the_base() {
    let base: tokio_postgres::Config =
        "host=base.example port=6543 user=base dbname=basedb sslmode=require".parse().unwrap();
    let secret = SecretValue::new("postgres://app:p%40ss@db.example:5433/ledger?sslmode=disable\n");
    let config = secrets::database_config(Some(&base), &secret).unwrap();
    let expected: tokio_postgres::Config =
        "postgres://app:p%40ss@db.example:5433/ledger?sslmode=disable".parse().unwrap();
    assert_eq!(config, expected);
    assert_eq!(config.get_password(), Some(&b"p@ss"[..]));

    let conninfo = SecretValue::new("host=db.example user=app password=pw dbname=ledger");
    let config = secrets::database_config(None, &conninfo).unwrap();
    assert_eq!(config.get_user(), Some("app"));
    assert_eq!(config.get_dbname(), Some("ledger"));
}

#[tokio::test]
async fn database_config_merges_rds_json_from_secrets_manager_onto_the_base() {
    use tokio_postgres::config::{Host, SslMode};

    let name = unique_name("rds");
    let (provider, client) = aws_provider(&name).await;
    // What Secrets Manager keeps for an RDS-managed password: no host, port or dbname.
    create_secret(&client, &name, r#"{"username":"protea_app","password":"rotated-pw-1"}"#).await;
    let base: tokio_postgres::Config =
        "postgres://old:old-pw@aurora.example:5433/ledger?sslmode=require&connect_timeout=5"
            .parse()
            .unwrap();

    let config = secrets::database_config(Some(&base), &provider.read().await.unwrap()).unwrap();
    assert_eq!(config.get_user(), Some("protea_app"));
    assert_eq!(config.get_password(), Some(&b"rotated-pw-1"[..]));
    assert_eq!(config.get_hosts(), &[Host::Tcp("aurora.example".to_owned())]);
    assert_eq!(config.get_ports(), &[5433]);
    assert_eq!(config.get_dbname(), Some("ledger"));
    assert_eq!(config.get_ssl_mode(), SslMode::Require);
    assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));

    // The full form (engine, host, port as RDS writes them) overrides the base's fields.
    put_value(
        &client,
        &name,
        r#"{"engine":"postgres","host":"writer.example","port":5432,"username":"protea_app",
            "password":"rotated-pw-2","dbname":"ledger2","dbInstanceIdentifier":"protea-db"}"#,
    )
    .await;
    let config = secrets::database_config(Some(&base), &provider.read().await.unwrap()).unwrap();
    assert_eq!(config.get_password(), Some(&b"rotated-pw-2"[..]));
    assert_eq!(config.get_hosts(), &[Host::Tcp("writer.example".to_owned())]);
    assert_eq!(config.get_ports(), &[5432]);
    assert_eq!(config.get_dbname(), Some("ledger2"));
    assert_eq!(config.get_ssl_mode(), SslMode::Require, "TLS settings stay from the base");

    // A host without a port keeps the base's port; no base means the JSON alone.
    let host_only = SecretValue::new(r#"{"username":"u","password":"p","host":"other.example"}"#);
    let config = secrets::database_config(Some(&base), &host_only).unwrap();
    assert_eq!(config.get_hosts(), &[Host::Tcp("other.example".to_owned())]);
    assert_eq!(config.get_ports(), &[5433]);
    let config = secrets::database_config(None, &host_only).unwrap();
    assert!(config.get_ports().is_empty());
    assert_eq!(config.get_dbname(), None);
}

#[tokio::test]
async fn nothing_prints_the_secret() {
    let secret = SecretValue::new("s3cr3t-value");
    assert_eq!(format!("{secret}"), "[redacted]");
    assert!(!format!("{secret:?}").contains("s3cr3t"));
    assert!(!format!("{:?}", Some(&secret)).contains("s3cr3t"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cr3t-value").unwrap();
    let provider = file_provider(&path).await;
    assert!(!format!("{provider:?}").contains("s3cr3t"));

    let errors = [
        secrets::database_config(None, &SecretValue::new("s3cr3t-value")).unwrap_err(),
        secrets::database_config(
            None,
            &SecretValue::new(r#"{"username":"u","password":"s3cr3t-value""#),
        )
        .unwrap_err(),
        secrets::database_config(None, &SecretValue::new(r#"{"username":"s3cr3t-value"}"#))
            .unwrap_err(),
        secrets::database_config(
            None,
            &SecretValue::new(
                r#"{"username":"u","password":"s3cr3t-value","port":"s3cr3t-value"}"#,
            ),
        )
        .unwrap_err(),
        "s3cr3t-value".parse::<SecretSource>().unwrap_err(),
        "env:X=s3cr3t-value".parse::<SecretSource>().unwrap_err(),
    ];
    for error in errors {
        let text = everything(&error);
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    let aws = SecretsProvider::with_aws_endpoint(aws_source("x"), moto_url().await, REGION)
        .await
        .unwrap();
    assert!(!format!("{aws:?}").contains("protea-local"), "{aws:?}");
}

/// The standard-environment path (`SecretsProvider::new` with `AWS_REGION`,
/// `AWS_ENDPOINT_URL` and credentials from the environment), checked in a child process,
/// since this process's environment cannot be changed safely while tests run.
#[tokio::test]
async fn aws_source_from_the_standard_environment() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("read") => {
            let source = aws_source(&std::env::var("PROTEA_IT_SECRET_NAME").unwrap());
            let provider = SecretsProvider::new(source).await.unwrap();
            assert_eq!(provider.read().await.unwrap().expose(), "from the environment");
            return;
        }
        Ok("no-region") => {
            let error = SecretsProvider::new(aws_source("any")).await.unwrap_err();
            assert!(matches!(error, SecretError::AwsRegionMissing { .. }), "{error:?}");
            assert!(error.to_string().contains("AWS_REGION"), "{error}");
            return;
        }
        _ => {}
    }
    let name = unique_name("env");
    let (_provider, client) = aws_provider(&name).await;
    create_secret(&client, &name, "from the environment").await;
    let url = moto_url().await;
    let run = |mode: &str| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "secrets::aws_source_from_the_standard_environment", "--nocapture"])
            .env(CHILD_ENV, mode)
            .env("PROTEA_IT_SECRET_NAME", &name)
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "protea-test")
            .env("AWS_SECRET_ACCESS_KEY", "protea-test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/protea-it-aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/protea-it-aws-credentials")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        if mode == "read" {
            command.env("AWS_REGION", REGION);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child ({mode}) failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run("read");
    run("no-region");
}
