//! The host commands: `gateway tenant create|list`, `gateway operator create` (the first
//! admin on a fresh install), `gateway keys-generate` and `gateway migrate`.
//!
//! On the embedded store, with a gateway running on the data directory, a command goes
//! through its admin socket (see [`crate::admin`]); otherwise it opens the store directly.
//! On PostgreSQL it writes the database, and running gateways load a new key within
//! [`crate::backend::KEYS_REFRESH_INTERVAL`]. Secrets are generated here and sealed with
//! the key-encryption key from the same keys source the gateway uses; a tenant's secret
//! and an operator's TOTP secret are printed once to stdout and never logged. An
//! operator's password is read from stdin (or a file), never from the command line.

use std::io::BufRead;

use anyhow::Context;
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::operators::Role;

use crate::admin::{self, AdminRequest, AdminResponse, hex};
use crate::auth::secret_aad;
use crate::backend;
use crate::config::{OperatorCommand, StorageArgs, StorageConfig, TenantCommand};
use crate::keys::{self, Keys};

/// Runs a tenant command.
pub fn run_tenant(command: TenantCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        TenantCommand::Create { name, storage } => runtime.block_on(create_tenant(name, &storage)),
        TenantCommand::List { storage } => runtime.block_on(list(&storage)),
    }
}

/// Runs an operator command.
pub fn run_operator(command: OperatorCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        OperatorCommand::Create { username, role, password_file, storage } => {
            let password = read_password(password_file.as_deref())?;
            runtime.block_on(create_operator(username, &role, password, &storage))
        }
    }
}

/// `gateway keys-generate`: prints a new keys document on stdout.
pub fn keys_generate() -> anyhow::Result<()> {
    println!("{}", keys::generate_document()?);
    Ok(())
}

/// `gateway migrate`: brings the PostgreSQL schema to this build's version.
pub fn migrate(storage: &StorageArgs) -> anyhow::Result<()> {
    let StorageConfig::Postgres(config) = storage.validate()? else {
        anyhow::bail!("migrate applies to PostgreSQL: give --storage a postgres:// URL");
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let postgres = backend::postgres(&config).await?;
        let mut admin = postgres.store.admin().await?;
        let report = admin.migrate().await?;
        println!("schema version {} (applied: {:?})", report.version, report.applied);
        Ok(())
    })
}

async fn load_keys(storage: &StorageArgs) -> anyhow::Result<Keys> {
    Ok(keys::load(&storage.keys_source()?).await?.keys)
}

/// Runs `request` on PostgreSQL, on the gateway serving `storage`, or on the store itself.
async fn execute(storage: &StorageArgs, request: AdminRequest) -> anyhow::Result<AdminResponse> {
    if let StorageConfig::Postgres(config) = storage.validate()? {
        return execute_postgres(&config, request).await;
    }
    let sent = admin::send(&storage.data_dir, &request).await;
    if let Some(response) = sent.context("talking to the running gateway's admin socket")? {
        return Ok(response);
    }
    let store = Embedded::open(&EmbeddedConfig::in_dir(&storage.data_dir))?;
    let response = execute_embedded(&store, request).await;
    store.close();
    response
}

async fn execute_embedded(
    store: &Embedded,
    request: AdminRequest,
) -> anyhow::Result<AdminResponse> {
    Ok(match request {
        AdminRequest::ListTenants => AdminResponse::Tenants {
            tenants: admin::with_key_ids(store.tenants()?, &store.api_keys()?),
        },
        create @ AdminRequest::CreateTenant { .. } => {
            let tenant =
                store.create_tenant(admin::new_tenant(create).map_err(anyhow::Error::msg)?).await?;
            AdminResponse::Created { tenant_id: tenant.id }
        }
        create @ AdminRequest::CreateOperator { .. } => {
            let new = admin::new_operator(create).map_err(anyhow::Error::msg)?;
            AdminResponse::OperatorCreated { operator_id: store.create_operator(new).await?.id }
        }
    })
}

async fn execute_postgres(
    config: &crate::config::PostgresConfig,
    request: AdminRequest,
) -> anyhow::Result<AdminResponse> {
    let postgres = backend::postgres(config).await?;
    let mut db = backend::connect_and_migrate(&postgres.store).await?;
    Ok(match request {
        AdminRequest::ListTenants => AdminResponse::Tenants {
            tenants: admin::with_key_ids(db.tenants().await?, &db.api_keys().await?),
        },
        create @ AdminRequest::CreateTenant { .. } => {
            let tenant =
                db.create_tenant(admin::new_tenant(create).map_err(anyhow::Error::msg)?).await?;
            AdminResponse::Created { tenant_id: tenant.id }
        }
        create @ AdminRequest::CreateOperator { .. } => {
            let new = admin::new_operator(create).map_err(anyhow::Error::msg)?;
            AdminResponse::OperatorCreated { operator_id: db.create_operator(new).await?.id }
        }
    })
}

async fn create_tenant(name: String, storage: &StorageArgs) -> anyhow::Result<()> {
    let keys = load_keys(storage).await?;
    let key = crypto::api_key::generate()?;
    let sealed = keys.kek.seal(key.secret.as_bytes(), &secret_aad(&key.key_id))?;
    let request = AdminRequest::CreateTenant {
        name: name.clone(),
        key_id: key.key_id.clone(),
        secret_digest: hex(&key.digest),
        sealed_secret: hex(&sealed),
    };
    match execute(storage, request).await? {
        AdminResponse::Created { .. } => {
            println!("tenant: {name}");
            println!("key_id: {}", key.key_id);
            println!("secret: {}", key.secret);
            eprintln!("Store the secret now: it is not shown again. Sign requests with it");
            eprintln!("(docs/security.md), or use scripts/protea-curl.");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

async fn list(storage: &StorageArgs) -> anyhow::Result<()> {
    match execute(storage, AdminRequest::ListTenants).await? {
        AdminResponse::Tenants { tenants } => {
            for (id, name, key_ids) in tenants {
                println!("{id}\t{name}\t{}", key_ids.join(","));
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// The password: the first line of `file`, or of stdin.
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let mut line = String::new();
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the password file {}", path.display()))?;
            line = text.lines().next().unwrap_or_default().to_owned();
        }
        None => {
            eprintln!("Password (at least 12 characters), then Enter:");
            std::io::stdin().lock().read_line(&mut line).context("reading the password")?;
        }
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn create_operator(
    username: String,
    role: &str,
    password: String,
    storage: &StorageArgs,
) -> anyhow::Result<()> {
    let role = Role::parse(role)
        .context("--role must be admin, operator, auditor or information_officer")?;
    if !storage::operators::valid_username(&username) {
        anyhow::bail!("a username is 3-64 characters of a-z, 0-9, '.', '_' and '-'");
    }
    let keys = load_keys(storage).await?;
    let password_phc = crypto::password::hash_password(&password)?;
    let (new, enrolment) =
        crate::admin_api::prepare_operator(&keys.kek, username.clone(), role, password_phc)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    let request = AdminRequest::CreateOperator {
        username: new.username,
        role: role.as_str().to_owned(),
        password_phc: new.password_phc,
        totp_sealed: hex(&new.totp_sealed),
        created_at_s: new.created_at_s,
    };
    match execute(storage, request).await? {
        AdminResponse::OperatorCreated { operator_id } => {
            println!("operator: {operator_id}");
            println!("username: {username}");
            println!("role: {}", role.as_str());
            println!("totp_secret: {}", enrolment.secret);
            println!("totp_uri: {}", enrolment.uri);
            eprintln!("Enrol the TOTP secret in an authenticator app now: it is not shown again.");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

fn unexpected(response: AdminResponse) -> anyhow::Error {
    match response {
        AdminResponse::Failed { error } => anyhow::anyhow!(error),
        other => anyhow::anyhow!("unexpected answer from the gateway: {other:?}"),
    }
}
