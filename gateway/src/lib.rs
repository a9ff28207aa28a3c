//! Protea's gateway: listeners, HTTP routing, authentication, handlers, configuration.
//!
//! The only crate that knows the wire formats and HTTP. It depends on `storage` (the
//! ledger and its store), `pool` (per-core runtimes and the batcher) and `crypto`;
//! nothing depends on it but its binary and the benchmarks. See `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod admin_api;
pub mod admin_cmd;
pub mod app;
pub mod audit;
pub mod audit_archive;
pub mod auth;
pub mod backend;
pub mod config;
pub mod conn;
pub mod emf;
pub mod errors;
pub mod handlers;
pub mod healthcheck;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod operator_auth;
pub mod popia;
pub mod replay;
pub mod request;
pub mod router;
pub mod run;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod openapi_spec;
