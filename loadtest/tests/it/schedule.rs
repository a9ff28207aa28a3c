//! The open-loop dispatcher against tokio's paused clock: starts happen exactly at
//! their intended times, at the asked rate, whatever the wall clock does.

use std::time::Duration;

use loadtest::runner::dispatch;
use loadtest::schedule::Schedule;
use tokio::time::Instant;

async fn starts(schedule: &Schedule) -> Vec<(u64, Duration, Duration)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    dispatch(schedule, start, |job| {
        seen.push((job.index, job.intended - start, Instant::now() - start));
        true
    })
    .await;
    seen
}

#[tokio::test(start_paused = true)]
async fn constant_rate_starts_on_time() {
    let schedule = Schedule::constant(1000, Duration::from_secs(2));
    let seen = starts(&schedule).await;
    assert_eq!(seen.len(), 2000);
    for (index, intended, actual) in &seen {
        assert_eq!(*intended, schedule.offset(*index).unwrap());
        assert!(*actual >= *intended, "never early");
        assert!(*actual - *intended < Duration::from_millis(2), "late at {index}");
    }
    let first_second = seen.iter().filter(|(_, _, at)| *at < Duration::from_secs(1)).count();
    assert_eq!(first_second, 1000);
}

#[tokio::test(start_paused = true)]
async fn stepped_rate_changes_at_step_boundaries() {
    let schedule = Schedule::stepped(vec![100, 300, 50], Duration::from_secs(3));
    let seen = starts(&schedule).await;
    let per_second = |s: u64| {
        let range = Duration::from_secs(s)..Duration::from_secs(s + 1);
        seen.iter().filter(|(_, intended, _)| range.contains(intended)).count()
    };
    assert_eq!([per_second(0), per_second(1), per_second(2)], [100, 300, 50]);
    assert_eq!(seen.len() as u64, schedule.total());
}

#[test]
fn odd_rates_have_exact_counts() {
    let cases = [(7, 1000, 7), (3, 1500, 5), (1, 999, 1), (10_000, 250, 2500)];
    for (rate, millis, total) in cases {
        let schedule = Schedule::constant(rate, Duration::from_millis(millis));
        assert_eq!(schedule.total(), total, "{rate}/s for {millis} ms");
        let last = schedule.offset(total - 1).unwrap();
        assert!(last < Duration::from_millis(millis));
    }
}
