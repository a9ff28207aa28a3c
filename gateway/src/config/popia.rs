//! The POPIA modules' flags of `serve` (the raw clap layer), validated into a typed
//! [`PopiaConfig`]: how often the retention, key re-wrap and audit-chain verification
//! jobs run and how much one retention run may purge. Nothing here opens a file or a socket.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, within};

/// Raw POPIA flags, before validation.
#[derive(Clone, Debug, Args)]
pub struct PopiaArgs {
    /// Seconds between runs of the retention job (purges field values past their
    /// retention period).
    #[arg(long, env = "PROTEA_RETENTION_INTERVAL_SECONDS", default_value_t = 3600)]
    pub retention_interval_seconds: u64,
    /// Most expired field values one retention run purges.
    #[arg(long, env = "PROTEA_RETENTION_BATCH_MAX", default_value_t = 1000)]
    pub retention_batch_max: usize,
    /// Seconds between runs of the job that re-wraps subjects' data keys with the
    /// current key-encryption key version.
    #[arg(long, env = "PROTEA_REWRAP_INTERVAL_SECONDS", default_value_t = 60)]
    pub rewrap_interval_seconds: u64,
    /// Seconds between background verifications of the audit trail's hash chain (the
    /// `protea_audit_chain_ok` metric). Each run reads the whole chain, in every process.
    #[arg(long, env = "PROTEA_AUDIT_VERIFY_INTERVAL_SECONDS", default_value_t = 3600)]
    pub audit_verify_interval_seconds: u64,
}

/// Validated POPIA settings.
#[derive(Clone, Debug)]
pub struct PopiaConfig {
    /// Interval of retention runs.
    pub retention_interval: Duration,
    /// Bound of one retention run.
    pub retention_batch_max: usize,
    /// Interval of re-wrap runs.
    pub rewrap_interval: Duration,
    /// Interval of background audit-chain verifications.
    pub audit_verify_interval: Duration,
}

impl PopiaArgs {
    /// Validates the POPIA flags.
    pub fn validate(&self) -> Result<PopiaConfig, ConfigError> {
        let seconds = |key, value: u64| {
            within(key, usize::try_from(value).unwrap_or(usize::MAX), 1..=86_400)
                .map(|value| Duration::from_secs(value as u64))
        };
        Ok(PopiaConfig {
            retention_interval: seconds(
                "retention-interval-seconds",
                self.retention_interval_seconds,
            )?,
            retention_batch_max: within(
                "retention-batch-max",
                self.retention_batch_max,
                1..=10_000,
            )?,
            rewrap_interval: seconds("rewrap-interval-seconds", self.rewrap_interval_seconds)?,
            audit_verify_interval: seconds(
                "audit-verify-interval-seconds",
                self.audit_verify_interval_seconds,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(audit_verify_interval_seconds: u64) -> PopiaArgs {
        PopiaArgs {
            retention_interval_seconds: 3600,
            retention_batch_max: 1000,
            rewrap_interval_seconds: 60,
            audit_verify_interval_seconds,
        }
    }

    #[test]
    fn the_audit_verify_interval_is_1_s_to_a_day() {
        let config = args(3600).validate().expect("the default is valid");
        assert_eq!(config.audit_verify_interval, Duration::from_secs(3600));
        for bad in [0, 86_401] {
            let error = args(bad).validate().expect_err("out of range");
            assert_eq!(error.key, "audit-verify-interval-seconds", "{bad}: {error}");
        }
    }
}
