//! The crypto crate's integration tests, in one binary, through the public API only.
//!
//! - [`signature`]: RFC 4231 HMAC-SHA256 vectors, a known-answer canonical request, the
//!   `Authorization` format, the replay window, and properties: canonicalisation is
//!   stable under query reordering and injective, every tamper fails, rotation works.
//! - [`totp`]: RFC 6238 Appendix B vectors, enrolment, skew, reuse and malformed codes.
//! - [`password`]: argon2id round trips, length rules, malformed stored hashes.
//! - [`token`]: EdDSA tokens: round trip, expiry, tampering, `alg`, key ids, rotation.
//! - [`envelope`]: AES-256-GCM envelopes: round trip and layout, `aad` binding, every
//!   tamper and truncation fails, rotation and re-wrap, KEK ids and versions, bounds,
//!   base64 keys, a redacted `Debug`.

mod envelope;
mod password;
mod signature;
mod token;
mod totp;
