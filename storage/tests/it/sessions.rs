//! Operator sessions against real services: DynamoDB as served by a local moto server at
//! `PROTEA_TEST_MOTO_URL` (default `http://127.0.0.1:5055`) and Redis at
//! `PROTEA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). A service that does not
//! answer fails the test with a message saying so: these tests never skip.
//!
//! Two `DynamoSessions` built separately have their own DynamoDB and Redis clients: they
//! stand for two gateway processes sharing one table and one Redis.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::{Builder, ClientLike, Config, KeysInterface};
use storage::secrets::AwsSettings;
use storage::sessions::{
    DynamoSessions, DynamoSessionsConfig, IDLE_TIMEOUT_S, Session, SessionError, Sessions, Status,
    TOUCH_INTERVAL_S,
};

const DEFAULT_MOTO_URL: &str = "http://127.0.0.1:5055";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const REGION: &str = "us-east-1";
/// A Redis URL where nothing listens.
const DEAD_REDIS_URL: &str = "redis://127.0.0.1:1";
/// A fixed "now" for the tests, in Unix seconds; times are passed in, never read.
const T0: u64 = 1_900_000_000;

/// Fails with a clear message unless something accepts connections at `url`'s authority.
async fn reachable(url: &str, what: &str, how: &str) {
    let authority = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority).to_owned();
    let connect = tokio::net::TcpStream::connect(authority);
    let outcome = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    let ci = if std::env::var_os("CI").is_some() { " (CI)" } else { "" };
    panic!("{what} not reachable at {url}{ci}: {outcome}; {how}");
}

async fn moto_url() -> String {
    let url = std::env::var("PROTEA_TEST_MOTO_URL").unwrap_or_else(|_| DEFAULT_MOTO_URL.to_owned());
    let how = "scripts/test starts it (or run `moto_server -H 127.0.0.1 -p 5055`, \
               or set PROTEA_TEST_MOTO_URL)";
    reachable(&url, "moto", how).await;
    url
}

async fn redis_url() -> String {
    let url =
        std::env::var("PROTEA_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let how = "start a Redis server (`redis-server --port 6379`) or set PROTEA_TEST_REDIS_URL";
    reachable(&url, "Redis", how).await;
    url
}

fn next() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A table name unique to this process and call.
fn unique_table(tag: &str) -> String {
    format!("protea-it-sessions-{}-{}-{tag}", std::process::id(), next())
}

/// A session id unique across runs (Redis outlives a test run).
fn unique_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("sid-{:x}-{:x}-{nanos:x}", std::process::id(), next())
}

/// A store on moto table `table` with Redis at `redis` (or none): one "process".
async fn store(table: &str, redis: Option<&str>) -> Sessions {
    let config = DynamoSessionsConfig {
        table: table.to_owned(),
        aws: AwsSettings::local(moto_url().await, REGION),
        redis_url: redis.map(str::to_owned),
    };
    Sessions::from(DynamoSessions::connect(config).await.unwrap())
}

/// Two independent stores ("processes") on a fresh table, both cached in the real Redis.
async fn two_processes(tag: &str) -> (Sessions, Sessions, String) {
    let table = unique_table(tag);
    let redis = redis_url().await;
    let a = store(&table, Some(&redis)).await;
    dynamo(&a).ensure_table().await.unwrap();
    let b = store(&table, Some(&redis)).await;
    (a, b, table)
}

fn dynamo(sessions: &Sessions) -> &DynamoSessions {
    match sessions {
        Sessions::Dynamo(store) => store,
    }
}

async fn drop_table(sessions: &Sessions) {
    let store = dynamo(sessions);
    let _ = store.dynamo_client().delete_table().table_name(store.table()).send().await;
}

/// What Redis holds under a session's cache key, read with a client of the test's own.
async fn cached_value(id: &str) -> Option<String> {
    let client =
        Builder::from_config(Config::from_url(&redis_url().await).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let value: Option<String> = client.get(format!("protea:session:{id}")).await.unwrap();
    client.quit().await.unwrap();
    value
}

#[tokio::test]
async fn ensure_table_creates_the_table_with_ttl_and_is_idempotent() {
    let (a, b, table) = two_processes("ensure").await;
    dynamo(&b).ensure_table().await.unwrap();
    dynamo(&a).ensure_table().await.unwrap();
    let client = dynamo(&a).dynamo_client();
    let ttl = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some("expires_at"));
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert!(indexes.iter().any(|i| i.index_name() == Some("by_operator")), "{indexes:?}");
    drop_table(&a).await;
}

#[tokio::test]
async fn create_on_one_process_is_seen_by_another() {
    let (a, b, _) = two_processes("create").await;
    let id = unique_id();
    let session = Session::new(&id, "op-1", "admin", T0);
    a.create(&session).await.unwrap();

    let seen = b.get(&id, T0 + 1).await.unwrap().expect("B sees A's session");
    assert_eq!(seen, session);
    assert_eq!(seen.status(T0 + 1), Status::Live);
    // B's lookup filled the shared cache; a second lookup answers the same.
    let cached = cached_value(&id).await.expect("the lookup filled the cache");
    assert!(cached.contains("\"operator_id\":\"op-1\""), "{cached}");
    assert_eq!(b.get(&id, T0 + 2).await.unwrap(), Some(session.clone()));
    assert_eq!(a.get(&id, T0 + 2).await.unwrap(), Some(session));
    // An unknown id is no session, on either.
    assert_eq!(b.get(&unique_id(), T0).await.unwrap(), None);
    drop_table(&a).await;
}

#[tokio::test]
async fn revoke_on_one_process_takes_effect_at_once_on_another_despite_its_cache() {
    let (a, b, _) = two_processes("revoke").await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "operator", T0)).await.unwrap();
    assert!(b.get(&id, T0 + 1).await.unwrap().is_some());

    // Prove B's answers come from the cache: remove the item behind its back, and B still
    // answers from Redis.
    let direct = dynamo(&a);
    let key = aws_sdk_dynamodb::types::AttributeValue::S(id.clone());
    let item = direct
        .dynamo_client()
        .get_item()
        .table_name(direct.table())
        .key("session_id", key.clone())
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    direct
        .dynamo_client()
        .delete_item()
        .table_name(direct.table())
        .key("session_id", key)
        .send()
        .await
        .unwrap();
    assert!(b.get(&id, T0 + 2).await.unwrap().is_some(), "B answers from its cache");
    direct
        .dynamo_client()
        .put_item()
        .table_name(direct.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    // A revokes; B, whose cache held the live session, answers "no session" at once.
    assert!(a.revoke(&id).await.unwrap());
    assert_eq!(b.get(&id, T0 + 3).await.unwrap(), None);
    assert_eq!(b.get_and_touch(&id, T0 + 3 + TOUCH_INTERVAL_S).await.unwrap(), None);
    assert_eq!(a.get(&id, T0 + 3).await.unwrap(), None);
    assert_eq!(cached_value(&id).await.as_deref(), Some("revoked"), "the tombstone");
    // A touch cannot bring it back, and a process without the cache agrees.
    assert_eq!(b.touch(&id, T0 + 4).await.unwrap(), None);
    let uncached = store(dynamo(&a).table(), None).await;
    assert_eq!(uncached.get(&id, T0 + 4).await.unwrap(), None);
    // Revoking again is harmless; revoking an unknown id says there was none.
    assert!(b.revoke(&id).await.unwrap());
    assert!(!b.revoke(&unique_id()).await.unwrap());
    drop_table(&a).await;
}

#[tokio::test]
async fn revoke_all_for_an_operator_reaches_every_process() {
    let (a, b, _) = two_processes("revoke-all").await;
    let mine: Vec<String> = (0..3).map(|_| unique_id()).collect();
    let other = unique_id();
    for id in &mine {
        a.create(&Session::new(id, "op-revoked", "operator", T0)).await.unwrap();
        assert!(b.get(id, T0 + 1).await.unwrap().is_some(), "cached in B");
    }
    a.create(&Session::new(&other, "op-kept", "operator", T0)).await.unwrap();

    assert_eq!(a.revoke_all_for("op-revoked").await.unwrap(), 3);
    for id in &mine {
        assert_eq!(b.get(id, T0 + 2).await.unwrap(), None);
    }
    assert!(b.get(&other, T0 + 2).await.unwrap().is_some(), "another operator's session stays");
    assert_eq!(a.revoke_all_for("op-nobody").await.unwrap(), 0);
    drop_table(&a).await;
}

#[tokio::test]
async fn idle_sessions_expire_and_touch_extends_them() {
    let (a, b, _) = two_processes("idle").await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "auditor", T0)).await.unwrap();
    // B caches it with last_seen = T0.
    assert!(b.get(&id, T0).await.unwrap().is_some());
    assert!(b.get(&id, T0 + IDLE_TIMEOUT_S).await.unwrap().is_some(), "at the limit: live");
    assert_eq!(b.get(&id, T0 + IDLE_TIMEOUT_S + 1).await.unwrap(), None, "idle-expired");

    // Within the touch interval nothing is written; beyond it last_seen moves forward.
    let quiet = a.get_and_touch(&id, T0 + TOUCH_INTERVAL_S - 1).await.unwrap().unwrap();
    assert_eq!(quiet.last_seen_s, T0);
    let touched = a.get_and_touch(&id, T0 + 600).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_s, T0 + 600);
    // B sees the extension (from the cache A refilled, or from DynamoDB).
    let later = T0 + 600 + IDLE_TIMEOUT_S;
    assert_eq!(b.get(&id, later).await.unwrap().unwrap().last_seen_s, T0 + 600);
    let uncached = store(dynamo(&a).table(), None).await;
    assert_eq!(uncached.get(&id, later).await.unwrap().unwrap().last_seen_s, T0 + 600);
    assert_eq!(b.get(&id, later + 1).await.unwrap(), None);

    // An idle-expired session is not revived by a touch, from either process.
    assert_eq!(a.touch(&id, later + 1).await.unwrap(), None);
    assert_eq!(b.get_and_touch(&id, later + 1).await.unwrap(), None);
    assert_eq!(uncached.get(&id, later).await.unwrap().unwrap().last_seen_s, T0 + 600);
    // last_seen never moves backwards.
    let back = b.touch(&id, T0 + 300).await.unwrap().unwrap();
    assert_eq!(back.last_seen_s, T0 + 600);
    drop_table(&a).await;
}

#[tokio::test]
async fn a_stale_cached_last_seen_does_not_expire_a_session_touched_elsewhere() {
    // C has no cache; A and B share Redis. C's touch updates DynamoDB only, so the cached
    // copy is stale; B must not declare the session idle-expired from it.
    let (a, b, table) = two_processes("stale").await;
    let c = store(&table, None).await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "admin", T0)).await.unwrap();
    assert!(b.get(&id, T0).await.unwrap().is_some());
    assert_eq!(c.touch(&id, T0 + 800).await.unwrap().unwrap().last_seen_s, T0 + 800);
    let seen = b.get(&id, T0 + 1000).await.unwrap().expect("live per DynamoDB");
    assert_eq!(seen.last_seen_s, T0 + 800);
    drop_table(&a).await;
}

#[tokio::test]
async fn sessions_end_at_their_absolute_expiry() {
    let (a, b, _) = two_processes("absolute").await;
    let id = unique_id();
    let mut session = Session::new(&id, "op-1", "information_officer", T0);
    session.expires_at_s = T0 + 100;
    a.create(&session).await.unwrap();
    assert!(b.get(&id, T0 + 60).await.unwrap().is_some());
    assert!(a.get_and_touch(&id, T0 + 99).await.unwrap().is_some());
    assert_eq!(b.get(&id, T0 + 100).await.unwrap(), None);
    assert_eq!(a.touch(&id, T0 + 100).await.unwrap(), None, "no touch past the expiry");
    assert_eq!(session.status(T0 + 100), Status::Expired);
    // The default lifetime is 12 hours, however active.
    let long = Session::new(unique_id(), "op-1", "admin", T0);
    assert_eq!(long.expires_at_s, T0 + 12 * 3600);
    drop_table(&a).await;
}

#[tokio::test]
async fn duplicate_and_malformed_sessions_are_refused_without_echoing_ids() {
    let (a, b, _) = two_processes("duplicate").await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "admin", T0)).await.unwrap();
    let error = b.create(&Session::new(&id, "op-2", "admin", T0 + 5)).await.unwrap_err();
    assert!(matches!(error, SessionError::Exists), "{error:?}");
    assert_eq!(a.get(&id, T0 + 6).await.unwrap().unwrap().operator_id, "op-1", "not overwritten");
    // A revoked id stays taken.
    a.revoke(&id).await.unwrap();
    let error = a.create(&Session::new(&id, "op-1", "admin", T0 + 7)).await.unwrap_err();
    assert!(matches!(error, SessionError::Exists), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&id));

    let secret_ish = "short-s3cr3t";
    for bad in [secret_ish, "has spaces in it but long enough", "x".repeat(129).as_str(), ""] {
        let error = a.get(bad, T0).await.unwrap_err();
        assert!(matches!(error, SessionError::InvalidId), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(bad.is_empty() || !text.contains(bad), "{text}");
        let error = a.create(&Session::new(bad, "op-1", "admin", T0)).await.unwrap_err();
        assert!(matches!(error, SessionError::InvalidId), "{error:?}");
    }
    let error = a.create(&Session::new(unique_id(), "", "admin", T0)).await.unwrap_err();
    assert!(matches!(error, SessionError::InvalidSession(_)), "{error:?}");
    let mut revoked = Session::new(unique_id(), "op-1", "admin", T0);
    revoked.revoked = true;
    assert!(matches!(a.create(&revoked).await, Err(SessionError::InvalidSession(_))));
    // Debug never shows the id.
    assert!(!format!("{:?}", Session::new(&id, "op-1", "admin", T0)).contains(&id));
    drop_table(&a).await;
}

#[tokio::test]
async fn with_redis_unreachable_everything_works_through_dynamodb() {
    let table = unique_table("no-redis");
    let a = store(&table, Some(DEAD_REDIS_URL)).await;
    dynamo(&a).ensure_table().await.unwrap();
    // B reaches the real Redis, as another process might.
    let b = store(&table, Some(&redis_url().await)).await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "admin", T0)).await.unwrap();
    assert!(a.get(&id, T0 + 1).await.unwrap().is_some());
    assert!(b.get(&id, T0 + 1).await.unwrap().is_some(), "B caches it");
    let touched = a.get_and_touch(&id, T0 + 120).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_s, T0 + 120);
    // Repeated failures stay quick and correct (each Redis command fails fast).
    for i in 0..5 {
        assert!(a.get(&id, T0 + 130 + i).await.unwrap().is_some());
    }
    // B revokes (writing the tombstone); A, without Redis, reads DynamoDB and agrees.
    assert!(b.revoke(&id).await.unwrap());
    assert_eq!(a.get(&id, T0 + 200).await.unwrap(), None);
    // A revoke from the process without Redis still stands in DynamoDB.
    let other = unique_id();
    a.create(&Session::new(&other, "op-1", "admin", T0)).await.unwrap();
    assert!(a.revoke(&other).await.unwrap());
    assert_eq!(a.get(&other, T0 + 1).await.unwrap(), None);
    assert_eq!(b.get(&other, T0 + 1).await.unwrap(), None);
    drop_table(&a).await;
}

#[tokio::test]
async fn a_bad_redis_url_is_a_clear_error_without_the_url() {
    let config = DynamoSessionsConfig {
        table: unique_table("bad-url"),
        aws: AwsSettings::local(moto_url().await, REGION),
        redis_url: Some("redis://user:s3cr3t@host:not-a-port".to_owned()),
    };
    let error = DynamoSessions::connect(config).await.unwrap_err();
    assert!(matches!(error, SessionError::RedisUrl(_)), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("s3cr3t"), "{error:?}");
}

#[tokio::test]
async fn a_cache_fill_never_overwrites_a_revocation_tombstone() {
    // The race a tombstone closes: a process that read the live session from DynamoDB
    // before a revoke must not re-cache it after the revoke's tombstone. Stage it with a
    // tombstone over a session DynamoDB still holds live, then make B fill (a touch).
    let (a, b, _) = two_processes("tombstone").await;
    let id = unique_id();
    a.create(&Session::new(&id, "op-1", "admin", T0)).await.unwrap();
    let client =
        Builder::from_config(Config::from_url(&redis_url().await).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let key = format!("protea:session:{id}");
    let () = client
        .set(&key, "revoked", Some(fred::prelude::Expiration::EX(30)), None, false)
        .await
        .unwrap();
    assert!(b.touch(&id, T0 + 100).await.unwrap().is_some(), "live in DynamoDB");
    let value: Option<String> = client.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some("revoked"), "the fill left the tombstone");
    assert_eq!(b.get(&id, T0 + 101).await.unwrap(), None, "the tombstone answers");
    client.quit().await.unwrap();
    drop_table(&a).await;
}
