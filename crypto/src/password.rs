//! Operator passwords, hashed with argon2id into PHC strings.
//!
//! Parameters follow OWASP's Password Storage Cheat Sheet for argon2id: 19 MiB of memory
//! (m=19456 KiB), two passes (t=2), one lane (p=1), a 16-byte salt from the OS and a
//! 32-byte output, e.g. `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. The parameters
//! travel in the string, so raising them later leaves old hashes verifiable. One hash
//! costs tens of milliseconds of one core: callers run it off the request path's core
//! (e.g. `spawn_blocking`) and rate-limit sign-in.
//!
//! A password is 12 to 1024 characters: the minimum counts Unicode scalar values, not
//! bytes; the maximum is 1024 bytes, so a huge input cannot be used to burn CPU. Nothing
//! is normalised or trimmed.
//!
//! This module does no I/O, never logs, and never returns or formats a password. A stored
//! hash that does not parse, is not argon2id, or asks for more than
//! [`MEMORY_KIB_MAX`]/[`PASSES_MAX`]/[`LANES_MAX`] is an error, never a `false`.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// The fewest characters (Unicode scalar values) a password may have.
pub const PASSWORD_CHARS_MIN: usize = 12;
/// The most bytes a password may have.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Memory per hash, in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over the memory (OWASP: 2).
pub const PASSES: u32 = 2;
/// Lanes (OWASP: 1).
pub const LANES: u32 = 1;
/// Salt length, in bytes.
pub const SALT_LEN: usize = 16;
/// The most memory a stored hash may ask for, in KiB (256 MiB).
pub const MEMORY_KIB_MAX: u32 = 262_144;
/// The most passes a stored hash may ask for.
pub const PASSES_MAX: u32 = 16;
/// The most lanes a stored hash may ask for.
pub const LANES_MAX: u32 = 8;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`PASSWORD_CHARS_MIN`] characters.
    #[error("a password must have at least {} characters", PASSWORD_CHARS_MIN)]
    TooShort,
    /// More than [`PASSWORD_BYTES_MAX`] bytes.
    #[error("a password must have at most {} bytes", PASSWORD_BYTES_MAX)]
    TooLong,
    /// The stored hash does not parse, is not argon2id, or has out-of-bounds parameters.
    #[error("the stored password hash is malformed or unsupported")]
    MalformedHash,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// argon2 itself failed (e.g. could not allocate its memory).
    #[error("argon2 failed")]
    Hashing,
}

/// Hashes a new password into a PHC string, after checking its length.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_length(password)?;
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new().fill(&mut salt).map_err(|_| PasswordError::Random)?;
    let hash = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|_| PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`, compared in constant time.
/// A password over the maximum length is `false` without hashing; a malformed or
/// unsupported `phc` is an error.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let stored = parse_stored(phc)?;
    if password.len() > PASSWORD_BYTES_MAX {
        return Ok(false);
    }
    match hasher()?.verify_password(password.as_bytes(), &stored) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(PasswordError::MalformedHash),
    }
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < PASSWORD_CHARS_MIN {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|_| PasswordError::Hashing)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Parses a stored hash and refuses what this module would not have written: another
/// algorithm or version, no salt or output, or parameters over the bounds. A hash with
/// no salt or output must be refused here, as argon2 would report it as a mismatch.
fn parse_stored(phc: &str) -> Result<PasswordHash, PasswordError> {
    let stored = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
    let params = Params::try_from(&stored).map_err(|_| PasswordError::MalformedHash)?;
    let ok = stored.algorithm == argon2::ARGON2ID_IDENT
        && stored.version == Some(Version::V0x13.into())
        && stored.salt.is_some()
        && stored.hash.is_some()
        && params.m_cost() <= MEMORY_KIB_MAX
        && params.t_cost() <= PASSES_MAX
        && params.p_cost() <= LANES_MAX;
    ok.then_some(stored).ok_or(PasswordError::MalformedHash)
}
