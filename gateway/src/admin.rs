//! The local admin socket: `{data_dir}/admin.sock`, readable and writable by its owner
//! only, so whoever may touch the store may administer it while the gateway runs (the
//! store's file lock keeps every other process out).
//!
//! One JSON request line, one JSON response line, per connection. No secret crosses the
//! socket in clear: the CLI generates keys, seals them with the key-encryption key it
//! reads from the same keys source, sends the digest and the sealed secret, and prints
//! the secret itself; an operator's password arrives hashed and their TOTP secret sealed.
//! Requests are bounded ([`REQUEST_BYTES_MAX`]); nothing here is on the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};
use storage::Store;
use storage::embedded::Embedded;
use storage::operators::{NewOperator, Role};
use storage::tenants::{NewApiKey, NewTenant, Tenant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::app::App;

/// The socket's file name inside the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// Largest request line accepted.
pub const REQUEST_BYTES_MAX: u64 = 8192;
/// Longest an admin connection may take, so an idle client cannot block administration.
pub const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A command sent over the socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Create a tenant with its first key.
    CreateTenant {
        /// Tenant name.
        name: String,
        /// The key's public id.
        key_id: String,
        /// SHA-256 of the key's secret, hex.
        secret_digest: String,
        /// The key's secret sealed with the key-encryption key, hex.
        sealed_secret: String,
    },
    /// List tenants and their key ids.
    ListTenants,
    /// Create an operator (the first admin, on a fresh install).
    CreateOperator {
        /// The operator's sign-in name.
        username: String,
        /// Their role.
        role: String,
        /// The argon2id PHC string of their password.
        password_phc: String,
        /// Their TOTP secret sealed with the key-encryption key, hex.
        totp_sealed: String,
        /// When, in Unix seconds.
        created_at_s: u64,
    },
}

/// The answer to a command.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AdminResponse {
    /// A tenant was created.
    Created {
        /// The tenant.
        tenant_id: u64,
    },
    /// An operator was created.
    OperatorCreated {
        /// The operator's id.
        operator_id: u64,
    },
    /// Tenants with their key ids.
    Tenants {
        /// `(id, name, key ids)` of each tenant.
        tenants: Vec<(u64, String, Vec<String>)>,
    },
    /// The command failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// The socket path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Binds the socket (replacing a stale one left by a killed gateway), owner-only.
/// Returns a std listener so it can be bound before any runtime exists.
pub fn bind(data_dir: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves admin connections one at a time, each within [`CONNECTION_TIMEOUT`], until
/// the future is dropped.
pub async fn serve(app: Arc<App>, listener: std::os::unix::net::UnixListener) {
    let listener = match UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "admin socket could not join the runtime");
            return std::future::pending().await;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let served =
                    tokio::time::timeout(CONNECTION_TIMEOUT, serve_connection(&app, stream));
                if served.await.is_err() {
                    tracing::warn!("admin connection timed out");
                }
            }
            Err(error) => tracing::warn!(%error, "admin socket accept failed"),
        }
    }
}

async fn serve_connection(app: &App, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(REQUEST_BYTES_MAX));
    let response = match reader.read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<AdminRequest>(&line) {
            Ok(request) => execute(app, request).await,
            Err(error) => AdminResponse::Failed { error: format!("invalid request: {error}") },
        },
        Err(error) => AdminResponse::Failed { error: format!("unreadable request: {error}") },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    if let Err(error) = write.write_all(&out).await {
        tracing::warn!(%error, "admin socket reply failed");
    }
}

async fn execute(app: &App, request: AdminRequest) -> AdminResponse {
    let result = match request {
        AdminRequest::ListTenants => list_tenants(app),
        create @ AdminRequest::CreateTenant { .. } => create_tenant(app, create).await,
        create @ AdminRequest::CreateOperator { .. } => create_operator(app, create).await,
    };
    result.unwrap_or_else(|error| AdminResponse::Failed { error })
}

async fn create_tenant(app: &App, request: AdminRequest) -> Result<AdminResponse, String> {
    let store = embedded(app)?;
    let tenant = store.create_tenant(new_tenant(request)?).await.map_err(|e| e.to_string())?;
    let (keys, tenants) = (store.api_keys(), store.tenants());
    app.credentials.replace(
        keys.map_err(|e| e.to_string())?,
        tenants.map_err(|e| e.to_string())?,
        &app.keys.load().kek,
    );
    tracing::info!(tenant_id = tenant.id, "tenant created");
    Ok(AdminResponse::Created { tenant_id: tenant.id })
}

async fn create_operator(app: &App, request: AdminRequest) -> Result<AdminResponse, String> {
    let store = embedded(app)?;
    let operator =
        store.create_operator(new_operator(request)?).await.map_err(|e| e.to_string())?;
    tracing::info!(operator_id = operator.id, "operator created");
    Ok(AdminResponse::OperatorCreated { operator_id: operator.id })
}

fn list_tenants(app: &App) -> Result<AdminResponse, String> {
    let store = embedded(app)?;
    let tenants = store.tenants().map_err(|e| e.to_string())?;
    let keys = store.api_keys().map_err(|e| e.to_string())?;
    Ok(AdminResponse::Tenants { tenants: with_key_ids(tenants, &keys) })
}

/// The embedded store: the socket exists only for it (on PostgreSQL the CLI writes the
/// database itself).
fn embedded(app: &App) -> Result<&Arc<Embedded>, String> {
    match &app.store {
        Store::Embedded(store) => Ok(store),
        Store::Postgres(_) => Err("the admin socket serves the embedded store only".into()),
    }
}

/// Each tenant with its key ids.
pub fn with_key_ids(
    tenants: Vec<Tenant>,
    keys: &[storage::tenants::ApiKeyRecord],
) -> Vec<(u64, String, Vec<String>)> {
    tenants
        .into_iter()
        .map(|t| {
            let ids = keys.iter().filter(|k| k.tenant == t.id).map(|k| k.key_id.clone()).collect();
            (t.id, t.name, ids)
        })
        .collect()
}

/// Validates a create-tenant request's fields into a [`NewTenant`].
pub fn new_tenant(request: AdminRequest) -> Result<NewTenant, String> {
    let AdminRequest::CreateTenant { name, key_id, secret_digest, sealed_secret } = request else {
        return Err("not a create_tenant request".into());
    };
    if !storage::tenants::valid_tenant_name(&name) {
        return Err("tenant name must be 1-64 characters of a-z, 0-9, '_' and '-'".into());
    }
    let digest = parse_hex(&secret_digest)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or("secret_digest must be 64 hex digits")?;
    let sealed_secret = parse_hex(&sealed_secret).ok_or("sealed_secret must be hex")?;
    let created_at_s = crate::request::unix_now_s();
    let key = NewApiKey { key_id, secret_digest: digest, sealed_secret, created_at_s };
    Ok(NewTenant { name, key })
}

/// Validates a create-operator request's fields into a [`NewOperator`].
pub fn new_operator(request: AdminRequest) -> Result<NewOperator, String> {
    let AdminRequest::CreateOperator { username, role, password_phc, totp_sealed, created_at_s } =
        request
    else {
        return Err("not a create_operator request".into());
    };
    let role =
        Role::parse(&role).ok_or("role must be admin, operator, auditor or information_officer")?;
    let totp_sealed = parse_hex(&totp_sealed).ok_or("totp_sealed must be hex")?;
    Ok(NewOperator { username, role, password_phc, totp_sealed, created_at_s })
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    HEXLOWER.decode(text.as_bytes()).ok()
}

/// Bytes as lower-case hex, for a request.
pub fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

/// Sends `request` to a running gateway. `Ok(None)` when no gateway listens there.
pub async fn send(
    data_dir: &Path,
    request: &AdminRequest,
) -> std::io::Result<Option<AdminResponse>> {
    let mut stream = match UnixStream::connect(socket_path(data_dir)).await {
        Ok(stream) => stream,
        Err(error) if is_absent(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    serde_json::from_str(&reply).map(Some).map_err(std::io::Error::other)
}

fn is_absent(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(digest: String, sealed: &str) -> AdminRequest {
        AdminRequest::CreateTenant {
            name: "acme".into(),
            key_id: "pk_0123456789abcdef".into(),
            secret_digest: digest,
            sealed_secret: sealed.into(),
        }
    }

    #[test]
    fn key_material_parses_only_when_well_formed() {
        let tenant = new_tenant(create("ab".repeat(32), "01ff")).unwrap();
        assert_eq!(tenant.key.secret_digest, [0xab; 32]);
        assert_eq!(tenant.key.sealed_secret, vec![0x01, 0xff]);
        assert!(new_tenant(create("ab".repeat(31), "01")).is_err());
        assert!(new_tenant(create("zz".repeat(32), "01")).is_err());
        assert!(new_tenant(create("ab".repeat(32), "0g")).is_err());
    }

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let request = AdminRequest::ListTenants;
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"command":"list_tenants"}"#);
        let extra = format!(
            r#"{{"command":"create_tenant","name":"a","key_id":"k","secret_digest":"{}","sealed_secret":"00","x":1}}"#,
            "ab".repeat(32)
        );
        assert!(serde_json::from_str::<AdminRequest>(&extra).is_err());
    }
}
