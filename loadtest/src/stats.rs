//! Measurements: HDR histograms per request kind and overall, per-second windows, and
//! counts by HTTP status and by ledger result code.
//!
//! Each generator thread records into its own [`Tally`]; the run's [`Recorder`] merges
//! them once per second and at the end (a sample that races a window's close is counted
//! in the next window; totals are exact).
//!
//! Memory is bounded whatever the run's length: fixed histograms, one small summary
//! per second, and counters keyed by a bounded set of statuses and codes. It must never
//! keep a list of per-request samples.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::Kind;

/// Most distinct result codes counted; others are counted as `other`.
const RESULT_CODES_MAX: usize = 64;
/// Most seconds of windows kept (a week).
const WINDOWS_MAX: usize = 7 * 24 * 3600;

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// Seconds since the start of the load.
    pub second: u64,
    /// Requests completed in this second.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// A histogram and its error count.
#[derive(Debug, Clone)]
pub struct Series {
    /// Latencies in µs.
    pub histogram: Histogram<u64>,
    /// Requests counted as errors.
    pub errors: u64,
}

impl Series {
    fn new() -> Series {
        Series { histogram: histogram(), errors: 0 }
    }

    fn record(&mut self, latency: Duration, error: bool) {
        self.histogram.saturating_record(micros(latency));
        self.errors += u64::from(error);
    }

    fn add(&mut self, other: &Series) {
        self.histogram.add(&other.histogram).expect("every series has the same bounds");
        self.errors += other.errors;
    }

    fn clear(&mut self) {
        self.histogram.reset();
        self.errors = 0;
    }

    /// Requests recorded.
    pub fn requests(&self) -> u64 {
        self.histogram.len()
    }
}

/// One finished request, as the recorder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Completion minus intended start.
    pub latency: Duration,
    /// HTTP status; 0 for a transport error or timeout.
    pub status: u16,
    /// Whether it counts as an error.
    pub error: bool,
    /// Result codes of its events.
    pub results: &'a [&'a str],
    /// When it completed, from the start of the load.
    pub at: Duration,
}

/// What one generator thread measured since it was last drained: the thread records
/// into its own tally, so no lock is shared across threads per request; the run's
/// [`Recorder`] merges every tally once per second and at the end.
#[derive(Debug, Clone)]
pub struct Tally {
    kinds: Vec<Series>,
    overall: Series,
    statuses: BTreeMap<u16, u64>,
    results: BTreeMap<String, u64>,
    /// Per second of completion, the seconds touched since the last drain (one or two).
    seconds: Vec<(u64, Series)>,
    missed: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally {
            kinds: Kind::ALL.iter().map(|_| Series::new()).collect(),
            overall: Series::new(),
            statuses: BTreeMap::new(),
            results: BTreeMap::new(),
            seconds: Vec::new(),
            missed: 0,
        }
    }

    /// Records one request.
    pub fn record(&mut self, sample: Sample<'_>) {
        self.kinds[sample.kind.index()].record(sample.latency, sample.error);
        self.overall.record(sample.latency, sample.error);
        self.second(sample.at.as_secs()).record(sample.latency, sample.error);
        *self.statuses.entry(sample.status).or_default() += 1;
        for result in sample.results {
            count_result(&mut self.results, result, 1);
        }
    }

    fn second(&mut self, second: u64) -> &mut Series {
        let position = match self.seconds.iter().rposition(|(s, _)| *s == second) {
            Some(position) => position,
            None => {
                self.seconds.push((second, Series::new()));
                self.seconds.len() - 1
            }
        };
        &mut self.seconds[position].1
    }

    /// Counts one missed open-loop start.
    pub fn miss(&mut self) {
        self.missed += 1;
    }

    /// Empties the tally, keeping its histograms' allocations.
    fn clear(&mut self) {
        self.kinds.iter_mut().chain([&mut self.overall]).for_each(Series::clear);
        self.statuses.clear();
        self.results.clear();
        self.seconds.clear();
        self.missed = 0;
    }
}

/// Everything measured during the load.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Per kind, indexed by [`Kind::index`].
    pub kinds: Vec<Series>,
    /// All kinds.
    pub overall: Series,
    /// Requests by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Events by ledger result code.
    pub results: BTreeMap<String, u64>,
    /// Finished seconds.
    pub windows: Vec<Window>,
    /// Open-loop starts dropped because the backlog was full.
    pub missed: u64,
    current: Series,
    current_second: u64,
    /// Seconds after the current one that already have samples (merged from tallies).
    later: Vec<(u64, Series)>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            kinds: Kind::ALL.iter().map(|_| Series::new()).collect(),
            overall: Series::new(),
            statuses: BTreeMap::new(),
            results: BTreeMap::new(),
            windows: Vec::new(),
            missed: 0,
            current: Series::new(),
            current_second: 0,
            later: Vec::new(),
        }
    }

    /// Records one request directly (tests, tools); the load records into per-thread
    /// [`Tally`]s instead and [`Recorder::merge`]s them.
    pub fn record(&mut self, sample: Sample<'_>) {
        self.roll(sample.at);
        let mut tally = Tally::new();
        tally.record(sample);
        self.merge(&mut tally);
    }

    /// Moves everything `tally` holds into the recorder and empties it. A second that
    /// is already closed goes into the current window (a sample that raced the close).
    pub fn merge(&mut self, tally: &mut Tally) {
        for (mine, theirs) in self.kinds.iter_mut().zip(&tally.kinds) {
            mine.add(theirs);
        }
        self.overall.add(&tally.overall);
        for (status, count) in &tally.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (result, count) in &tally.results {
            count_result(&mut self.results, result, *count);
        }
        for (second, series) in tally.seconds.drain(..) {
            self.merge_second(second, series);
        }
        self.missed += tally.missed;
        tally.clear();
    }

    fn merge_second(&mut self, second: u64, series: Series) {
        if second <= self.current_second {
            return self.current.add(&series);
        }
        match self.later.iter_mut().find(|(s, _)| *s == second) {
            Some((_, later)) => later.add(&series),
            None => self.later.push((second, series)),
        }
    }

    /// Closes every window that ended before `at`.
    pub fn roll(&mut self, at: Duration) {
        let second = at.as_secs();
        while self.current_second < second {
            self.close_window();
        }
    }

    /// Closes the current window (also the last, partial one).
    pub fn close_window(&mut self) {
        let window = summarise(self.current_second, &self.current);
        if self.windows.len() < WINDOWS_MAX {
            self.windows.push(window);
        }
        self.current_second += 1;
        let next = self.later.iter().position(|(s, _)| *s == self.current_second);
        self.current = match next {
            Some(position) => self.later.swap_remove(position).1,
            None => Series::new(),
        };
    }

    /// Counts one missed open-loop start.
    pub fn miss(&mut self) {
        self.missed += 1;
    }

    /// Errors plus missed starts.
    pub fn errors_total(&self) -> u64 {
        self.overall.errors + self.missed
    }
}

fn count_result(results: &mut BTreeMap<String, u64>, result: &str, count: u64) {
    if let Some(counted) = results.get_mut(result) {
        *counted += count;
    } else if results.len() < RESULT_CODES_MAX {
        results.insert(result.to_owned(), count);
    } else {
        *results.entry("other".to_owned()).or_default() += count;
    }
}

/// Milliseconds at a quantile of a µs histogram.
pub fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn summarise(second: u64, series: &Series) -> Window {
    let h = &series.histogram;
    Window {
        second,
        requests: series.requests(),
        errors: series.errors,
        p50_ms: quantile_ms(h, 0.5),
        p90_ms: quantile_ms(h, 0.9),
        p99_ms: quantile_ms(h, 0.99),
        p999_ms: quantile_ms(h, 0.999),
        max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, latency_ms: u64) -> Sample<'static> {
        Sample {
            kind: Kind::Single,
            latency: Duration::from_millis(latency_ms),
            status: 201,
            error: false,
            results: &["ok"],
            at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn windows_close_each_second_even_when_empty() {
        let mut recorder = Recorder::new();
        recorder.record(sample(100, 2));
        recorder.record(sample(2500, 4));
        recorder.close_window();
        let counts: Vec<u64> = recorder.windows.iter().map(|w| w.requests).collect();
        assert_eq!(counts, [1, 0, 1]);
        assert_eq!(recorder.results["ok"], 2);
        assert_eq!(recorder.statuses[&201], 2);
        assert!((recorder.windows[2].p50_ms - 4.0).abs() < 0.01);
    }

    #[test]
    fn tallies_merge_into_windows_by_second() {
        let (mut first, mut second) = (Tally::new(), Tally::new());
        first.record(sample(100, 2));
        second.record(sample(900, 6));
        second.record(sample(1200, 4));
        first.miss();
        let mut recorder = Recorder::new();
        recorder.merge(&mut first);
        recorder.merge(&mut second);
        recorder.roll(Duration::from_millis(1500));
        let mut late = Tally::new();
        late.record(sample(300, 8));
        recorder.merge(&mut late);
        recorder.close_window();
        let counts: Vec<u64> = recorder.windows.iter().map(|w| w.requests).collect();
        assert_eq!(counts, [2, 2], "a sample racing the close lands in the open window");
        assert_eq!(recorder.overall.requests(), 4);
        assert_eq!((recorder.missed, recorder.results["ok"], recorder.statuses[&201]), (1, 4, 4));
        assert_eq!(
            first.overall.requests() + second.seconds.len() as u64,
            0,
            "merged tallies are empty"
        );
    }
}
