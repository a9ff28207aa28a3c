//! The PostgreSQL backend (Amazon Aurora PostgreSQL in production).
//!
//! The schema, as versioned migrations embedded in the binary ([`migrations`]), and the
//! batched flush of ADR 0005 ([`flush`]). Per-core pools, TLS and the gateway wiring
//! follow. This module never holds personal information and never sees HTTP types.

mod codec;
pub mod flush;
pub mod migrations;
mod sql;
