//! Time-based one-time passwords (RFC 6238), the operators' second factor.
//!
//! A [`TotpSecret`] is a random key shared once with the operator's authenticator app at
//! enrolment (as base32 and as an `otpauth://` URI, usually shown as a QR code) and
//! stored by the gateway, encrypted. The defaults are what authenticator apps expect:
//! HMAC-SHA-1, 6 digits, a 30 second step, counted from the unix epoch. SHA-256 and
//! SHA-512 and 7 or 8 digits are supported too (the RFC's test vectors use them).
//!
//! [`TotpSecret::verify`] compares the code with every candidate step in constant time
//! and returns the step that matched. A code is good once: the caller stores the step it
//! accepted and passes it back, and steps up to it are refused.
//!
//! This module does no I/O and never logs. The only ways out of the secret are
//! [`TotpSecret::to_base32`] and [`TotpSecret::otpauth_uri`], for enrolment; `Debug`
//! shows the parameters, never the key.

use data_encoding::BASE32_NOPAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Protea";
/// The length of a generated secret, in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;
/// The shortest secret accepted, in bytes (RFC 4226's minimum of 128 bits).
pub const SECRET_LEN_MIN: usize = 16;
/// The longest secret accepted, in bytes.
pub const SECRET_LEN_MAX: usize = 64;
/// The longest account name in an enrolment URI, in bytes.
pub const ACCOUNT_LEN_MAX: usize = 128;
/// The step skew a login should allow: one step either way of the server's clock.
pub const DEFAULT_SKEW_STEPS: u8 = 1;

/// The HMAC behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA-1: what authenticator apps use, and the default.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// How codes are made: the algorithm, the number of digits and the step length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    algorithm: Algorithm,
    digits: u32,
    period_seconds: u64,
}

impl Params {
    /// HMAC-SHA-1, 6 digits, 30 seconds: what authenticator apps expect.
    pub const DEFAULT: Params =
        Params { algorithm: Algorithm::Sha1, digits: 6, period_seconds: 30 };

    /// Checked parameters: 6 to 8 digits, a step of 1 to 300 seconds.
    pub fn new(algorithm: Algorithm, digits: u32, period_seconds: u64) -> Result<Self, TotpError> {
        if !(6..=8).contains(&digits) || !(1..=300).contains(&period_seconds) {
            return Err(TotpError::ParamsInvalid);
        }
        Ok(Self { algorithm, digits, period_seconds })
    }

    /// The HMAC behind the codes.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The number of digits in a code.
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// The step length in seconds.
    pub fn period_seconds(&self) -> u64 {
        self.period_seconds
    }
}

/// A secret or its parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The secret is shorter than [`SECRET_LEN_MIN`] or longer than [`SECRET_LEN_MAX`]
    /// bytes, or not canonical unpadded upper-case base32.
    #[error(
        "a TOTP secret must be {} to {} bytes in unpadded base32",
        SECRET_LEN_MIN,
        SECRET_LEN_MAX
    )]
    SecretInvalid,
    /// The digits or the step length are out of range.
    #[error("TOTP parameters out of range: 6 to 8 digits and a step of 1 to 300 seconds")]
    ParamsInvalid,
    /// The account name is empty, too long, or holds a colon or a control character.
    #[error(
        "an account name must be 1 to {} bytes without colons or control characters",
        ACCOUNT_LEN_MAX
    )]
    AccountInvalid,
}

/// Why a code was refused. For logs; the client sees one message for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRejected {
    /// Not exactly the configured number of ASCII digits.
    #[error("the code is not a string of the expected number of digits")]
    Malformed,
    /// No step in the window has this code.
    #[error("the code does not match")]
    Mismatch,
    /// The code matched only steps at or before the last one accepted.
    #[error("the code was already used")]
    Reused,
}

/// A shared TOTP key and its parameters.
#[derive(Clone)]
pub struct TotpSecret {
    key: Vec<u8>,
    params: Params,
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpSecret").field("params", &self.params).finish_non_exhaustive()
    }
}

impl TotpSecret {
    /// A new secret of [`SECRET_LEN`] random bytes with the default parameters.
    pub fn generate() -> Result<Self, TotpError> {
        let mut key = vec![0u8; SECRET_LEN];
        SystemRandom::new().fill(&mut key).map_err(|_| TotpError::Random)?;
        Ok(Self { key, params: Params::DEFAULT })
    }

    /// A secret from its raw bytes ([`SECRET_LEN_MIN`] to [`SECRET_LEN_MAX`]).
    pub fn from_bytes(key: &[u8], params: Params) -> Result<Self, TotpError> {
        if !(SECRET_LEN_MIN..=SECRET_LEN_MAX).contains(&key.len()) {
            return Err(TotpError::SecretInvalid);
        }
        Ok(Self { key: key.to_vec(), params })
    }

    /// A secret from the base32 [`to_base32`](Self::to_base32) produced.
    pub fn from_base32(text: &str, params: Params) -> Result<Self, TotpError> {
        let key = BASE32_NOPAD.decode(text.as_bytes()).map_err(|_| TotpError::SecretInvalid)?;
        Self::from_bytes(&key, params)
    }

    /// The parameters codes are made with.
    pub fn params(&self) -> Params {
        self.params
    }

    /// The key in upper-case base32 without padding, for manual enrolment and storage.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.key)
    }

    /// The enrolment URI (Google's Key Uri Format) for `account`, which is
    /// percent-encoded into the label `Protea:{account}`.
    pub fn otpauth_uri(&self, account: &str) -> Result<String, TotpError> {
        check_account(account)?;
        let Params { algorithm, digits, period_seconds } = self.params;
        let label = percent_encode(account);
        let secret = self.to_base32();
        let algorithm = algorithm.uri_name();
        Ok(format!(
            "otpauth://totp/{ISSUER}:{label}?secret={secret}&issuer={ISSUER}\
             &algorithm={algorithm}&digits={digits}&period={period_seconds}"
        ))
    }

    /// The step `unix_seconds` falls in.
    pub fn step_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / self.params.period_seconds
    }

    /// The code for the step `unix_seconds` falls in.
    pub fn code_at(&self, unix_seconds: u64) -> u32 {
        hotp(&self.hmac_key(), self.step_at(unix_seconds), self.params.digits)
    }

    /// Checks `code` against the steps within `skew_steps` of `now_unix`'s, skipping
    /// steps at or before `last_used_step`, and returns the latest step it matched: the
    /// caller stores it and passes it back next time. Every candidate is computed and
    /// compared in constant time; the work is `2 * skew_steps + 1` HMACs.
    pub fn verify(
        &self,
        code: &str,
        now_unix: u64,
        skew_steps: u8,
        last_used_step: Option<u64>,
    ) -> Result<u64, CodeRejected> {
        let given = parse_code(code, self.params.digits).ok_or(CodeRejected::Malformed)?;
        let key = self.hmac_key();
        let now_step = self.step_at(now_unix);
        let skew = u64::from(skew_steps);
        let mut fresh = Choice::from(0);
        let mut stale = Choice::from(0);
        let mut matched = 0u64;
        for step in now_step.saturating_sub(skew)..=now_step.saturating_add(skew) {
            let hit = hotp(&key, step, self.params.digits).ct_eq(&given);
            let unused = Choice::from(u8::from(last_used_step.is_none_or(|used| step > used)));
            matched.conditional_assign(&step, hit & unused);
            fresh |= hit & unused;
            stale |= hit & !unused;
        }
        match (bool::from(fresh), bool::from(stale)) {
            (true, _) => Ok(matched),
            (false, true) => Err(CodeRejected::Reused),
            (false, false) => Err(CodeRejected::Mismatch),
        }
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(self.params.algorithm.hmac(), &self.key)
    }
}

/// HOTP (RFC 4226 section 5.3): dynamic truncation of the HMAC of the counter.
fn hotp(key: &hmac::Key, counter: u64, digits: u32) -> u32 {
    let tag = hmac::sign(key, &counter.to_be_bytes());
    let tag = tag.as_ref();
    // Tags are at least 20 bytes, so `offset + 3 <= 18` is always in range.
    let offset = usize::from(tag[tag.len() - 1] & 0x0f);
    let bytes = [tag[offset] & 0x7f, tag[offset + 1], tag[offset + 2], tag[offset + 3]];
    u32::from_be_bytes(bytes) % 10u32.pow(digits)
}

fn parse_code(code: &str, digits: u32) -> Option<u32> {
    let ok =
        code.len() == usize::try_from(digits).ok()? && code.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| code.parse().ok()).flatten()
}

fn check_account(account: &str) -> Result<(), TotpError> {
    let ok = (1..=ACCOUNT_LEN_MAX).contains(&account.len())
        && !account.chars().any(|c| c == ':' || c.is_control());
    ok.then_some(()).ok_or(TotpError::AccountInvalid)
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("aZ0-._~"), "aZ0-._~");
        assert_eq!(percent_encode("a b@c/é"), "a%20b%40c%2F%C3%A9");
    }

    #[test]
    fn codes_parse_only_with_the_exact_digit_count() {
        assert_eq!(parse_code("012345", 6), Some(12345));
        for bad in ["12345", "1234567", "12345a", " 12345", "+12345", "-12345", "١٢٣٤٥٦"] {
            assert_eq!(parse_code(bad, 6), None, "{bad:?}");
        }
    }
}
