//! Secrets: where the gateway's credentials come from, read at start and re-read on an
//! interval so that a rotation needs no restart.
//!
//! A [`SecretSource`] names the place (`env:VAR`, `file:PATH` or
//! `aws-secretsmanager:SECRET_ID_OR_ARN`); a [`SecretsProvider`] reads it once; [`watch`]
//! re-reads it on an interval and reports changes; [`database_config`] turns a secret into
//! a PostgreSQL connection configuration (a URL, a key=value string, or the JSON that
//! Secrets Manager keeps for RDS and Aurora). This module never logs a secret value and
//! never puts one in an error: errors name the source (a variable name, a path, a secret
//! id) and say what is wrong, and [`SecretValue`] prints as `[redacted]`.

mod database;
mod provider;
mod source;
mod watch;

use std::fmt;
use std::path::PathBuf;

pub use database::database_config;
pub use provider::{AwsBounds, AwsSettings, SecretsProvider};
pub use source::SecretSource;
pub use watch::{WATCH_INTERVAL_MIN, watch};

/// The largest secret accepted from any source, in bytes (Secrets Manager's own limit).
pub const VALUE_BYTES_MAX: usize = 64 * 1024;

/// A secret's value. `Debug` and `Display` print `[redacted]`; only [`SecretValue::expose`]
/// gives the text, and its callers must not log it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value read elsewhere (for example in a test).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Never log it or put it in an error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret could not be read or used. Messages name the source (a variable name, a
/// path, a secret id) and never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A secret source string that does not parse; the message names the bad part.
    #[error("invalid secret source: {0}")]
    InvalidSource(String),
    /// The environment variable of an `env:` source is not set.
    #[error("secret env:{var}: environment variable {var} is not set")]
    EnvNotSet {
        /// The variable's name.
        var: String,
    },
    /// The file of a `file:` source could not be opened or read.
    #[error("secret file:{}: cannot read the file: {error}", path.display())]
    FileRead {
        /// The file's path, as given.
        path: PathBuf,
        /// The operating system's error (which never quotes file contents).
        #[source]
        error: std::io::Error,
    },
    /// The path of a `file:` source is not a regular file (a directory, a pipe, a device).
    #[error("secret file:{}: not a regular file", path.display())]
    NotAFile {
        /// The path, as given.
        path: PathBuf,
    },
    /// No AWS region is configured, so a Secrets Manager source cannot be read.
    #[error(
        "secret aws-secretsmanager:{secret_id}: no AWS region configured \
         (set AWS_REGION or AWS_DEFAULT_REGION)"
    )]
    AwsRegionMissing {
        /// The secret id or ARN.
        secret_id: String,
    },
    /// Secrets Manager has no secret with this id (or these credentials may not see it).
    #[error("secret aws-secretsmanager:{secret_id}: no such secret in AWS Secrets Manager")]
    AwsNotFound {
        /// The secret id or ARN.
        secret_id: String,
    },
    /// The Secrets Manager call failed (after the SDK's retries); `detail` is the SDK's
    /// description of the error: its code and message, never a value.
    #[error("secret aws-secretsmanager:{secret_id}: AWS Secrets Manager call failed: {detail}")]
    Aws {
        /// The secret id or ARN.
        secret_id: String,
        /// The error code and message, or the transport failure.
        detail: String,
    },
    /// The secret's current version holds no value (neither a string nor binary data).
    #[error("secret aws-secretsmanager:{secret_id}: the current version holds no value")]
    AwsNoValue {
        /// The secret id or ARN.
        secret_id: String,
    },
    /// The value is larger than [`VALUE_BYTES_MAX`].
    #[error("secret {from}: larger than {max} bytes")]
    TooLarge {
        /// Where the value came from.
        from: SecretSource,
        /// The bound, [`VALUE_BYTES_MAX`].
        max: usize,
    },
    /// The value is not UTF-8 text.
    #[error("secret {0}: not valid UTF-8 text")]
    NotUtf8(SecretSource),
    /// The value is empty (after a file's trailing newline is trimmed).
    #[error("secret {0}: the value is empty")]
    Empty(SecretSource),
    /// A secret that should describe a database connection does not; `reason` names the
    /// field or the kind of problem, never a value.
    #[error("database secret: {reason}")]
    Database {
        /// What is wrong.
        reason: String,
    },
}
