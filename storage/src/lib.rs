//! Protea's storage layer: the ledger state machine and the backends that make it durable.
//!
//! [`ledger`] holds the rules (pure, no I/O). Backends prefetch, call the ledger and
//! persist its output; [`embedded`] is the default one, on a single redb file, and
//! [`postgres`] is the production one (Aurora). [`Store`] and [`CoreStore`] give the
//! gateway one face for both. [`tenants`] describes tenants and their API keys (digests
//! and sealed signing secrets); [`operators`] the people who administer the gateway
//! (password hashes, sealed TOTP secrets, lock-out). [`secrets`] reads credentials from
//! the environment, a file or AWS Secrets Manager, and re-reads them so that a rotation
//! needs no restart. [`sessions`] keeps operator sessions in DynamoDB behind a Redis cache
//! (or in the store itself where there is no AWS), so that a sign-out or revocation takes
//! effect at once in every gateway process. [`ratelimit`] decides per-tenant rate limits
//! (GCRA), in this process or across processes through Redis, falling back to local
//! limits when Redis fails. [`vault`] keeps the POPIA vault: data subjects' wrapped keys,
//! sealed field values and blind indexes, and their consent history. [`audit`] keeps the
//! POPIA audit trail (append-only, hash-chained, verifiable) and the compliance registers
//! (data-subject requests, retention runs, key rotations, breaches).
//!
//! This crate never sees HTTP types or wire formats, and never sees a secret in clear:
//! signing and TOTP secrets arrive sealed by the gateway, and so do the vault's data keys
//! and field values. The personal information it holds in clear is an operator's username
//! and an audit record's client address; it never logs or formats either.

pub mod audit;
pub mod embedded;
mod error;
pub mod ledger;
pub mod operators;
pub mod postgres;
pub mod ratelimit;
pub mod secrets;
pub mod sessions;
mod store;
pub mod tenants;
pub mod vault;

pub use error::StoreError;
pub use store::{CoreStore, Store, Submitted};
