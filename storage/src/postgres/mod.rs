//! The PostgreSQL backend (Amazon Aurora PostgreSQL in production).
//!
//! The schema, as versioned migrations embedded in the binary ([`migrations`]); the
//! batched flush of ADR 0005 ([`flush`]); the ledger reads ([`reads`]); tenants and API
//! keys, operators and operator sessions (`keys`, `operators`, `sessions`, on a core's
//! pool or the admin connection through `conn`); the vault's subjects and consents
//! (`vault`, `consent`, with their statements in `vault_sql`); and the store as a gateway
//! runs it, per process and per core ([`store`]). Connections, TLS and per-core pools come
//! from `pool::pg`. This module never sees HTTP types, a secret or a subject's personal
//! information in clear; the only personal information it holds in clear is an
//! operator's username, which it never logs.

mod audit;
mod codec;
mod conn;
mod consent;
pub mod flush;
mod keys;
pub mod migrations;
mod operators;
pub mod reads;
mod sessions;
mod sql;
pub mod store;
mod vault;
mod vault_sql;

pub use store::{PgAdmin, PgCore, PgSettings, PgStore};
