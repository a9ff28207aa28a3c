//! The storage crate's integration tests, one binary with a module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod audit_conformance;
mod audit_scenarios;
mod embedded_conformance;
mod embedded_store;
mod ledger_history;
mod ledger_model;
mod ledger_properties;
mod ledger_scenarios;
mod ledger_support;
mod pg_conformance;
mod pg_support;
mod postgres_migrations;
mod ratelimit;
mod scenario_harness;
mod secrets;
mod security_conformance;
mod security_scenarios;
mod sessions;
mod vault_conformance;
mod vault_scenarios;
