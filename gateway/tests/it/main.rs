//! The gateway's integration tests, in one binary: each test runs the real `gateway`
//! executable on a temporary data directory and speaks HTTP to it like a client would.
//!
//! - [`support`]: start and stop the binary, create tenants, a small HTTP/1.1 and h2c
//!   client, and a seeded random number generator.
//! - [`http_api`]: the API end to end, route by route and status by status.
//! - [`crash`]: kill -9 under concurrent load, restart, and check that every acknowledged
//!   transfer survived exactly once and that money is conserved.

mod crash;
mod http_api;
mod support;
