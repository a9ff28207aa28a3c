//! Re-reading a secret on an interval so that a rotation needs no restart.
//!
//! The watcher calls back only when the value changed. A failed read is logged at `warn`
//! with the source and the error (never the value) and retried at the next tick, while the
//! last good value stays in force. It never logs a value.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{SecretValue, SecretsProvider};

/// The shortest re-read interval; a shorter one given to [`watch`] is raised to it.
pub const WATCH_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Re-reads `provider` every `interval` (at least [`WATCH_INTERVAL_MIN`]), calling
/// `on_change` with the new value whenever it differs from the last good one (`initial` at
/// first). A failed read is logged and retried at the next tick; the last good value stays.
/// Spawned with `tokio::spawn` on the current runtime; the task runs until the returned
/// handle is aborted or the runtime stops. Reads never overlap: a slow read delays the
/// next tick.
pub fn watch(
    provider: SecretsProvider,
    interval: Duration,
    initial: SecretValue,
    on_change: impl Fn(SecretValue) + Send + Sync + 'static,
) -> JoinHandle<()> {
    let period = interval.max(WATCH_INTERVAL_MIN);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = initial;
        let mut failing = false;
        loop {
            ticks.tick().await;
            match provider.read().await {
                Ok(value) => {
                    if failing {
                        tracing::info!(source = %provider.source(), "secret readable again");
                        failing = false;
                    }
                    if value != last {
                        tracing::info!(source = %provider.source(), "secret changed");
                        last = value.clone();
                        on_change(value);
                    }
                }
                Err(error) => {
                    failing = true;
                    tracing::warn!(
                        source = %provider.source(),
                        error = %error,
                        "secret re-read failed; the last value stays in force"
                    );
                }
            }
        }
    })
}
