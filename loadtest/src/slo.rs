//! The SLO gate: parses `p99=10ms,p999=50ms,errors=0.1%` and checks a run against it.
//!
//! It is evaluated on the overall histogram only, after the run. It must never look at
//! per-kind figures or windows: an SLO is one promise about the whole service.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::config::parse_duration;

/// Why an SLO specification could not be parsed; names the bad part.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --slo part `{part}`: {reason}")]
pub struct SloError {
    /// The offending `name=value` part.
    pub part: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Latency and error objectives; an absent one is not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    /// Latency objectives: (label, quantile, bound). Quantile 1.0 is the maximum.
    pub latencies: Vec<(String, f64, Duration)>,
    /// Most errors allowed, as a fraction of requests (0.001 for `0.1%`).
    pub errors_max: Option<f64>,
}

impl Slo {
    /// Parses a comma-separated list of `name=value` parts.
    pub fn parse(text: &str) -> Result<Slo, SloError> {
        let mut slo = Slo::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            slo.add_part(part)?;
        }
        if slo.latencies.is_empty() && slo.errors_max.is_none() {
            return Err(fail(text, "no objectives given"));
        }
        Ok(slo)
    }

    fn add_part(&mut self, part: &str) -> Result<(), SloError> {
        let (name, value) =
            part.split_once('=').ok_or_else(|| fail(part, "expected name=value"))?;
        let (name, value) = (name.trim(), value.trim());
        if name == "errors" {
            self.errors_max = Some(
                parse_percent(value)
                    .ok_or_else(|| fail(part, "errors takes a percentage such as 0.1%"))?,
            );
            return Ok(());
        }
        let quantile = quantile_of(name).ok_or_else(|| {
            fail(part, "unknown objective; use p50, p90, p99, p999, max or errors")
        })?;
        let bound = parse_duration(value).map_err(|e| fail(part, &e))?;
        self.latencies.push((name.to_owned(), quantile, bound));
        Ok(())
    }

    /// The violations of this SLO by a run: empty when it passes.
    pub fn evaluate(&self, overall: &Histogram<u64>, requests: u64, errors: u64) -> Vec<String> {
        let mut violations = Vec::new();
        for (name, quantile, bound) in &self.latencies {
            let measured_us = overall.value_at_quantile(*quantile);
            if u128::from(measured_us) > bound.as_micros() {
                violations.push(format!(
                    "{name} {:.3} ms > {:.3} ms",
                    measured_us as f64 / 1000.0,
                    bound.as_secs_f64() * 1000.0
                ));
            }
        }
        if let Some(max) = self.errors_max {
            let rate = if requests == 0 { 0.0 } else { errors as f64 / requests as f64 };
            if rate > max {
                violations.push(format!(
                    "errors {:.4}% > {:.4}% ({errors} of {requests})",
                    rate * 100.0,
                    max * 100.0
                ));
            }
        }
        violations
    }
}

fn fail(part: &str, reason: &str) -> SloError {
    SloError { part: part.to_owned(), reason: reason.to_owned() }
}

fn quantile_of(name: &str) -> Option<f64> {
    match name {
        "p50" => Some(0.5),
        "p90" => Some(0.9),
        "p99" => Some(0.99),
        "p999" | "p99.9" => Some(0.999),
        "max" => Some(1.0),
        _ => None,
    }
}

fn parse_percent(value: &str) -> Option<f64> {
    let number: f64 = value.strip_suffix('%')?.trim().parse().ok()?;
    (0.0..=100.0).contains(&number).then_some(number / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_objective() {
        let slo = Slo::parse("p50=1ms,p90=2ms,p99=10ms,p999=50ms,max=1s,errors=0.1%").unwrap();
        assert_eq!(slo.latencies.len(), 5);
        assert_eq!(slo.latencies[2], ("p99".to_owned(), 0.99, Duration::from_millis(10)));
        assert_eq!(slo.errors_max, Some(0.001));
    }

    #[test]
    fn names_the_bad_part() {
        let cases = [
            ("p99=10ms,p42=1ms", "p42=1ms"),
            ("p99=fast", "p99=fast"),
            ("errors=5", "errors=5"),
            ("p99", "p99"),
            ("errors=101%", "errors=101%"),
        ];
        for (text, part) in cases {
            let error = Slo::parse(text).unwrap_err();
            assert_eq!(error.part, part, "{text}");
        }
    }
}
