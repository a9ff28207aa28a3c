//! `gateway tenant create|list` (tenant administration) and `gateway migrate`.
//!
//! On the embedded store, with a gateway running on the data directory, a tenant command
//! goes through its admin socket (see [`crate::admin`]); otherwise it opens the store
//! directly. On PostgreSQL it writes the database, and running gateways load the new key
//! within [`crate::backend::KEYS_REFRESH_INTERVAL`]. The secret is generated here,
//! printed once to stdout, and leaves this process only as a digest. These commands
//! never log the secret.

use anyhow::Context;
use storage::embedded::{Embedded, EmbeddedConfig};

use crate::admin::{self, AdminRequest, AdminResponse};
use crate::backend;
use crate::config::{StorageArgs, StorageConfig, TenantCommand};

/// Runs a tenant command.
pub fn run(command: TenantCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        TenantCommand::Create { name, storage } => runtime.block_on(create(name, &storage)),
        TenantCommand::List { storage } => runtime.block_on(list(&storage)),
    }
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

fn open(storage: &StorageArgs) -> anyhow::Result<Embedded> {
    Ok(Embedded::open(&EmbeddedConfig::in_dir(&storage.data_dir))?)
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
    let store = open(storage)?;
    let response = match request {
        AdminRequest::CreateTenant { name, key_id, secret_digest } => {
            let new =
                admin::new_tenant(name, key_id, &secret_digest).map_err(anyhow::Error::msg)?;
            let tenant = store.create_tenant(new).await?;
            AdminResponse::Created { tenant_id: tenant.id }
        }
        AdminRequest::ListTenants => AdminResponse::Tenants {
            tenants: admin::with_key_ids(store.tenants()?, &store.api_keys()?),
        },
    };
    store.close();
    Ok(response)
}

async fn execute_postgres(
    config: &crate::config::PostgresConfig,
    request: AdminRequest,
) -> anyhow::Result<AdminResponse> {
    let postgres = backend::postgres(config).await?;
    let mut db = backend::connect_and_migrate(&postgres.store).await?;
    Ok(match request {
        AdminRequest::CreateTenant { name, key_id, secret_digest } => {
            let new =
                admin::new_tenant(name, key_id, &secret_digest).map_err(anyhow::Error::msg)?;
            let tenant = db.create_tenant(new).await?;
            AdminResponse::Created { tenant_id: tenant.id }
        }
        AdminRequest::ListTenants => AdminResponse::Tenants {
            tenants: admin::with_key_ids(db.tenants().await?, &db.api_keys().await?),
        },
    })
}

async fn create(name: String, storage: &StorageArgs) -> anyhow::Result<()> {
    let key = crypto::api_key::generate()?;
    let secret_digest = key.digest.iter().map(|b| format!("{b:02x}")).collect();
    let request = AdminRequest::CreateTenant {
        name: name.clone(),
        key_id: key.key_id.clone(),
        secret_digest,
    };
    match execute(storage, request).await? {
        AdminResponse::Created { .. } => {
            println!("tenant: {name}");
            println!("key_id: {}", key.key_id);
            println!("secret: {}", key.secret);
            println!("authorization: Bearer {}.{}", key.key_id, key.secret);
            eprintln!("Store the secret now: it is not shown again.");
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

fn unexpected(response: AdminResponse) -> anyhow::Error {
    match response {
        AdminResponse::Failed { error } => anyhow::anyhow!(error),
        other => anyhow::anyhow!("unexpected answer from the gateway: {other:?}"),
    }
}
