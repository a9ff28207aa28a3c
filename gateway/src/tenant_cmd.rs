//! `gateway tenant create|list`: tenant administration on the store directly.
//!
//! The secret is printed once, to stdout, and stored only as a digest. These commands
//! never log the secret.

use anyhow::Context;
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::tenants::{NewTenant, valid_tenant_name};

use crate::config::{StorageArgs, TenantCommand};

/// Runs a tenant command.
pub fn run(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, storage } => create(&name, &storage),
        TenantCommand::List { storage } => list(&storage),
    }
}

fn open(storage: &StorageArgs) -> anyhow::Result<Embedded> {
    Embedded::open(&EmbeddedConfig::in_dir(&storage.data_dir))
        .context("tenant commands need the store to themselves: stop the gateway first")
}

fn create(name: &str, storage: &StorageArgs) -> anyhow::Result<()> {
    if !valid_tenant_name(name) {
        anyhow::bail!("tenant name must be 1-64 characters of a-z, 0-9, '_' and '-'");
    }
    let store = open(storage)?;
    let key = crypto::api_key::generate()?;
    let new = NewTenant { name: name.to_owned(), key_id: key.key_id.clone(), secret_digest: key.digest };
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let tenant = runtime.block_on(store.create_tenant(new))?;
    store.close();
    println!("tenant: {}", tenant.name);
    println!("key_id: {}", key.key_id);
    println!("secret: {}", key.secret);
    println!("authorization: Bearer {}.{}", key.key_id, key.secret);
    eprintln!("Store the secret now: it is not shown again.");
    Ok(())
}

fn list(storage: &StorageArgs) -> anyhow::Result<()> {
    let store = open(storage)?;
    let keys = store.api_keys()?;
    for tenant in store.tenants()? {
        let key_ids: Vec<&str> =
            keys.iter().filter(|k| k.tenant == tenant.id).map(|k| k.key_id.as_str()).collect();
        println!("{}\t{}\t{}", tenant.id, tenant.name, key_ids.join(","));
    }
    store.close();
    Ok(())
}
