//! Protea's cryptographic primitives, on ring.
//!
//! - [`api_key`]: tenant API keys (`KEYID.SECRET` bearer credentials).
//! - [`signature`]: HMAC-SHA256 request signatures for tenants: the canonical request,
//!   the `Authorization` header, verification against one or two active secrets and a
//!   replay window.
//! - [`totp`]: RFC 6238 one-time passwords, the operators' second factor: enrolment
//!   secrets and URIs, codes, verification with skew and reuse refusal.
//! - [`password`]: operator passwords hashed with argon2id (OWASP parameters).
//! - [`token`]: short-lived operator tokens, compact JWS signed with Ed25519, verified
//!   against keys by key id for rotation.
//! - [`envelope`]: AES-256-GCM envelope encryption of secrets at rest under a key ring
//!   (one KEK id, numbered versions, a current one), with re-wrapping for rotation.
//! - [`chain`]: the audit trail's SHA-256 hash chain: linking and verification.
//! - [`blind_index`]: keyed HMAC indexes of normalised email addresses, phone numbers and
//!   identity numbers, to find a data subject without decrypting.
//!
//! This crate does no I/O, keeps no global
//! state, and never logs or formats a secret: every type that holds one has a `Debug`
//! that leaves it out.

#![forbid(unsafe_code)]

pub mod api_key;
pub mod blind_index;
pub mod chain;
pub mod envelope;
pub mod password;
pub mod signature;
pub mod token;
pub mod totp;
