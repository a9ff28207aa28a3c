//! The fixture of the POPIA tests (`popia.rs`), also used by `observability.rs` and
//! `audit_archive.rs`: a [`Site`] (one backend's data and the gateway serving it), the
//! store opened directly around the gateway, tampering with the audit trail as an attacker
//! with write access to the storage would, and small HTTP helpers for the vault, the
//! trail and the report. It asserts nothing about POPIA itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use storage::CoreStore;
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::postgres::{PgSettings, PgStore};
use tempfile::TempDir;

use crate::pg_cluster::{self, TestDatabase};
use crate::support::{self, Api, Gateway, Operator};

/// Bound on every wait for a background job's effect.
pub(crate) const WAIT_MAX: Duration = Duration::from_secs(30);
/// Pause between two polls.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// Seconds in a day.
pub(crate) const DAY_S: u64 = 86_400;

// ---------------------------------------------------------------------------------------
// The two backends
// ---------------------------------------------------------------------------------------

/// Which store a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The redb file in the data directory (keys in `DATA_DIR/keys.json`).
    Embedded,
    /// A fresh database on the shared server (keys in a `file:` secret the test rewrites).
    Postgres,
}

/// One backend's data, the gateway serving it (at most one at a time), and everything the
/// gateways run on it wrote.
pub(crate) struct Site {
    pub(crate) backend: Backend,
    pub(crate) dir: TempDir,
    pub(crate) db: Option<TestDatabase>,
    pub(crate) keys_file: PathBuf,
    pub(crate) gateway: Option<Gateway>,
    pub(crate) logs: String,
}

impl Site {
    pub(crate) async fn new(backend: Backend) -> Self {
        let dir = support::data_dir();
        let (db, keys_file) = match backend {
            // The first command on the directory generates it.
            Backend::Embedded => (None, dir.path().join("keys.json")),
            Backend::Postgres => {
                let keys_file = dir.path().join("keys-secret.json");
                let document = gateway::keys::generate_document().expect("a keys document");
                write_private(&keys_file, &document);
                (Some(TestDatabase::create().await), keys_file)
            }
        };
        Self { backend, dir, db, keys_file, gateway: None, logs: String::new() }
    }

    /// The store flags of every command: the data directory, or the database and keys.
    pub(crate) fn storage_args(&self) -> Vec<String> {
        let dir = self.dir.path().to_str().expect("a UTF-8 temporary path").to_owned();
        match &self.db {
            None => vec!["--data-dir".into(), dir],
            Some(db) => vec![
                "--storage".into(),
                db.gateway_url(),
                "--keys-secret".into(),
                format!("file:{}", self.keys_file.display()),
            ],
        }
    }

    pub(crate) fn tenant(&self, name: &str) -> String {
        let args = self.storage_args();
        support::create_tenant_with(name, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub(crate) fn operator(&self, username: &str, role: &str) -> Operator {
        let args = self.storage_args();
        support::create_operator(
            username,
            role,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    /// Starts the gateway with `extra` flags; a client of it once it is ready.
    pub(crate) async fn start(&mut self, extra: &[&str]) -> Api {
        assert!(self.gateway.is_none(), "one gateway at a time");
        let mut args = match self.backend {
            Backend::Embedded => Vec::new(),
            Backend::Postgres => self.storage_args(),
        };
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let gateway = Gateway::start(self.dir.path(), &args);
        let api = Api::http1(gateway.addr());
        api.wait_ready().await;
        self.gateway = Some(gateway);
        api
    }

    /// SIGTERM; the gateway must exit 0. Keeps what it wrote.
    pub(crate) fn stop(&mut self) {
        let finished = self.gateway.take().expect("a running gateway").stop();
        assert_eq!(
            finished.status.code(),
            Some(0),
            "SIGTERM exits 0; stderr:\n{}",
            finished.stderr
        );
        self.logs.push_str(&finished.stdout);
        self.logs.push_str(&finished.stderr);
    }

    /// The store, opened directly as the gateway opens it (the gateway must be stopped:
    /// redb allows one process).
    pub(crate) fn open_store(&self) -> DirectStore {
        assert!(self.gateway.is_none(), "stop the gateway before opening its store");
        open_direct_store(self.dir.path(), self.db.as_ref())
    }

    /// What an attacker with the files reads (the gateway must be stopped): every file
    /// of the data directory after the store was opened once more (which compacts it
    /// after erasures), or `pg_dump --data-only` after `VACUUM FULL` of the vault's and
    /// the trail's tables.
    pub(crate) async fn raw_bytes(&self) -> Vec<u8> {
        assert!(self.gateway.is_none(), "stop the gateway before reading its files");
        match &self.db {
            None => {
                self.open_store().close();
                let mut bytes = Vec::new();
                let entries = std::fs::read_dir(self.dir.path()).expect("listing the data dir");
                for entry in entries {
                    let path = entry.expect("a directory entry").path();
                    if path.is_file() {
                        bytes.extend(std::fs::read(&path).expect("reading a data file"));
                    }
                }
                bytes
            }
            Some(db) => {
                let client = pg_cluster::connect(&db.conninfo()).await;
                client
                    .batch_execute(
                        "VACUUM FULL subjects, subject_keys, subject_fields, subject_indexes, \
                         consents, accounts, audit_records, dsars",
                    )
                    .await
                    .expect("VACUUM FULL");
                let dump = std::process::Command::new("pg_dump")
                    .args(["--data-only", "--no-owner", "--dbname", &db.conninfo()])
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("pg_dump is required (it comes with PostgreSQL): {e}")
                    });
                let stderr = String::from_utf8_lossy(&dump.stderr);
                assert!(dump.status.success(), "pg_dump: {stderr}");
                assert!(
                    contains(&dump.stdout, b"COPY public.subjects"),
                    "the dump holds the vault"
                );
                dump.stdout
            }
        }
    }

    /// A superuser session on the database (PostgreSQL only).
    pub(crate) async fn superuser(&self) -> tokio_postgres::Client {
        let db = self.db.as_ref().expect("a PostgreSQL site");
        pg_cluster::connect(&db.conninfo()).await
    }

    pub(crate) async fn close(mut self) {
        if self.gateway.is_some() {
            self.stop();
        }
        if let Some(db) = self.db.take() {
            db.drop_now().await;
        }
    }
}

/// The store in `dir` (embedded) or in `db` (PostgreSQL), opened directly as the gateway
/// opens it; no gateway may run on the embedded one (redb allows one process).
pub(crate) fn open_direct_store(dir: &std::path::Path, db: Option<&TestDatabase>) -> DirectStore {
    match db {
        None => {
            let config = EmbeddedConfig::in_dir(dir);
            let store = Arc::new(Embedded::open(&config).expect("opening the embedded store"));
            DirectStore { core: Some(CoreStore::Embedded(store.clone())), embedded: Some(store) }
        }
        Some(db) => {
            let config: tokio_postgres::Config =
                db.conninfo().parse().expect("the test database's conninfo");
            let limits = pool::pg::ConnectLimits {
                connect_timeout: Duration::from_secs(5),
                statement_timeout: Duration::from_secs(30),
            };
            let connector = Arc::new(pool::pg::Connector::new(config, pool::pg::Tls::Off, limits));
            let settings = PgSettings {
                read_pool_size_max: 2,
                pool_wait_timeout: Duration::from_secs(10),
                expire_batch_max: 0,
            };
            let core = PgStore::new(connector, settings).core().expect("a PostgreSQL core");
            DirectStore { core: Some(CoreStore::Postgres(Box::new(core))), embedded: None }
        }
    }
}

/// The store opened by the test; [`DirectStore::close`] releases it.
pub(crate) struct DirectStore {
    pub(crate) core: Option<CoreStore>,
    pub(crate) embedded: Option<Arc<Embedded>>,
}

impl DirectStore {
    pub(crate) fn core(&self) -> &CoreStore {
        self.core.as_ref().expect("an open store")
    }

    pub(crate) async fn tenant_id(&self, name: &str) -> u64 {
        let tenant = self.core().tenant_by_name(name).await.expect("reading tenants");
        tenant.unwrap_or_else(|| panic!("no tenant {name}")).id
    }

    pub(crate) async fn subject(&self, tenant: u64, id: &str) -> storage::vault::Subject {
        let found = self.core().subject(tenant, uuid_of(id)).await.expect("reading a subject");
        found.unwrap_or_else(|| panic!("no subject {id}"))
    }

    /// Closes the store (the embedded one's writer stops and its lock is released).
    pub(crate) fn close(mut self) {
        drop(self.core.take());
        if let Some(store) = self.embedded.take() {
            store.close();
        }
    }
}

/// Writes `text` to a new file readable by its owner only.
pub(crate) fn write_private(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes()).expect("writing a keys file");
    file.sync_all().expect("syncing a keys file");
}

// ---------------------------------------------------------------------------------------
// Requests and checks
// ---------------------------------------------------------------------------------------

/// `method path` with `auth` and a JSON body (`Value::Null`: none); the status and body.
pub(crate) async fn send(
    api: &Api,
    auth: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).expect("json") };
    let reply = api.call(method, path, &[("authorization", auth)], bytes).await;
    (reply.status, reply.json())
}

/// Creates a subject of the tenant `auth` holding `fields`; its id.
pub(crate) async fn create_subject(api: &Api, auth: &str, fields: &Value) -> String {
    let (status, body) = api.post_json("/v1/subjects", auth, json!({"fields": fields})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut names: Vec<&String> = fields.as_object().expect("an object").keys().collect();
    names.sort();
    assert_eq!(body["fields"], json!(names), "the created field names: {body}");
    body["id"].as_str().unwrap_or_else(|| panic!("no id: {body}")).to_owned()
}

/// The subject's fields as its tenant reads them (200 expected).
pub(crate) async fn fields_of(api: &Api, auth: &str, id: &str) -> Value {
    let (status, body) = api.get_json(&format!("/v1/subjects/{id}"), auth).await;
    assert_eq!(status, StatusCode::OK, "GET subject {id}: {body}");
    assert_eq!(body["id"], id, "{body}");
    body["fields"].clone()
}

/// The ids a look-up by `query` (`email=...`) finds.
pub(crate) async fn look_up(api: &Api, auth: &str, query: &str) -> Value {
    let (status, body) = api.get_json(&format!("/v1/subjects?{query}"), auth).await;
    assert_eq!(status, StatusCode::OK, "look-up {query}: {body}");
    body["data"].clone()
}

/// Asserts an error answer: its status, `error.code` and `error.param`.
pub(crate) fn assert_error(
    got: &(StatusCode, Value),
    status: StatusCode,
    code: &str,
    param: Option<&str>,
) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["param"], json!(param), "{body}");
}

/// The whole audit trail, page by page, as the export writes it (as `token`).
pub(crate) async fn audit_trail(api: &Api, token: &str) -> Vec<Value> {
    let mut records: Vec<Value> = Vec::new();
    let mut path = "/v1/audit/export?limit=1000".to_owned();
    loop {
        let reply = api.call(Method::GET, &path, &[("authorization", token)], Vec::new()).await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, StatusCode::OK, "{path}: {text}");
        assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
        for line in text.lines() {
            let record: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let expected = records.len() as u64 + 1;
            assert_eq!(record["seq"], expected, "the export goes in order from 1: {line}");
            records.push(record);
        }
        match reply.header("x-next-after") {
            Some(after) => path = format!("/v1/audit/export?limit=1000&after={after}"),
            None => return records,
        }
    }
}

/// The records about `subject`, in order.
pub(crate) fn about<'a>(records: &'a [Value], subject: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["subject"] == subject).collect()
}

/// The actions of `records`, in order.
pub(crate) fn actions(records: &[&Value]) -> Vec<String> {
    records.iter().map(|r| r["action"].as_str().expect("an action").to_owned()).collect()
}

/// The compliance report (200 expected).
pub(crate) async fn report(api: &Api, token: &str) -> Value {
    let (status, body) = send(api, token, Method::GET, "/v1/compliance/report", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the report until `done` accepts it; panics after [`WAIT_MAX`] naming `what` did
/// not happen, with the last report.
pub(crate) async fn poll_report(
    api: &Api,
    token: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let got = report(api, token).await;
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what} within {WAIT_MAX:?}; last report: {got:#}");
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// Lower-case hex, as the export writes details and PostgreSQL prints bytea.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `bytes` hold `needle` raw or hex-encoded.
pub(crate) fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    contains(bytes, needle) || contains(bytes, hex(needle).as_bytes())
}

pub(crate) fn uuid_of(id: &str) -> u128 {
    support::id_of(&json!(id))
}

/// 16 random hex digits, unique to this run.
pub(crate) fn random_tag() -> String {
    crypto::signature::random_nonce().expect("the OS random generator")[..16].to_owned()
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// Changes the action of the trail's record `seq` from `from` to `to` (the same length)
/// around the store, as a tamperer with write access to it would: on PostgreSQL a
/// superuser disables the table's triggers for one UPDATE; on the embedded store the redb
/// file is rewritten while the gateway is stopped (the record's row is
/// `0x01 ++ prev_hash ++ hash ++ canonical bytes`, the action a length-prefixed text).
pub(crate) async fn tamper(site: &Site, seq: u64, from: &str, to: &str) {
    let superuser = match site.backend {
        Backend::Postgres => Some(site.superuser().await),
        Backend::Embedded => {
            assert!(site.gateway.is_none(), "stop the gateway before rewriting its file");
            None
        }
    };
    tamper_store(site.dir.path(), superuser, seq, from, to).await;
}

/// [`tamper`] on the store in `dir`, or through `superuser` on PostgreSQL.
pub(crate) async fn tamper_store(
    dir: &std::path::Path,
    superuser: Option<tokio_postgres::Client>,
    seq: u64,
    from: &str,
    to: &str,
) {
    assert_eq!(from.len(), to.len(), "a same-length action keeps the row's layout");
    match superuser {
        Some(mut client) => {
            let txn = client.transaction().await.expect("a transaction");
            txn.batch_execute("ALTER TABLE audit_records DISABLE TRIGGER USER")
                .await
                .expect("disable");
            let seq = i64::try_from(seq).expect("a bigint seq");
            let changed = txn
                .execute(
                    "UPDATE audit_records SET action = $2 WHERE seq = $1 AND action = $3",
                    &[&seq, &to, &from],
                )
                .await
                .expect("the tampering UPDATE");
            assert_eq!(changed, 1, "one record changed");
            txn.batch_execute("ALTER TABLE audit_records ENABLE TRIGGER USER")
                .await
                .expect("enable");
            txn.commit().await.expect("commit");
        }
        None => {
            use redb::{ReadableTable, TableDefinition};
            const AUDIT_RECORDS: TableDefinition<u64, &[u8]> =
                TableDefinition::new("audit_records");
            let path = dir.join(storage::embedded::DATABASE_FILE);
            let db = redb::Database::open(&path).expect("opening the redb file");
            let txn = db.begin_write().expect("a write transaction");
            {
                let mut table = txn.open_table(AUDIT_RECORDS).expect("the audit_records table");
                let mut row =
                    table.get(seq).expect("reading").expect("the record's row").value().to_vec();
                let mut needle = u32::try_from(from.len()).expect("short").to_be_bytes().to_vec();
                needle.extend_from_slice(from.as_bytes());
                let at: Vec<usize> =
                    (0..row.len()).filter(|&i| row[i..].starts_with(&needle)).collect();
                assert_eq!(at.len(), 1, "the action appears once in the row");
                row[at[0] + 4..at[0] + 4 + to.len()].copy_from_slice(to.as_bytes());
                table.insert(seq, row.as_slice()).expect("rewriting the row");
            }
            txn.commit().expect("commit");
        }
    }
}
