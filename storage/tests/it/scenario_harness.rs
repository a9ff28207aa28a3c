//! Runs the scenario tables of `ledger_scenarios.rs` against any [`Backend`]: the pure
//! ledger there, the embedded store (`embedded_conformance.rs`) and PostgreSQL
//! (`pg_conformance.rs`), so one suite holds every backend to the same answers,
//! balances and timestamps.

use storage::ledger::{Account, Event, Key, Outcome, Record, ResultCode};

use crate::ledger_scenarios::{Batch, Expect, Scenario};
use crate::ledger_support::balances;

/// Something that applies batches: the pure ledger (`ledger_scenarios.rs`), a durable store
/// (`embedded_conformance.rs`, `pg_conformance.rs`), so every scenario runs against every backend.
pub(crate) trait Backend {
    /// Starts from an empty ledger.
    fn reset(&mut self);
    /// Applies one batch at `now`.
    fn apply(&mut self, events: &[Event], now: u64) -> Vec<Outcome>;
    /// The account `key`, if it exists.
    fn account(&mut self, key: Key) -> Option<Account>;
    /// No record created from now on has a timestamp at or below this.
    fn timestamp_floor(&mut self) -> u64;
}

/// Runs `scenario` on `backend` from an empty ledger.
pub(crate) fn check_with(
    backend: &mut impl Backend,
    scenario: &Scenario,
) -> Result<Vec<Outcome>, String> {
    backend.reset();
    for (index, setup) in scenario.setup.iter().enumerate() {
        let outcomes = backend.apply(setup.events, setup.now);
        if let Some(bad) = outcomes.iter().find(|o| !o.code.is_success()) {
            return Err(format!("setup batch {index} answered {}", describe(bad)));
        }
    }
    let timestamp_before = backend.timestamp_floor();
    let outcomes = backend.apply(scenario.batch.events, scenario.batch.now);
    let mut problems = Vec::new();
    let actual: Vec<String> = outcomes.iter().map(describe).collect();
    if actual != scenario.expect {
        problems.push(format!("codes: expected {:?}\n        got {actual:?}", scenario.expect));
    }
    problems.extend(scenario.accounts.iter().filter_map(|expect| check_account(backend, expect)));
    problems.extend(check_timestamps(scenario.batch, &outcomes, timestamp_before));
    if problems.is_empty() { Ok(outcomes) } else { Err(problems.join("\n  ")) }
}

/// `code`, or `id_already_failed(first_code)`.
fn describe(outcome: &Outcome) -> String {
    match outcome.failed_with {
        Some(first) => format!("{}({})", outcome.code.as_str(), first.as_str()),
        None => outcome.code.as_str().to_owned(),
    }
}

fn check_account(backend: &mut impl Backend, expect: &Expect) -> Option<String> {
    match expect {
        Expect::Balances(key, expected) => match backend.account(*key) {
            Some(account) if balances(&account) == *expected => None,
            Some(account) => Some(format!(
                "account {key:?}: expected {expected:?}, got {:?}",
                balances(&account)
            )),
            None => Some(format!("account {key:?}: missing")),
        },
        Expect::Missing(key) => {
            backend.account(*key).map(|_| format!("account {key:?}: should not exist"))
        }
    }
}

/// The records `batch` created have strictly increasing timestamps, all after
/// `timestamp_before` and none before `batch.now`.
fn check_timestamps(batch: Batch, outcomes: &[Outcome], timestamp_before: u64) -> Vec<String> {
    let created = batch.events.iter().zip(outcomes).filter_map(|(event, outcome)| {
        let creates = !matches!(event, Event::ExpirePending(_));
        (creates && outcome.code == ResultCode::Ok).then_some(outcome.record).flatten()
    });
    let mut last = timestamp_before;
    let mut problems = Vec::new();
    for record in created {
        let timestamp = match record {
            Record::Account(account) => account.timestamp,
            Record::Transfer(transfer) => transfer.timestamp,
        };
        if timestamp <= last || timestamp < batch.now {
            problems.push(format!("timestamp {timestamp} after {last} at now {}", batch.now));
        }
        last = timestamp;
    }
    problems
}
