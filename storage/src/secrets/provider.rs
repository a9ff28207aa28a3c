//! Reading a secret once: from an environment variable, a file, or AWS Secrets Manager.
//!
//! The AWS client is built once per provider, with a rustls (ring) HTTPS client, a 10 s
//! bound on a whole call and the SDK's standard retries (at most 3 attempts). Region,
//! endpoint and credentials come from the standard AWS environment unless [`AwsSettings`]
//! overrides them. This module never logs a value and never puts one in an error; an AWS
//! error is described by its code and message only.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use super::{SecretError, SecretSource, SecretValue, VALUE_BYTES_MAX};

/// Most attempts of one Secrets Manager call (the SDK's standard retry mode).
const AWS_ATTEMPTS_MAX: u32 = 3;
/// Bound on one Secrets Manager call, retries included.
const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one attempt of a call.
const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on opening a connection.
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Overrides of the standard AWS environment (`AWS_REGION`/`AWS_DEFAULT_REGION`,
/// `AWS_ENDPOINT_URL`, the default credential chain), for local emulators and tests.
/// `Debug` never shows a secret access key.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// The endpoint to call instead of the one the environment or region gives.
    pub endpoint_url: Option<String>,
    /// The region instead of the environment's.
    pub region: Option<String>,
    /// Fixed credentials instead of the default chain (environment, profile, ECS, IMDS).
    pub credentials: Option<Credentials>,
}

impl AwsSettings {
    /// Settings for a local emulator such as moto or LocalStack: this endpoint and region,
    /// and fixed placeholder credentials (emulators accept any).
    pub fn local(endpoint_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            endpoint_url: Some(endpoint_url.into()),
            region: Some(region.into()),
            credentials: Some(Credentials::new(
                "protea-local",
                "protea-local",
                None,
                None,
                "protea-local",
            )),
        }
    }
}

/// Bounds of every call an AWS client makes.
#[derive(Clone, Copy, Debug)]
pub struct AwsBounds {
    /// Bound on opening a connection.
    pub connect: Duration,
    /// Bound on one attempt of a call.
    pub attempt: Duration,
    /// Bound on one call, retries included.
    pub operation: Duration,
    /// Most attempts of one call (the SDK's standard retry mode).
    pub attempts_max: u32,
}

impl AwsSettings {
    /// The SDK configuration every Protea AWS client is built from: the standard AWS
    /// environment with these overrides applied, a rustls (ring) HTTPS client and
    /// `bounds`. `None` when no region is configured.
    pub async fn sdk_config(&self, bounds: AwsBounds) -> Option<aws_config::SdkConfig> {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(bounds.connect)
            .operation_attempt_timeout(bounds.attempt)
            .operation_timeout(bounds.operation)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(bounds.attempts_max));
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let config = loader.load().await;
        config.region().is_some().then_some(config)
    }
}

/// Builds the Secrets Manager client of a provider for `secret_id`: a 10 s bound per
/// call, at most 3 attempts.
async fn build_client(settings: &AwsSettings, secret_id: &str) -> Result<Client, SecretError> {
    let bounds = AwsBounds {
        connect: AWS_CONNECT_TIMEOUT,
        attempt: AWS_ATTEMPT_TIMEOUT,
        operation: AWS_OPERATION_TIMEOUT,
        attempts_max: AWS_ATTEMPTS_MAX,
    };
    match settings.sdk_config(bounds).await {
        Some(config) => Ok(Client::new(&config)),
        None => Err(SecretError::AwsRegionMissing { secret_id: secret_id.to_owned() }),
    }
}

/// Reads one secret source. Cheap to clone (the AWS client is shared).
#[derive(Clone)]
pub struct SecretsProvider {
    source: SecretSource,
    aws: Option<Client>,
}

impl SecretsProvider {
    /// A provider for `source`. For an AWS source it builds the client from the standard
    /// AWS environment (region from `AWS_REGION`/`AWS_DEFAULT_REGION`, endpoint from
    /// `AWS_ENDPOINT_URL`, credentials from the default chain); it fails only when no
    /// region is configured. Nothing is read yet.
    pub async fn new(source: SecretSource) -> Result<Self, SecretError> {
        Self::with_aws_settings(source, &AwsSettings::default()).await
    }

    /// A provider for `source` whose AWS client uses `settings` over the environment.
    pub async fn with_aws_settings(
        source: SecretSource,
        settings: &AwsSettings,
    ) -> Result<Self, SecretError> {
        let aws = match &source {
            SecretSource::AwsSecretsManager { secret_id } => {
                Some(build_client(settings, secret_id).await?)
            }
            SecretSource::Env(_) | SecretSource::File(_) => None,
        };
        Ok(Self { source, aws })
    }

    /// A provider whose AWS client calls a local emulator (moto, LocalStack) at
    /// `endpoint_url` in `region`, with placeholder credentials: see [`AwsSettings::local`].
    pub async fn with_aws_endpoint(
        source: SecretSource,
        endpoint_url: impl Into<String>,
        region: impl Into<String>,
    ) -> Result<Self, SecretError> {
        Self::with_aws_settings(source, &AwsSettings::local(endpoint_url, region)).await
    }

    /// The source this provider reads.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// Reads the current value. An empty value, a value over [`VALUE_BYTES_MAX`] bytes or
    /// one that is not UTF-8 is an error; a file's trailing newlines are trimmed.
    pub async fn read(&self) -> Result<SecretValue, SecretError> {
        let text = match (&self.source, &self.aws) {
            (SecretSource::Env(var), _) => read_env(var)?,
            (SecretSource::File(path), _) => {
                let owned = path.clone();
                match tokio::task::spawn_blocking(move || read_file(&owned)).await {
                    Ok(result) => result?,
                    // The blocking read panicked or the runtime is shutting down.
                    Err(_) => {
                        return Err(SecretError::FileRead {
                            path: path.clone(),
                            error: std::io::Error::other("the read task did not finish"),
                        });
                    }
                }
            }
            (SecretSource::AwsSecretsManager { secret_id }, Some(client)) => {
                read_aws(client, secret_id).await?
            }
            (SecretSource::AwsSecretsManager { secret_id }, None) => {
                return Err(SecretError::AwsRegionMissing { secret_id: secret_id.clone() });
            }
        };
        if text.is_empty() {
            return Err(SecretError::Empty(self.source.clone()));
        }
        if text.len() > VALUE_BYTES_MAX {
            return Err(SecretError::TooLarge { from: self.source.clone(), max: VALUE_BYTES_MAX });
        }
        Ok(SecretValue(text))
    }

    /// The Secrets Manager client of an AWS source (for tools and tests that manage the
    /// secret too); `None` for the other sources.
    pub fn aws_client(&self) -> Option<&Client> {
        self.aws.as_ref()
    }
}

impl fmt::Debug for SecretsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsProvider").field("source", &self.source).finish_non_exhaustive()
    }
}

fn read_env(var: &str) -> Result<String, SecretError> {
    match std::env::var(var) {
        Ok(text) => Ok(text),
        Err(std::env::VarError::NotPresent) => Err(SecretError::EnvNotSet { var: var.to_owned() }),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(SecretError::NotUtf8(SecretSource::Env(var.to_owned())))
        }
    }
}

/// Reads a regular file of at most [`VALUE_BYTES_MAX`] bytes (checked while reading too,
/// in case it grows) and trims trailing newlines.
fn read_file(path: &Path) -> Result<String, SecretError> {
    let file_error = |error| SecretError::FileRead { path: path.to_owned(), error };
    let too_large = || SecretError::TooLarge {
        from: SecretSource::File(path.to_owned()),
        max: VALUE_BYTES_MAX,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let metadata = file.metadata().map_err(file_error)?;
    if !metadata.is_file() {
        return Err(SecretError::NotAFile { path: path.to_owned() });
    }
    if metadata.len() > VALUE_BYTES_MAX as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(VALUE_BYTES_MAX as u64 + 1).read_to_end(&mut bytes).map_err(file_error)?;
    if bytes.len() > VALUE_BYTES_MAX {
        return Err(too_large());
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|_| SecretError::NotUtf8(SecretSource::File(path.to_owned())))?;
    let kept = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(kept);
    Ok(text)
}

async fn read_aws(client: &Client, secret_id: &str) -> Result<String, SecretError> {
    let output = match client.get_secret_value().secret_id(secret_id).send().await {
        Ok(output) => output,
        Err(error) => return Err(aws_error(secret_id, error)),
    };
    if let Some(text) = output.secret_string() {
        return Ok(text.to_owned());
    }
    if let Some(blob) = output.secret_binary() {
        return String::from_utf8(blob.as_ref().to_vec()).map_err(|_| {
            SecretError::NotUtf8(SecretSource::AwsSecretsManager {
                secret_id: secret_id.to_owned(),
            })
        });
    }
    Err(SecretError::AwsNoValue { secret_id: secret_id.to_owned() })
}

fn aws_error<R: fmt::Debug>(
    secret_id: &str,
    error: SdkError<GetSecretValueError, R>,
) -> SecretError {
    let secret_id = secret_id.to_owned();
    let detail = match &error {
        SdkError::ServiceError(service) => {
            if let GetSecretValueError::ResourceNotFoundException(_) = service.err() {
                return SecretError::AwsNotFound { secret_id };
            }
            DisplayErrorContext(service.err()).to_string()
        }
        // A response that could not be parsed may have carried the value: describe it
        // without the parser's words, which could quote the body.
        SdkError::ResponseError(_) => "the response could not be read".to_owned(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    SecretError::Aws { secret_id, detail }
}
