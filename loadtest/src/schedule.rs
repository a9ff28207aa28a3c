//! Intended start times of the open loop: a constant rate or a sequence of rate steps.
//!
//! The schedule is pure arithmetic on integers (nanoseconds): request `i` has one exact
//! intended offset from the start of the run. It must never read a clock; the
//! dispatcher does that, so the schedule can be tested exactly.

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Rate steps of equal length; one step is a constant rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    rates: Vec<u64>,
    step_nanos: u128,
    /// Requests before each step.
    firsts: Vec<u64>,
}

impl Schedule {
    /// `rate` requests per second for `duration`.
    pub fn constant(rate: u64, duration: Duration) -> Schedule {
        Schedule::stepped(vec![rate], duration)
    }

    /// Each rate for `duration / rates.len()`, in order. Rates must not be empty.
    pub fn stepped(rates: Vec<u64>, duration: Duration) -> Schedule {
        assert!(!rates.is_empty(), "a schedule has at least one step");
        let step_nanos = duration.as_nanos() / rates.len() as u128;
        let mut firsts = Vec::with_capacity(rates.len() + 1);
        let mut total = 0u64;
        for &rate in &rates {
            firsts.push(total);
            total += requests_in_step(rate, step_nanos);
        }
        firsts.push(total);
        Schedule { rates, step_nanos, firsts }
    }

    /// How many requests the whole schedule starts.
    pub fn total(&self) -> u64 {
        self.firsts.last().copied().unwrap_or(0)
    }

    /// The intended start of request `index`, from the start of the run; `None` past the end.
    pub fn offset(&self, index: u64) -> Option<Duration> {
        let step = self.firsts.partition_point(|&first| first <= index).checked_sub(1)?;
        let rate = *self.rates.get(step)?;
        let within = u128::from(index - self.firsts[step]);
        let nanos = step as u128 * self.step_nanos + within * NANOS_PER_SECOND / u128::from(rate);
        Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }

    /// The rate in force `elapsed` into the run (the last step's after the end).
    pub fn rate_at(&self, elapsed: Duration) -> u64 {
        let step = elapsed.as_nanos().checked_div(self.step_nanos).unwrap_or(0) as usize;
        self.rates[step.min(self.rates.len() - 1)]
    }

    /// The steps' rates.
    pub fn rates(&self) -> &[u64] {
        &self.rates
    }
}

/// The `j` with `j * 1e9 / rate < step_nanos`: ceil(step_nanos * rate / 1e9).
fn requests_in_step(rate: u64, step_nanos: u128) -> u64 {
    let scaled = step_nanos * u128::from(rate);
    u64::try_from(scaled.div_ceil(NANOS_PER_SECOND)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_offsets_are_exact() {
        let schedule = Schedule::constant(3, Duration::from_secs(2));
        assert_eq!(schedule.total(), 6);
        let offsets: Vec<u64> =
            (0..7).filter_map(|i| schedule.offset(i)).map(|d| d.as_nanos() as u64).collect();
        assert_eq!(
            offsets,
            [0, 333_333_333, 666_666_666, 1_000_000_000, 1_333_333_333, 1_666_666_666]
        );
    }

    #[test]
    fn stepped_rates_start_each_step_on_its_boundary() {
        let schedule = Schedule::stepped(vec![2, 4], Duration::from_secs(2));
        assert_eq!(schedule.total(), 6);
        let millis: Vec<u128> = (0..6).map(|i| schedule.offset(i).unwrap().as_millis()).collect();
        assert_eq!(millis, [0, 500, 1000, 1250, 1500, 1750]);
        assert_eq!(schedule.offset(6), None);
        assert_eq!(schedule.rate_at(Duration::from_millis(999)), 2);
        assert_eq!(schedule.rate_at(Duration::from_millis(1000)), 4);
    }
}
