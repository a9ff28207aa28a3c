//! The PostgreSQL backend (Amazon Aurora PostgreSQL in production).
//!
//! Today: the schema, as versioned migrations embedded in the binary ([`migrations`]).
//! The batched flush, per-core pools and TLS follow. This module never holds personal
//! information and never sees HTTP types.

pub mod migrations;
