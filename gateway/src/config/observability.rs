//! The observability flags of `serve` (the raw clap layer), validated into a typed
//! [`ObservabilityConfig`]: the service name traces and CloudWatch metrics carry, where
//! OpenTelemetry spans are exported (off when unset), and whether CloudWatch embedded
//! metric format lines are printed (off by default). Nothing here opens a file or a
//! socket, and nothing here decides what is traced.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, invalid, within};

/// Longest service name accepted (CloudWatch dimension values are at most 1024 bytes;
/// a service name is an identifier, so far shorter).
const SERVICE_NAME_BYTES_MAX: usize = 64;

/// Raw observability flags, before validation.
#[derive(Clone, Debug, Args)]
pub struct ObservabilityArgs {
    /// Service name on spans (`service.name`) and on CloudWatch metrics (dimension
    /// `Service`).
    #[arg(long, env = "PROTEA_SERVICE_NAME", default_value = "protea")]
    pub service_name: String,
    /// OTLP/HTTP (protobuf) collector base URL, e.g. `http://127.0.0.1:4318`; spans go to
    /// `<url>/v1/traces`. Unset: tracing is off and costs nothing.
    #[arg(long, env = "PROTEA_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Print CloudWatch embedded metric format lines on stdout every interval.
    #[arg(long, env = "PROTEA_CLOUDWATCH_EMF", default_value_t = false)]
    pub cloudwatch_emf: bool,
    /// Seconds between CloudWatch embedded metric format lines.
    #[arg(long, env = "PROTEA_CLOUDWATCH_EMF_INTERVAL_SECONDS", default_value_t = 60)]
    pub cloudwatch_emf_interval_seconds: u64,
}

/// Validated observability settings.
#[derive(Clone, Debug)]
pub struct ObservabilityConfig {
    /// `service.name` and the CloudWatch `Service` dimension.
    pub service_name: String,
    /// Where spans are exported; `None`: tracing off.
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// How often EMF lines are printed; `None`: EMF off.
    pub cloudwatch_emf_interval: Option<Duration>,
}

/// An OTLP/HTTP collector's base URL (`http://`, no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpEndpoint {
    base_url: String,
}

impl OtlpEndpoint {
    /// The URL spans are posted to: the base URL and `/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.base_url)
    }
}

impl ObservabilityArgs {
    /// Validates the observability flags.
    pub fn validate(&self) -> Result<ObservabilityConfig, ConfigError> {
        Ok(ObservabilityConfig {
            service_name: service_name(&self.service_name)?,
            otlp_endpoint: self.otlp_endpoint.as_deref().map(otlp_endpoint).transpose()?,
            cloudwatch_emf_interval: self.emf_interval()?,
        })
    }

    fn emf_interval(&self) -> Result<Option<Duration>, ConfigError> {
        let seconds = usize::try_from(self.cloudwatch_emf_interval_seconds).unwrap_or(usize::MAX);
        let seconds = within("cloudwatch-emf-interval-seconds", seconds, 1..=3600)?;
        Ok(self.cloudwatch_emf.then(|| Duration::from_secs(seconds as u64)))
    }
}

fn service_name(name: &str) -> Result<String, ConfigError> {
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if name.is_empty() || name.len() > SERVICE_NAME_BYTES_MAX || !plain {
        return Err(invalid(
            "service-name",
            format!("must be 1 to {SERVICE_NAME_BYTES_MAX} letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(name.to_owned())
}

fn otlp_endpoint(url: &str) -> Result<OtlpEndpoint, ConfigError> {
    let base_url = url.trim_end_matches('/');
    // Plain HTTP only: the collector is a sidecar on the task's loopback (the exporter is
    // built without TLS).
    let rest = base_url.strip_prefix("http://");
    let host_ok = rest.is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !host_ok || url.contains('@') {
        return Err(invalid(
            "otlp-endpoint",
            "must be an http:// URL like http://127.0.0.1:4318 (a local collector), without credentials",
        ));
    }
    Ok(OtlpEndpoint { base_url: base_url.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service_name: &str, otlp: Option<&str>, emf: bool, interval: u64) -> ObservabilityArgs {
        ObservabilityArgs {
            service_name: service_name.to_owned(),
            otlp_endpoint: otlp.map(str::to_owned),
            cloudwatch_emf: emf,
            cloudwatch_emf_interval_seconds: interval,
        }
    }

    #[test]
    fn off_by_default_and_on_when_asked() {
        let off = args("protea", None, false, 60).validate().unwrap();
        assert!(off.otlp_endpoint.is_none() && off.cloudwatch_emf_interval.is_none());
        let on = args("protea-prod", Some("http://127.0.0.1:4318/"), true, 1).validate().unwrap();
        let endpoint = on.otlp_endpoint.unwrap();
        assert_eq!(endpoint.traces_url(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(on.cloudwatch_emf_interval, Some(Duration::from_secs(1)));
        assert_eq!(on.service_name, "protea-prod");
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |a: ObservabilityArgs| a.validate().unwrap_err().key;
        assert_eq!(key(args("", None, false, 60)), "service-name");
        assert_eq!(key(args("has space", None, false, 60)), "service-name");
        assert_eq!(key(args("protea", Some("127.0.0.1:4318"), false, 60)), "otlp-endpoint");
        assert_eq!(key(args("protea", Some("http://u:p@host:4318"), false, 60)), "otlp-endpoint");
        assert_eq!(key(args("protea", Some("http://"), false, 60)), "otlp-endpoint");
        assert_eq!(key(args("protea", Some("https://collector:4318"), false, 60)), "otlp-endpoint");
        assert_eq!(key(args("protea", None, true, 0)), "cloudwatch-emf-interval-seconds");
        assert_eq!(key(args("protea", None, true, 3601)), "cloudwatch-emf-interval-seconds");
    }
}
