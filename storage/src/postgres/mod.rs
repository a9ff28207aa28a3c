//! The PostgreSQL backend (Amazon Aurora PostgreSQL in production).
//!
//! The schema, as versioned migrations embedded in the binary ([`migrations`]); the
//! batched flush of ADR 0005 ([`flush`]); the reads ([`reads`]); and the store as a
//! gateway runs it, per process and per core ([`store`]). Connections, TLS and per-core
//! pools come from `pool::pg`. This module never holds personal information and never
//! sees HTTP types.

mod codec;
pub mod flush;
pub mod migrations;
pub mod reads;
mod sql;
pub mod store;

pub use store::{PgAdmin, PgCore, PgSettings, PgStore};
