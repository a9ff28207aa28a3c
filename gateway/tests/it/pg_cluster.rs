//! PostgreSQL for the gateway's end-to-end tests, in two forms:
//!
//! - [`TestDatabase`]: a fresh database on the shared server named by
//!   `PROTEA_TEST_POSTGRES_URL` (default: the local server on 5432, user postgres), made
//!   per test and dropped afterwards (the pattern of `storage/tests/it/pg_support.rs`).
//! - [`Cluster`]: a private PostgreSQL instance (its own data directory, port and socket
//!   directory), for tests that stop, restart or reconfigure the server, which they must
//!   never do to the shared one other tests use in parallel. Optionally with TLS, on a
//!   certificate for `localhost` and 127.0.0.1 signed by a throwaway CA made here with the
//!   `openssl` command.
//!
//! A missing server or missing binaries fail the test with a message saying what is
//! missing: these tests never skip. initdb and postgres refuse to run as root, so when the
//! tests run as root the server runs as the `postgres` OS user (through `runuser`).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};

const DEFAULT_ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
/// Prefix of every database this crate's tests create on the shared server (the storage
/// tests use the same one, so either clears the other's leftovers).
const DATABASE_PREFIX: &str = "protea_it_";

/// The shared server's connection string (key=value or URL form).
pub fn admin_url() -> String {
    std::env::var("PROTEA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects with `conninfo`, spawning the connection task on the current runtime.
pub async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required at {conninfo:?} ({e}); run scripts/test, which starts it, \
             or set PROTEA_TEST_POSTGRES_URL"
        )
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops databases left by test processes that no longer run (a failed test skips its
/// clean-up). Names are `protea_it_{pid}_...`.
async fn drop_leftovers(admin: &Client) {
    let pattern = format!("{DATABASE_PREFIX}%");
    let rows =
        admin.query("SELECT datname FROM pg_database WHERE datname LIKE $1", &[&pattern]).await;
    for row in rows.expect("listing databases") {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A database on the shared server, created for one test and dropped afterwards.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Creates an empty database with a name unique to this process and call.
    pub async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{DATABASE_PREFIX}{}_gw{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await;
        drop_leftovers(&admin).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap_or_else(|e| panic!("dropping an old {name}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A tokio-postgres connection string for this database.
    pub fn conninfo(&self) -> String {
        let config: tokio_postgres::Config = admin_url().parse().expect("PROTEA_TEST_POSTGRES_URL");
        let mut parts = Vec::new();
        if let Some(Host::Tcp(host)) = config.get_hosts().first() {
            parts.push(format!("host={host}"));
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={user}"));
        }
        if let Some(password) = config.get_password() {
            let password =
                String::from_utf8_lossy(password).replace('\\', "\\\\").replace('\'', "\\'");
            parts.push(format!("password='{password}'"));
        }
        parts.push(format!("dbname={}", self.name));
        parts.join(" ")
    }

    /// The URL the gateway takes with `--storage`:
    /// `postgres://USER[:PASSWORD]@HOST:PORT/NAME` (TCP; a password only when the shared
    /// server's URL has one).
    pub fn gateway_url(&self) -> String {
        let url = admin_url();
        let config: tokio_postgres::Config = url.parse().expect("PROTEA_TEST_POSTGRES_URL");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            _ => panic!("PROTEA_TEST_POSTGRES_URL must name a TCP host for the gateway: {url:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = url_encode(config.get_user().unwrap_or("postgres"));
        let password = config
            .get_password()
            .map(|p| format!(":{}", url_encode(&String::from_utf8_lossy(p))))
            .unwrap_or_default();
        format!("postgres://{user}{password}@{host}:{port}/{}", self.name)
    }

    /// Drops the database, closing whatever connections are left.
    pub async fn drop_now(self) {
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap_or_else(|e| panic!("dropping database {}: {e}", self.name));
    }
}

/// Files of a cluster started with TLS.
struct TlsFiles {
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// Another CA, which signed nothing the server has.
    other_ca: PathBuf,
}

/// A private PostgreSQL instance in a temporary directory, stopped and removed when
/// dropped. Listens on 127.0.0.1 on a port of its own and on a Unix socket in its
/// directory; trust authentication for user `postgres`; `fsync` on.
pub struct Cluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
}

impl Cluster {
    /// A new cluster, started, speaking plain TCP.
    pub fn start_new() -> Self {
        Self::create(false)
    }

    /// A new cluster, started, with `ssl = on` on a certificate for `localhost` and
    /// 127.0.0.1 signed by [`Cluster::ca_file`].
    pub fn start_new_tls() -> Self {
        Self::create(true)
    }

    fn create(tls: bool) -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("protea-pg-")
            .tempdir()
            .expect("creating the cluster's temporary directory");
        let tls = tls.then(|| make_certificates(dir.path()));
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        let data_arg = data.to_str().expect("a UTF-8 temporary path");
        let initdb = bin.join("initdb");
        let initdb = initdb.to_str().expect("a UTF-8 binary path");
        let output = as_postgres(&[
            initdb,
            "-D",
            data_arg,
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut settings = format!(
            "\n# protea tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = on\nmax_connections = 200\n",
            dir.path().display()
        );
        if tls.is_some() {
            settings.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ));
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("reading postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("writing postgresql.conf");
        let mut cluster = Self { dir, bin, port: 0, tls };
        // A port outside the kernel's ephemeral range (so no outgoing connection takes it
        // while the server is stopped), free now; another process may still win a race
        // for it, so a start that cannot bind tries another port.
        for attempt in 0..5 {
            cluster.port = free_port();
            let _ = std::fs::remove_file(cluster.dir.path().join("server.log"));
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(log) if attempt < 4 && log.contains("could not bind") => continue,
                Err(log) => panic!("the private PostgreSQL did not start:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL the gateway takes: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A tokio-postgres connection string over the Unix socket (never TLS).
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// The CA that signed the server's certificate (TLS clusters only).
    pub fn ca_file(&self) -> &Path {
        &self.tls.as_ref().expect("a cluster started with TLS").ca
    }

    /// A CA that did not sign the server's certificate (TLS clusters only).
    pub fn other_ca_file(&self) -> &Path {
        &self.tls.as_ref().expect("a cluster started with TLS").other_ca
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut argv = vec![
            pg_ctl.to_str().expect("a UTF-8 binary path"),
            "-D",
            data.to_str().expect("a UTF-8 temporary path"),
            "-l",
            log.to_str().expect("a UTF-8 temporary path"),
        ];
        argv.extend_from_slice(args);
        as_postgres(&argv)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn try_start(&self) -> Result<(), String> {
        let options = format!("-p {}", self.port);
        let output = self.pg_ctl(&["-w", "-t", "30", "-o", &options, "start"]);
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl start ({}):\n{}{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        ))
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start(&self) {
        if let Err(log) = self.try_start() {
            panic!("the private PostgreSQL did not start again:\n{log}");
        }
    }

    /// Stops the server in fast mode (sessions are terminated, a shutdown checkpoint is
    /// written) and waits until it is down.
    pub fn stop(&self) {
        let output = self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "stop"]);
        assert!(
            output.status.success(),
            "pg_ctl stop failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl restart -m fast`: stops and starts again, waiting until it accepts
    /// connections.
    pub fn restart(&self) {
        let output = self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "restart"]);
        assert!(
            output.status.success(),
            "pg_ctl restart failed ({}):\n{}{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
    }
}

/// The newest `/usr/lib/postgresql/*/bin` with an initdb, else `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists());
    from_pg_config.unwrap_or_else(|| {
        panic!(
            "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are required for a \
             private test cluster and were found neither in /usr/lib/postgresql/*/bin nor \
             by `pg_config --bindir`; install PostgreSQL (apt-get install postgresql)"
        )
    })
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("running `id -u`");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Runs `argv` as the `postgres` OS user when this process is root, else as itself.
fn as_postgres(argv: &[&str]) -> Output {
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).args(argv);
        command
    } else {
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        command
    };
    // Never let the shared server's environment (PGPORT, PGHOST, ...) leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command.current_dir("/").output().unwrap_or_else(|e| {
        panic!("running {argv:?} (runuser and the postgres user are needed when root): {e}")
    })
}

/// Makes `dir` and everything in it the `postgres` user's (when root).
fn give_to_postgres(dir: &Path) {
    if !running_as_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .expect("running chown");
    assert!(
        status.success(),
        "chown -R postgres:postgres {} failed ({status}); the `postgres` OS user is required",
        dir.display()
    );
}

/// A port in 20000..32000 (below the kernel's ephemeral range) that 127.0.0.1 can bind now.
fn free_port() -> u16 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut candidate = (std::process::id() ^ nanos).wrapping_mul(2_654_435_761);
    for _ in 0..1000 {
        candidate = candidate.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let port = 20_000 + u16::try_from((candidate >> 8) % 12_000).expect("below 12000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in 20000..32000")
}

/// Runs `openssl` with `args` in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the `openssl` command is required for TLS tests: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throwaway CA (`ca.crt`), another one (`other-ca.crt`), and a server certificate
/// (`server.crt`, key `server.key`) for `localhost` and 127.0.0.1 signed by the first.
fn make_certificates(dir: &Path) -> TlsFiles {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for (name, subject) in [("ca", "/CN=Protea test CA"), ("other-ca", "/CN=Protea other CA")] {
        let key = format!("{name}.key");
        let cert = format!("{name}.crt");
        let mut args = vec!["req", "-x509"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&[
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
    }
    let mut args = vec!["req"];
    args.extend_from_slice(&ec);
    args.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .expect("writing server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600 server.key");
    TlsFiles { ca: dir.join("ca.crt"), other_ca: dir.join("other-ca.crt") }
}
