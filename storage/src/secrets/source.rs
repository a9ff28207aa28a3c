//! The syntax of a secret source: `env:VAR_NAME`, `file:PATH` or
//! `aws-secretsmanager:SECRET_ID_OR_ARN`.
//!
//! A source names where a secret is, never the secret itself. A parse error names the bad
//! part only when it is a plausible kind name, and never quotes the rest of the input: an
//! operator who pasted the secret itself where the source belongs must not find it in a log.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::SecretError;

/// The longest Secrets Manager secret id or ARN accepted (AWS's own limit).
const SECRET_ID_CHARS_MAX: usize = 2048;

/// The longest kind name quoted back in an error.
const KIND_QUOTED_MAX: usize = 32;

/// Where a secret comes from. Parsed from text: `env:VAR_NAME`, `file:/abs/or/relative/path`,
/// `aws-secretsmanager:SECRET_ID_OR_ARN`. It displays in the same syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of this process, read as is.
    Env(String),
    /// A file (absolute, or relative to the working directory); trailing newlines are
    /// trimmed, and a file larger than [`super::VALUE_BYTES_MAX`] is refused.
    File(PathBuf),
    /// A secret in AWS Secrets Manager, its current version (`AWSCURRENT`).
    AwsSecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
    },
}

impl FromStr for SecretSource {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| Err(SecretError::InvalidSource(reason));
        let Some((kind, rest)) = text.split_once(':') else {
            return invalid(
                "expected KIND:NAME with KIND one of env, file, aws-secretsmanager \
                 (for example env:PROTEA_DATABASE_URL)"
                    .to_owned(),
            );
        };
        match kind {
            "env" => {
                if rest.is_empty() {
                    return invalid("env: needs a variable name after the colon".to_owned());
                }
                if rest.contains(['=', '\0']) {
                    return invalid(
                        "env: the variable name must not contain '=' or a NUL character".to_owned(),
                    );
                }
                Ok(Self::Env(rest.to_owned()))
            }
            "file" => {
                if rest.is_empty() {
                    return invalid("file: needs a path after the colon".to_owned());
                }
                if rest.contains('\0') {
                    return invalid("file: the path must not contain a NUL character".to_owned());
                }
                Ok(Self::File(PathBuf::from(rest)))
            }
            "aws-secretsmanager" => {
                if rest.is_empty() {
                    return invalid(
                        "aws-secretsmanager: needs a secret name or ARN after the colon".to_owned(),
                    );
                }
                if rest.chars().count() > SECRET_ID_CHARS_MAX {
                    return invalid(format!(
                        "aws-secretsmanager: the secret id is longer than {SECRET_ID_CHARS_MAX} \
                         characters"
                    ));
                }
                if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return invalid(
                        "aws-secretsmanager: the secret id must not contain spaces or control \
                         characters"
                            .to_owned(),
                    );
                }
                Ok(Self::AwsSecretsManager { secret_id: rest.to_owned() })
            }
            other => {
                let quotable = !other.is_empty()
                    && other.len() <= KIND_QUOTED_MAX
                    && other.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                let kind = if quotable {
                    format!("`{other}`")
                } else {
                    "before the first colon (not quoted)".to_owned()
                };
                invalid(format!("unknown kind {kind}: expected env:, file: or aws-secretsmanager:"))
            }
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => write!(f, "env:{var}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::AwsSecretsManager { secret_id } => write!(f, "aws-secretsmanager:{secret_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match text.parse::<SecretSource>() {
            Ok(source) => panic!("{text:?} parsed as {source:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_each_kind_and_displays_it_back() {
        let cases = [
            ("env:PROTEA_DATABASE_URL", SecretSource::Env("PROTEA_DATABASE_URL".to_owned())),
            ("file:/run/secrets/db", SecretSource::File(PathBuf::from("/run/secrets/db"))),
            ("file:relative/db.txt", SecretSource::File(PathBuf::from("relative/db.txt"))),
            (
                "aws-secretsmanager:arn:aws:secretsmanager:af-south-1:123456789012:secret:db-AbCdEf",
                SecretSource::AwsSecretsManager {
                    secret_id: "arn:aws:secretsmanager:af-south-1:123456789012:secret:db-AbCdEf"
                        .to_owned(),
                },
            ),
            (
                "aws-secretsmanager:protea/prod/db",
                SecretSource::AwsSecretsManager { secret_id: "protea/prod/db".to_owned() },
            ),
        ];
        for (text, expected) in cases {
            let parsed: SecretSource = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn missing_kind_does_not_quote_the_input() {
        let message = error("hunter2");
        assert!(message.contains("expected KIND:NAME"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn unknown_kind_is_named_when_it_looks_like_one() {
        let message = error("postgres://user:pass@db/protea");
        assert!(message.contains("unknown kind `postgres`"), "{message}");
        assert!(!message.contains("pass"), "{message}");
        let message = error("vault:secret/db");
        assert!(message.contains("`vault`"), "{message}");
        // Not a kind name: not quoted.
        let message = error("p@ss w0rd:x");
        assert!(message.contains("unknown kind before the first colon"), "{message}");
        assert!(!message.contains("p@ss"), "{message}");
        let message = error(":x");
        assert!(message.contains("unknown kind"), "{message}");
        // Kinds are lower case and exact.
        assert!(error("ENV:X").contains("`ENV`"));
        assert!(error("aws:x").contains("`aws`"));
    }

    #[test]
    fn empty_names_are_refused() {
        assert!(error("env:").contains("env: needs a variable name"));
        assert!(error("file:").contains("file: needs a path"));
        assert!(error("aws-secretsmanager:").contains("needs a secret name or ARN"));
    }

    #[test]
    fn bad_names_are_refused_without_quoting_them() {
        let message = error("env:A=secretvalue");
        assert!(message.contains("must not contain '='"), "{message}");
        assert!(!message.contains("secretvalue"), "{message}");
        assert!(error("env:A\0B").contains("NUL"));
        assert!(error("file:/a\0b").contains("NUL"));
        let message = error("aws-secretsmanager:my secret");
        assert!(message.contains("must not contain spaces"), "{message}");
        assert!(!message.contains("my secret"), "{message}");
        let long = format!("aws-secretsmanager:{}", "a".repeat(SECRET_ID_CHARS_MAX + 1));
        assert!(error(&long).contains("longer than 2048"));
        let longest = format!("aws-secretsmanager:{}", "a".repeat(SECRET_ID_CHARS_MAX));
        assert!(longest.parse::<SecretSource>().is_ok());
    }
}
