//! Protea's cryptographic primitives, on ring.
//!
//! Today: tenant API keys ([`api_key`]). Later issues add envelope encryption, request
//! signatures, tokens, TOTP and the audit hash chain here. This crate does no I/O, keeps
//! no global state, and never logs or formats a secret.

pub mod api_key;
