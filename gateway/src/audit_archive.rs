//! `gateway audit-archive`: copies the hash-chained audit trail (ADR 0008) to an S3 bucket
//! with Object Lock, chunk by chunk, so that the trail outlives the database and can be
//! checked against its chain without it (POPIA s.19 and s.14: docs/popia.md).
//!
//! Each object holds the records `first..=last` exactly as `GET /v1/audit/export` writes
//! them (the same encoder, [`crate::popia::officer::write_export_line`]) under the key
//! `{prefix}/{first:020}-{last:020}.ndjson`. Chunks are aligned to multiples of
//! `--chunk-records` (1-10000, 10001-20000, ...). A run lists the prefix to find the
//! highest archived seq (and checks that the objects cover 1 to it without a gap), reads
//! the last object's `last-hash` metadata, then uploads every complete chunk after it and
//! the trailing partial chunk only once its newest record is older than
//! `--partial-after-seconds`. A partial chunk gets the key of its exact range; the next run
//! starts after it and ends the next object at the same aligned boundary, so keys stay
//! deterministic by range: two concurrent runs that see the same trail write identical
//! objects (on a versioned, locked bucket the second is a new version of the same bytes;
//! Object Lock forbids changing a locked version, not adding one).
//!
//! Before an upload every record of the chunk is checked: contiguous seqs, each hash right
//! for its canonical bytes, each `prev_hash` the one before (the first chunk's from
//! genesis, later ones from the previous object's `last-hash`). A broken record stops the
//! run naming its seq: a tampered trail is never archived as if it were good. Each upload
//! carries its SHA-256 (`x-amz-checksum-sha256`, which an Object Lock bucket requires),
//! SSE-KMS when a key is given, and metadata `first-seq`, `last-seq`, `records`,
//! `prev-hash` and `last-hash` (hex).
//!
//! Bounded: at most `--max-chunks` uploads per run, [`LIST_PAGES_MAX`] listing pages, and
//! one chunk in memory. This module never deletes or overwrites an object, never logs or
//! prints a record (only keys, seqs, sizes and hashes), and never uploads a chunk it has
//! not verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption};
use crypto::chain::{Broken, GENESIS, Hash, Verifier};
use serde_json::json;
use storage::audit::{AuditRecord, PAGE_MAX};
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::secrets::{AwsBounds, AwsSettings};
use storage::{CoreStore, Store, StoreError};

use crate::config::{ConfigError, StorageArgs, StorageConfig};
use crate::popia::officer::write_export_line;

/// Records per object when `--chunk-records` is not given.
pub const CHUNK_RECORDS_DEFAULT: u64 = 10_000;
/// Most records per object (one chunk is held in memory: at most about 9 KiB a record
/// with a full 4 KiB detail, typically 0.5 KiB).
pub const CHUNK_RECORDS_MAX: u64 = 50_000;
/// Most objects one run uploads when `--max-chunks` is not given.
pub const MAX_CHUNKS_DEFAULT: usize = 100;
/// The largest `--max-chunks`.
pub const MAX_CHUNKS_MAX: usize = 10_000;
/// Most pages (of up to 1000 keys) a run lists under the prefix.
pub const LIST_PAGES_MAX: usize = 10_000;
/// The longest `--prefix`.
const PREFIX_LEN_MAX: usize = 200;
/// Digits of a seq in a key.
const SEQ_DIGITS: usize = 20;
/// The suffix of every archived object's key.
const KEY_SUFFIX: &str = ".ndjson";

/// Bounds of every S3 call (an upload of a full chunk is tens of megabytes at most).
const S3_BOUNDS: AwsBounds = AwsBounds {
    connect: Duration::from_secs(5),
    attempt: Duration::from_secs(120),
    operation: Duration::from_secs(360),
    attempts_max: 3,
};

/// The flags of `gateway audit-archive`.
#[derive(Clone, Debug, clap::Args)]
pub struct AuditArchiveArgs {
    /// The S3 bucket (Object Lock and versioning enabled) the trail is archived to.
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_BUCKET")]
    pub bucket: String,
    /// The key prefix of the archived objects (no leading or trailing '/').
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_PREFIX", default_value = "audit")]
    pub prefix: String,
    /// Records per object; objects are aligned to multiples of it.
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_CHUNK_RECORDS", default_value_t = CHUNK_RECORDS_DEFAULT)]
    pub chunk_records: u64,
    /// A trailing partial chunk is archived once its newest record is this old.
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_PARTIAL_AFTER_SECONDS", default_value_t = 3600)]
    pub partial_after_seconds: u64,
    /// Most objects one run uploads (the next run continues).
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_MAX_CHUNKS", default_value_t = MAX_CHUNKS_DEFAULT)]
    pub max_chunks: usize,
    /// A KMS key (id, alias or ARN) to encrypt the objects with (SSE-KMS); default: the
    /// bucket's default encryption.
    #[arg(long, env = "PROTEA_AUDIT_ARCHIVE_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Storage flags.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// The validated settings of a run.
#[derive(Clone, Debug)]
pub struct ArchiveSettings {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without a trailing '/'.
    pub prefix: String,
    /// Records per object.
    pub chunk_records: u64,
    /// Age of its newest record after which a partial chunk is archived.
    pub partial_after: Duration,
    /// Most uploads per run.
    pub max_chunks: usize,
    /// The SSE-KMS key, if any.
    pub kms_key_id: Option<String>,
}

impl AuditArchiveArgs {
    /// Validates the flags (not the storage flags) into [`ArchiveSettings`].
    pub fn validate(&self) -> Result<ArchiveSettings, ConfigError> {
        if !valid_bucket(&self.bucket) {
            return Err(invalid("bucket", "3-63 characters of a-z, 0-9, '.' and '-'"));
        }
        if !valid_prefix(&self.prefix) {
            return Err(invalid(
                "prefix",
                "1-200 characters of A-Z, a-z, 0-9, '/', '_', '.' and '-', without a \
                 leading, trailing or doubled '/'",
            ));
        }
        if !(1..=CHUNK_RECORDS_MAX).contains(&self.chunk_records) {
            return Err(invalid("chunk-records", format!("must be from 1 to {CHUNK_RECORDS_MAX}")));
        }
        if self.partial_after_seconds > 366 * 86_400 {
            return Err(invalid("partial-after-seconds", "must be at most 31622400 (a year)"));
        }
        if !(1..=MAX_CHUNKS_MAX).contains(&self.max_chunks) {
            return Err(invalid("max-chunks", format!("must be from 1 to {MAX_CHUNKS_MAX}")));
        }
        if self.kms_key_id.as_deref().is_some_and(|key| key.is_empty() || key.len() > 2048) {
            return Err(invalid("kms-key-id", "a KMS key id, alias or ARN"));
        }
        Ok(ArchiveSettings {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            chunk_records: self.chunk_records,
            partial_after: Duration::from_secs(self.partial_after_seconds),
            max_chunks: self.max_chunks,
            kms_key_id: self.kms_key_id.clone(),
        })
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { key, message: message.into() }
}

fn valid_bucket(bucket: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    (3..=63).contains(&bucket.len()) && bucket.bytes().all(allowed)
}

fn valid_prefix(prefix: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"/_.-".contains(&b);
    (1..=PREFIX_LEN_MAX).contains(&prefix.len())
        && prefix.bytes().all(allowed)
        && !prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the trail failed.
    #[error("reading the audit trail: {0}")]
    Store(#[from] StoreError),
    /// An S3 call failed (after the SDK's retries).
    #[error("S3 {operation} {target} failed: {message}")]
    S3 {
        /// The call.
        operation: &'static str,
        /// The bucket or key.
        target: String,
        /// The SDK's error, with its context.
        message: String,
    },
    /// A record of the trail does not verify: nothing from it on is archived.
    #[error(
        "the audit trail is broken at seq {seq} ({reason}); nothing from seq {seq} on was \
         archived. GET /v1/audit/verify names the first broken record; see docs/runbooks.md \
         (handle a POPIA breach)"
    )]
    ChainBroken {
        /// The first record that does not verify.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The archive's objects do not cover every seq from 1 to their highest.
    #[error("the archive has no object holding seq {missing_seq} (the next one is {key})")]
    ArchiveGap {
        /// The first seq no object holds.
        missing_seq: u64,
        /// The object after the gap.
        key: String,
    },
    /// The archive holds records the trail does not (another database, or a restore).
    #[error(
        "the archive holds records up to seq {archived} but the trail's head is seq {head}: \
         is this the bucket and prefix of another database?"
    )]
    ArchiveAhead {
        /// The highest archived seq.
        archived: u64,
        /// The trail's head.
        head: u64,
    },
    /// The trail's record at the archive's end differs from the archived one.
    #[error("the trail's record {seq} differs from the archived one in {key} (its hash)")]
    ArchiveMismatch {
        /// The seq.
        seq: u64,
        /// The archived object.
        key: String,
    },
    /// An archived object lacks metadata this command writes.
    #[error("the archived object {key} has no valid {what} metadata")]
    Metadata {
        /// The object.
        key: String,
        /// The metadata key.
        what: &'static str,
    },
    /// The prefix holds more objects than a run lists.
    #[error("more than {LIST_PAGES_MAX} pages of objects under the prefix: use a new prefix")]
    TooManyObjects,
}

/// What a run did (printed as its last line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The highest seq archived after the run (0: none).
    pub archived_through_seq: u64,
    /// The trail's head when the run started.
    pub head_seq: u64,
    /// Objects uploaded.
    pub uploaded_objects: u64,
    /// Records in them.
    pub uploaded_records: u64,
    /// Why records after `archived_through_seq` were left for a later run, if any were.
    pub pending: Option<&'static str>,
}

/// Runs `gateway audit-archive`: one JSON line per uploaded object on stdout, then the
/// summary. A configuration error is a [`ConfigError`] (exit 64).
pub fn run(args: &AuditArchiveArgs) -> anyhow::Result<()> {
    let settings = args.validate()?;
    let storage = args.storage.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = s3_client().await?;
        let (store, embedded) = open_store(&args.storage, storage).await?;
        let result = archive(&store, &client, &settings, &mut |line| println!("{line}")).await;
        drop(store);
        if let Some(embedded) = embedded {
            embedded.close();
        }
        let summary = result?;
        println!("{}", summary_line(&settings, &summary));
        Ok(())
    })
}

fn summary_line(settings: &ArchiveSettings, summary: &Summary) -> serde_json::Value {
    json!({
        "event": "summary",
        "bucket": settings.bucket,
        "prefix": settings.prefix,
        "archived_through_seq": summary.archived_through_seq,
        "head_seq": summary.head_seq,
        "uploaded_objects": summary.uploaded_objects,
        "uploaded_records": summary.uploaded_records,
        "up_to_date": summary.pending.is_none(),
        "pending": summary.pending,
    })
}

/// The trail's store: the embedded one opened directly (the gateway must be stopped:
/// redb allows one process), or PostgreSQL.
async fn open_store(
    args: &StorageArgs,
    storage: StorageConfig,
) -> anyhow::Result<(CoreStore, Option<std::sync::Arc<Embedded>>)> {
    match storage {
        StorageConfig::Embedded => {
            let embedded = Embedded::open(&EmbeddedConfig::in_dir(&args.data_dir)).context(
                "opening the embedded store (audit-archive reads it directly: stop the gateway \
                 first, or archive from PostgreSQL)",
            )?;
            let embedded = std::sync::Arc::new(embedded);
            Ok((CoreStore::Embedded(embedded.clone()), Some(embedded)))
        }
        StorageConfig::Postgres(config) => {
            let postgres = crate::backend::postgres(&config).await?;
            crate::backend::connect_and_migrate(&postgres.store).await?;
            let store = Store::Postgres(postgres.store);
            Ok((store.core()?, None))
        }
    }
}

/// An S3 client from the standard AWS environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL`); path-style addressing when an endpoint is given (an emulator).
pub async fn s3_client() -> anyhow::Result<Client> {
    let sdk_config = AwsSettings::default()
        .sdk_config(S3_BOUNDS)
        .await
        .context("no AWS region: set AWS_REGION (ECS sets it in the task)")?;
    let path_style = sdk_config.endpoint_url().is_some();
    let config = aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(path_style);
    Ok(Client::from_conf(config.build()))
}

/// The key of the object holding `first..=last`.
pub fn object_key(prefix: &str, first: u64, last: u64) -> String {
    format!("{prefix}/{first:0w$}-{last:0w$}{KEY_SUFFIX}", w = SEQ_DIGITS)
}

/// The range `first..=last` of an archived object's key, if it is one.
fn parse_key(prefix: &str, key: &str) -> Option<(u64, u64)> {
    let name = key.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix(KEY_SUFFIX)?;
    let (first, last) = name.split_once('-')?;
    let digits = |s: &str| s.len() == SEQ_DIGITS && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (1 <= first && first <= last).then_some((first, last))
}

/// The last seq of the aligned chunk holding `seq`.
fn chunk_end(seq: u64, chunk_records: u64) -> u64 {
    (seq - 1) / chunk_records * chunk_records + chunk_records
}

/// Where the archive ends: the highest seq and the object holding it (`None` when
/// empty), after checking that the objects cover 1 to it.
async fn archived_end(
    client: &Client,
    settings: &ArchiveSettings,
) -> Result<Option<(u64, String)>, ArchiveError> {
    let list_prefix = format!("{}/", settings.prefix);
    let mut token: Option<String> = None;
    let mut end: Option<(u64, String)> = None;
    for _ in 0..LIST_PAGES_MAX {
        let page = client
            .list_objects_v2()
            .bucket(&settings.bucket)
            .prefix(&list_prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|error| s3_error("ListObjectsV2", &settings.bucket, &error))?;
        // Keys come in byte order: by first seq (zero-padded), then by last.
        for key in page.contents().iter().filter_map(|object| object.key()) {
            let Some((first, last)) = parse_key(&settings.prefix, key) else { continue };
            let covered = end.as_ref().map_or(0, |(seq, _)| *seq);
            if first > covered + 1 {
                return Err(ArchiveError::ArchiveGap { missing_seq: covered + 1, key: key.into() });
            }
            if last > covered {
                end = Some((last, key.to_owned()));
            }
        }
        match page.next_continuation_token().filter(|_| page.is_truncated() == Some(true)) {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok(end),
        }
    }
    Err(ArchiveError::TooManyObjects)
}

/// The `last-hash` metadata of the archived object `key`.
async fn archived_last_hash(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Hash, ArchiveError> {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|error| s3_error("HeadObject", key, &error))?;
    let text = head.metadata().and_then(|metadata| metadata.get("last-hash"));
    let metadata = || ArchiveError::Metadata { key: key.to_owned(), what: "last-hash" };
    let bytes = data_encoding::HEXLOWER.decode(text.ok_or_else(metadata)?.as_bytes());
    bytes.ok().and_then(|bytes| Hash::try_from(bytes).ok()).ok_or_else(metadata)
}

fn s3_error<E, R>(
    operation: &'static str,
    target: &str,
    error: &aws_sdk_s3::error::SdkError<E, R>,
) -> ArchiveError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ArchiveError::S3 {
        operation,
        target: target.to_owned(),
        message: aws_sdk_s3::error::DisplayErrorContext(error).to_string(),
    }
}

/// Archives every chunk after the archive's end (see the module doc), calling `report`
/// with one JSON line per uploaded object.
pub async fn archive(
    store: &CoreStore,
    client: &Client,
    settings: &ArchiveSettings,
    report: &mut dyn FnMut(serde_json::Value),
) -> Result<Summary, ArchiveError> {
    let archived = archived_end(client, settings).await?;
    let head = store.audit_head().await?;
    let head_seq = head.map_or(0, |(seq, _)| seq);
    let (mut covered, mut prev_hash) = match &archived {
        None => (0, GENESIS),
        Some((last, key)) => (*last, archived_last_hash(client, &settings.bucket, key).await?),
    };
    if covered > head_seq {
        return Err(ArchiveError::ArchiveAhead { archived: covered, head: head_seq });
    }
    if let (Some((seq, hash)), Some((_, key))) = (head, &archived)
        && seq == covered
        && hash != prev_hash
    {
        return Err(ArchiveError::ArchiveMismatch { seq, key: key.clone() });
    }
    let mut summary = Summary {
        archived_through_seq: covered,
        head_seq,
        uploaded_objects: 0,
        uploaded_records: 0,
        pending: None,
    };
    while covered < head_seq {
        if summary.uploaded_objects == settings.max_chunks as u64 {
            summary.pending = Some("max_chunks");
            break;
        }
        let first = covered + 1;
        let aligned_end = chunk_end(first, settings.chunk_records);
        let last = aligned_end.min(head_seq);
        let chunk = read_chunk(store, first, last, prev_hash).await?;
        if last < aligned_end && !older_than(chunk.newest_at_ns, settings.partial_after) {
            summary.pending = Some("partial_chunk_too_new");
            break;
        }
        let uploaded = upload(client, settings, first, last, &chunk).await?;
        report(uploaded);
        (covered, prev_hash) = (last, chunk.last_hash);
        summary.archived_through_seq = covered;
        summary.uploaded_objects += 1;
        summary.uploaded_records += last - first + 1;
    }
    Ok(summary)
}

/// One verified chunk, encoded.
struct Chunk {
    ndjson: Vec<u8>,
    first_prev_hash: Hash,
    last_hash: Hash,
    newest_at_ns: u64,
}

/// Reads and verifies records `first..=last`, the first linking to `prev_hash`.
async fn read_chunk(
    store: &CoreStore,
    first: u64,
    last: u64,
    prev_hash: Hash,
) -> Result<Chunk, ArchiveError> {
    let mut verifier = Verifier::new(prev_hash);
    let mut ndjson = Vec::new();
    let mut newest_at_ns = 0;
    let mut after = first - 1;
    while after < last {
        let limit = usize::try_from(last - after).unwrap_or(PAGE_MAX).min(PAGE_MAX);
        let records = store.audit_records(after, limit).await?;
        if records.is_empty() {
            return Err(broken(after + 1, "missing from the trail".into()));
        }
        for record in &records {
            check_record(&mut verifier, record, after + 1, first)?;
            write_export_line(&mut ndjson, record);
            newest_at_ns = record.entry.at_ns;
            after = record.seq;
        }
    }
    Ok(Chunk { ndjson, first_prev_hash: prev_hash, last_hash: verifier.last(), newest_at_ns })
}

/// Checks that `record` is seq `expected` and verifies in the chain (the chunk started at
/// `first`).
fn check_record(
    verifier: &mut Verifier,
    record: &AuditRecord,
    expected: u64,
    first: u64,
) -> Result<(), ArchiveError> {
    if record.seq != expected {
        return Err(broken(expected, "missing from the trail".into()));
    }
    match verifier.check(&record.prev_hash, &record.hash, &record.canonical_bytes()) {
        Ok(()) => Ok(()),
        Err(Broken::Link { .. }) if record.seq == first && first > 1 => Err(broken(
            record.seq,
            "its link to the last archived record (that object's last-hash) is wrong".into(),
        )),
        Err(Broken::Link { .. }) => {
            Err(broken(record.seq, "its link to the previous record is wrong".into()))
        }
        Err(Broken::Hash { .. }) => {
            Err(broken(record.seq, "its hash does not match its contents".into()))
        }
    }
}

fn broken(seq: u64, reason: String) -> ArchiveError {
    ArchiveError::ChainBroken { seq, reason }
}

fn older_than(at_ns: u64, age: Duration) -> bool {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    now_ns.saturating_sub(at_ns) >= u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)
        && at_ns <= now_ns
}

/// Uploads `chunk` as the object of `first..=last`; the JSON line reporting it.
async fn upload(
    client: &Client,
    settings: &ArchiveSettings,
    first: u64,
    last: u64,
    chunk: &Chunk,
) -> Result<serde_json::Value, ArchiveError> {
    let key = object_key(&settings.prefix, first, last);
    let sha256 = ring::digest::digest(&ring::digest::SHA256, &chunk.ndjson);
    let checksum = data_encoding::BASE64.encode(sha256.as_ref());
    let hex = |bytes: &[u8]| data_encoding::HEXLOWER.encode(bytes);
    let last_hash = hex(&chunk.last_hash);
    let mut put = client
        .put_object()
        .bucket(&settings.bucket)
        .key(&key)
        .content_type("application/x-ndjson")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(&checksum)
        .metadata("first-seq", first.to_string())
        .metadata("last-seq", last.to_string())
        .metadata("records", (last - first + 1).to_string())
        .metadata("prev-hash", hex(&chunk.first_prev_hash))
        .metadata("last-hash", &last_hash)
        .body(ByteStream::from(chunk.ndjson.clone()));
    if let Some(kms_key_id) = &settings.kms_key_id {
        put = put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key_id);
    }
    let output = put.send().await.map_err(|error| s3_error("PutObject", &key, &error))?;
    Ok(json!({
        "event": "uploaded",
        "key": key,
        "version_id": output.version_id(),
        "first_seq": first,
        "last_seq": last,
        "records": last - first + 1,
        "bytes": chunk.ndjson.len(),
        "sha256": hex(sha256.as_ref()),
        "last_hash": last_hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_range() {
        let key = object_key("audit/prod", 10_001, 20_000);
        assert_eq!(key, "audit/prod/00000000000000010001-00000000000000020000.ndjson");
        assert_eq!(parse_key("audit/prod", &key), Some((10_001, 20_000)));
        assert!(object_key("a", 9, 10) < object_key("a", 10, 10), "byte order is seq order");
        for foreign in [
            "audit/prod/0-1.ndjson",
            "audit/prod/00000000000000000002-00000000000000000001.ndjson",
            "audit/prod/00000000000000000000-00000000000000000001.ndjson",
            "audit/prod/00000000000000000001-00000000000000000002.json",
            "audit/prodx/00000000000000000001-00000000000000000002.ndjson",
            "audit/prod/sub/00000000000000000001-00000000000000000002.ndjson",
        ] {
            assert_eq!(parse_key("audit/prod", foreign), None, "{foreign}");
        }
    }

    #[test]
    fn chunks_are_aligned_to_multiples() {
        let cases = [(1, 10, 10), (10, 10, 10), (11, 10, 20), (24, 10, 30), (1, 1, 1), (7, 1, 7)];
        for (seq, chunk_records, end) in cases {
            assert_eq!(chunk_end(seq, chunk_records), end, "seq {seq} chunk {chunk_records}");
        }
    }

    #[test]
    fn flags_are_checked_naming_the_key() {
        let args = |bucket: &str, prefix: &str, chunk: u64, max: usize| AuditArchiveArgs {
            bucket: bucket.into(),
            prefix: prefix.into(),
            chunk_records: chunk,
            partial_after_seconds: 3600,
            max_chunks: max,
            kms_key_id: None,
            storage: <crate::config::Cli as clap::Parser>::parse_from(["gateway"]).serve.storage,
        };
        assert!(args("protea-audit", "audit", 10_000, 100).validate().is_ok());
        let cases = [
            (args("Protea", "audit", 1, 1), "bucket"),
            (args("ab", "audit", 1, 1), "bucket"),
            (args("b-1", "/audit", 1, 1), "prefix"),
            (args("b-1", "audit/", 1, 1), "prefix"),
            (args("b-1", "a//b", 1, 1), "prefix"),
            (args("b-1", "", 1, 1), "prefix"),
            (args("b-1", "audit", 0, 1), "chunk-records"),
            (args("b-1", "audit", CHUNK_RECORDS_MAX + 1, 1), "chunk-records"),
            (args("b-1", "audit", 1, 0), "max-chunks"),
        ];
        for (bad, key) in cases {
            assert_eq!(bad.validate().expect_err(key).key, key);
        }
    }
}
