//! `gateway audit-archive` end to end, once on the embedded store and once on a fresh
//! PostgreSQL database (`audit_archive::embedded::NAME`, `audit_archive::postgres::NAME`):
//! the real binary archives the audit trail to a bucket with Object Lock (compliance
//! mode) on moto's S3 (`PROTEA_TEST_MOTO_URL`, default `http://127.0.0.1:5055`, which
//! `scripts/test` starts; a missing moto fails the test, never skips it).
//!
//! [`archives_the_trail`], with 10-record chunks: complete chunks are archived and a fresh
//! partial one is left; a second run uploads nothing; `--partial-after-seconds 0` archives
//! the partial chunk under its exact range; more records continue from it to the next
//! aligned boundary, `--max-chunks` bounding a run. Every object's bytes are the bytes
//! `GET /v1/audit/export` serves for its range, its SHA-256 checksum is the one S3 stored,
//! its metadata names its range and links (each object's `prev-hash` the last `last-hash`
//! before it). Then one record not yet archived is changed around the store: the run
//! archives the chunk before it, stops naming the record's seq, and uploads nothing
//! holding it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::types::{
    ChecksumMode, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule,
};
use http::{Method, StatusCode};
use serde_json::Value;
use storage::audit::{ActorKind, NewAuditRecord, Outcome};
use storage::secrets::{AwsBounds, AwsSettings};
use tempfile::TempDir;

use crate::pg_cluster::{self, TestDatabase};
use crate::popia_site::{DirectStore, open_direct_store, tamper_store};
use crate::support::{self, Api, Finished, Gateway};

/// Records per archived object in these tests.
const CHUNK: u64 = 10;
/// The action of the records the tests append (and the tampered one's, same length).
const ACTION: &str = "test.archive";
const TAMPERED_ACTION: &str = "test.archivx";

/// Which store a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The redb file in the data directory.
    Embedded,
    /// A fresh database on the shared server.
    Postgres,
}

/// One backend's data and the bucket its trail is archived to.
struct Site {
    backend: Backend,
    dir: TempDir,
    db: Option<TestDatabase>,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Site {
    async fn new(backend: Backend) -> Self {
        let db = match backend {
            Backend::Embedded => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let s3 = s3_client().await;
        let bucket = locked_bucket(&s3, backend).await;
        let site = Self { backend, dir: support::data_dir(), db, s3, bucket };
        if backend == Backend::Postgres {
            let mut args = vec!["migrate".to_owned()];
            args.extend(site.storage_args());
            let finished =
                support::run_gateway(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(finished.status.success(), "gateway migrate: {}", finished.stderr);
        }
        site
    }

    /// The store flags of every command.
    fn storage_args(&self) -> Vec<String> {
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary path").to_owned();
        match &self.db {
            None => vec!["--data-dir".into(), dir],
            Some(db) => {
                let mut args = vec!["--storage".to_owned(), db.gateway_url()];
                args.extend(support::SHARED_KEYS.iter().map(|flag| (*flag).to_owned()));
                args
            }
        }
    }

    /// Runs `gateway audit-archive` on this site's store and bucket with `extra` flags.
    fn archive(&self, extra: &[&str]) -> Finished {
        let mut args: Vec<String> = ["audit-archive", "--bucket", &self.bucket, "--prefix"]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        args.extend(["trail/it".to_owned(), "--chunk-records".into(), CHUNK.to_string()]);
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        args.extend(self.storage_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::run_gateway_with_env(&args, &support::aws_env())
    }

    /// [`Site::archive`], which must exit 0; its uploaded lines and its summary.
    fn archive_ok(&self, extra: &[&str]) -> (Vec<Value>, Value) {
        let finished = self.archive(extra);
        assert!(
            finished.status.success(),
            "audit-archive {extra:?} exited {}; stdout:\n{}\nstderr:\n{}",
            finished.status,
            finished.stdout,
            finished.stderr
        );
        let mut lines: Vec<Value> = finished
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        let summary = lines.pop().expect("a summary line");
        assert_eq!(summary["event"], "summary", "{summary}");
        assert!(lines.iter().all(|line| line["event"] == "uploaded"), "{lines:?}");
        (lines, summary)
    }

    /// The store, opened directly (no gateway may run on the embedded one).
    fn open_store(&self) -> DirectStore {
        open_direct_store(self.dir.path(), self.db.as_ref())
    }

    /// Appends records until the trail's head is `head`; returns the seqs appended.
    async fn append_until(&self, head: u64) -> Vec<u64> {
        let store = self.open_store();
        let now = head_of(&store).await;
        assert!(now <= head, "the head is {now} already");
        let records = (now..head).map(|_| record(unix_now_ns())).collect();
        let seqs = store.core().append_audit(records).await.expect("appending audit records");
        store.close();
        seqs
    }

    /// The trail's head seq.
    async fn head(&self) -> u64 {
        let store = self.open_store();
        let head = head_of(&store).await;
        store.close();
        head
    }

    /// Every archived object under the test prefix, in key order: (key, bytes, metadata,
    /// stored SHA-256 checksum).
    async fn objects(&self) -> Vec<Object> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("trail/it/")
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing {}: {e:?}", self.bucket));
        assert_ne!(listed.is_truncated(), Some(true), "one page holds the test's objects");
        let mut objects = Vec::new();
        for key in listed.contents().iter().filter_map(|object| object.key()) {
            let got = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap_or_else(|e| panic!("getting {key}: {e:?}"));
            let checksum = got.checksum_sha256().map(str::to_owned);
            let metadata = got.metadata().cloned().unwrap_or_default();
            let bytes = got.body.collect().await.expect("the object's body").into_bytes().to_vec();
            objects.push(Object { key: key.to_owned(), bytes, metadata, checksum });
        }
        objects
    }

    async fn close(self) {
        if let Some(db) = self.db {
            db.drop_now().await;
        }
    }
}

/// One archived object as S3 returns it.
struct Object {
    key: String,
    bytes: Vec<u8>,
    metadata: std::collections::HashMap<String, String>,
    checksum: Option<String>,
}

impl Object {
    fn meta(&self, name: &str) -> &str {
        self.metadata.get(name).unwrap_or_else(|| panic!("{}: no {name} metadata", self.key))
    }

    fn meta_seq(&self, name: &str) -> u64 {
        self.meta(name).parse().unwrap_or_else(|e| panic!("{}: {name}: {e}", self.key))
    }
}

/// The trail's head seq (0 when empty).
async fn head_of(store: &DirectStore) -> u64 {
    store.core().audit_head().await.expect("reading the head").map_or(0, |(seq, _)| seq)
}

/// A system record made at `at_ns`.
fn record(at_ns: u64) -> NewAuditRecord {
    NewAuditRecord {
        at_ns,
        actor_kind: ActorKind::System,
        actor_id: None,
        role: None,
        action: ACTION.to_owned(),
        tenant: Some(1),
        subject: Some(42),
        purpose: Some("fraud_prevention".to_owned()),
        outcome: Outcome::Success,
        request_id: Some("req_archive".to_owned()),
        origin: Some("192.0.2.7".to_owned()),
        detail: vec![0xab; 40],
    }
}

fn unix_now_ns() -> u64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    u64::try_from(elapsed.as_nanos()).expect("before 2554")
}

/// A client of moto's S3.
async fn s3_client() -> aws_sdk_s3::Client {
    let bounds = AwsBounds {
        connect: Duration::from_secs(5),
        attempt: Duration::from_secs(30),
        operation: Duration::from_secs(60),
        attempts_max: 2,
    };
    let settings = AwsSettings::local(support::moto_url(), support::AWS_REGION);
    let sdk_config = settings.sdk_config(bounds).await.expect("a region is given");
    let config = aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A new bucket with Object Lock in compliance mode (one day by default), as Terraform
/// makes the archive bucket; panics with what to do when moto does not answer.
async fn locked_bucket(s3: &aws_sdk_s3::Client, backend: Backend) -> String {
    let bucket = format!(
        "protea-archive-{}-{}-{}",
        format!("{backend:?}").to_lowercase(),
        std::process::id(),
        unix_now_ns() % 1_000_000_007
    );
    s3.create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating bucket {bucket} on moto at {} failed ({e:?}); moto is required: \
                 scripts/test starts it, or run `moto_server -H 127.0.0.1 -p 5055` \
                 (PROTEA_TEST_MOTO_URL)",
                support::moto_url()
            )
        });
    let retention = DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(1);
    let lock = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention.build()).build())
        .build();
    s3.put_object_lock_configuration()
        .bucket(&bucket)
        .object_lock_configuration(lock)
        .send()
        .await
        .unwrap_or_else(|e| panic!("locking {bucket}: {e:?}"));
    bucket
}

/// The (first, last) seqs of the uploaded lines of a run.
fn ranges(lines: &[Value]) -> Vec<(u64, u64)> {
    let seq = |line: &Value, name: &str| line[name].as_u64().unwrap_or_else(|| panic!("{line}"));
    lines.iter().map(|line| (seq(line, "first_seq"), seq(line, "last_seq"))).collect()
}

/// Checks every object against the chain: its checksum, its metadata and its lines.
fn check_objects(objects: &[Object]) {
    let mut prev_last_hash = "0".repeat(64);
    let mut next_seq = 1;
    for object in objects {
        let digest = ring::digest::digest(&ring::digest::SHA256, &object.bytes);
        let expected = data_encoding::BASE64.encode(digest.as_ref());
        assert_eq!(object.checksum.as_deref(), Some(expected.as_str()), "{}", object.key);
        let (first, last) = (object.meta_seq("first-seq"), object.meta_seq("last-seq"));
        assert_eq!(first, next_seq, "{}: the objects follow each other", object.key);
        assert_eq!(object.key, format!("trail/it/{first:020}-{last:020}.ndjson"));
        assert_eq!(object.meta_seq("records"), last - first + 1, "{}", object.key);
        assert_eq!(object.meta("prev-hash"), prev_last_hash, "{}: linked", object.key);
        let text = std::str::from_utf8(&object.bytes).expect("UTF-8 NDJSON");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().expect("a seq")).collect();
        assert_eq!(seqs, (first..=last).collect::<Vec<_>>(), "{}", object.key);
        assert_eq!(lines[0]["prev_hash"], prev_last_hash, "{}", object.key);
        for pair in lines.windows(2) {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "{}: each line links", object.key);
        }
        let last_hash = lines[lines.len() - 1]["hash"].as_str().expect("a hash");
        assert_eq!(object.meta("last-hash"), last_hash, "{}", object.key);
        prev_last_hash = last_hash.to_owned();
        next_seq = last + 1;
    }
}

/// Each object's bytes equal what `GET /v1/audit/export` serves for its range.
async fn compare_with_export(site: &Site, objects: &[Object]) {
    let auditor = {
        let args = site.storage_args();
        support::create_operator(
            "audra",
            "auditor",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let extra: Vec<String> = match site.backend {
        Backend::Embedded => Vec::new(),
        Backend::Postgres => site.storage_args(),
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let gateway = Gateway::start(site.dir.path(), &extra);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    let token = api.operator_token(&auditor).await;
    for object in objects {
        let (first, records) = (object.meta_seq("first-seq"), object.meta_seq("records"));
        let path = format!("/v1/audit/export?after={}&limit={records}", first - 1);
        let reply = api.call(Method::GET, &path, &[("authorization", &token)], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply.body.as_ref() == object.bytes.as_slice(),
            "{}: the export's bytes",
            object.key
        );
    }
    let finished = gateway.stop();
    assert_eq!(finished.status.code(), Some(0), "SIGTERM exits 0: {}", finished.stderr);
}

/// Changes the action of record `seq` from [`ACTION`] to [`TAMPERED_ACTION`] around the
/// store, as in `popia::audit_tampering_is_detected`: a superuser with the triggers
/// disabled, or the redb row rewritten (no gateway runs).
async fn tamper(site: &Site, seq: u64) {
    let superuser = match &site.db {
        Some(db) => Some(pg_cluster::connect(&db.conninfo()).await),
        None => None,
    };
    tamper_store(site.dir.path(), superuser, seq, ACTION, TAMPERED_ACTION).await;
}

/// See the module doc.
async fn archives_the_trail(backend: Backend) {
    let site = Site::new(backend).await;
    for (flags, key) in [
        (["--partial-after-seconds", "99999999999"], "partial-after-seconds"),
        (["--max-chunks", "0"], "max-chunks"),
    ] {
        let refused = site.archive(&flags);
        assert_eq!(refused.status.code(), Some(64), "a bad {key} is a configuration error");
        assert!(refused.stderr.contains(key), "the key is named: {}", refused.stderr);
    }
    // Fresh records: 1-10 and 11-20 are complete, 21-25 a partial chunk too new to go.
    site.append_until(25).await;
    let (lines, summary) = site.archive_ok(&[]);
    assert_eq!(ranges(&lines), [(1, 10), (11, 20)], "{summary}");
    assert_eq!(summary["archived_through_seq"], 20, "{summary}");
    assert_eq!(summary["head_seq"], 25, "{summary}");
    assert_eq!(summary["pending"], "partial_chunk_too_new", "{summary}");
    assert_eq!(summary["up_to_date"], false, "{summary}");

    let (lines, summary) = site.archive_ok(&[]);
    assert!(lines.is_empty(), "a second run uploads nothing: {lines:?}");
    assert_eq!(summary["archived_through_seq"], 20, "{summary}");

    let (lines, summary) = site.archive_ok(&["--partial-after-seconds", "0"]);
    assert_eq!(ranges(&lines), [(21, 25)], "the partial chunk, by its exact range");
    assert_eq!(summary["up_to_date"], true, "{summary}");
    assert_eq!(summary["uploaded_records"], 5, "{summary}");
    let (lines, summary) = site.archive_ok(&["--partial-after-seconds", "0"]);
    assert!(lines.is_empty() && summary["up_to_date"] == true, "{lines:?} {summary}");

    // More records: the next object ends at the aligned boundary, then whole chunks.
    site.append_until(37).await;
    let (lines, summary) = site.archive_ok(&["--partial-after-seconds", "0", "--max-chunks", "1"]);
    assert_eq!(ranges(&lines), [(26, 30)], "{summary}");
    assert_eq!(summary["pending"], "max_chunks", "{summary}");
    let (lines, summary) = site.archive_ok(&["--partial-after-seconds", "0"]);
    assert_eq!(ranges(&lines), [(31, 37)], "{summary}");
    assert_eq!(summary["archived_through_seq"], 37, "{summary}");

    let objects = site.objects().await;
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    check_objects(&objects);
    compare_with_export(&site, &objects).await;

    // A changed record after the archive's end: the chunk before it goes, it does not.
    let head = site.head().await;
    let boundary = head.div_ceil(CHUNK) * CHUNK;
    let appended = site.append_until(boundary + 3).await;
    let victim = boundary + 2;
    assert!(appended.contains(&victim), "{appended:?}");
    tamper(&site, victim).await;
    let finished = site.archive(&["--partial-after-seconds", "0"]);
    assert_eq!(
        finished.status.code(),
        Some(1),
        "a broken trail fails the run: {}",
        finished.stderr
    );
    let message = format!("the audit trail is broken at seq {victim}");
    assert!(finished.stderr.contains(&message), "the seq is named: {}", finished.stderr);
    let uploaded: Vec<Value> = finished
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let mut expected = Vec::new();
    let mut first = 38;
    while first <= boundary {
        let end = first.div_ceil(CHUNK) * CHUNK;
        expected.push((first, end));
        first = end + 1;
    }
    assert_eq!(ranges(&uploaded), expected, "the good chunks before the break");
    let objects = site.objects().await;
    check_objects(&objects);
    let last = objects.last().expect("objects").meta_seq("last-seq");
    assert_eq!(last, boundary, "nothing holding seq {victim} was uploaded");
    site.close().await;
}

/// One `#[tokio::test]` per scenario and backend: `embedded::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Embedded).await;
            })+
        }

        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Postgres).await;
            })+
        }
    };
}

on_both_backends!(archives_the_trail);
