//! Conformance: every ledger scenario of `ledger_scenarios.rs`, run through the embedded
//! store's writer (redb, fsynced commits) from an empty store each time, must answer the
//! same codes and leave the same balances as the pure ledger. `pg_conformance.rs` runs the
//! same tables through the PostgreSQL flush: one suite, both backends.

use std::sync::atomic::{AtomicU64, Ordering};

use storage::embedded::{Embedded, EmbeddedConfig};
use storage::ledger::{Account, Event, Key, Outcome, split_open_chain};
use storage::tenants::{NewApiKey, NewTenant};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::ledger_scenarios::TABLES;
use crate::ledger_support::{OTHER_TENANT, TENANT};
use crate::scenario_harness::{Backend, check_with};

/// The scenario's clock, read by the writer of the store under test (only this test
/// opens a store with it).
static SCENARIO_NOW: AtomicU64 = AtomicU64::new(0);

fn scenario_clock() -> u64 {
    SCENARIO_NOW.load(Ordering::SeqCst)
}

/// The embedded store behind the scenario harness, on a fresh directory per scenario.
struct EmbeddedBackend {
    runtime: Runtime,
    store: Option<(Embedded, TempDir)>,
}

impl EmbeddedBackend {
    fn store(&self) -> &Embedded {
        &self.store.as_ref().expect("reset opens a store").0
    }
}

impl Backend for EmbeddedBackend {
    /// A new store with both scenario tenants. Expiry is left to the events the
    /// scenarios send (`expire_batch_max` 0), as on PostgreSQL.
    fn reset(&mut self) {
        if let Some((store, _dir)) = self.store.take() {
            store.close();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmbeddedConfig::in_dir(dir.path());
        config.expire_batch_max = 0;
        config.clock = scenario_clock;
        let store = Embedded::open(&config).unwrap();
        for (name, key_id, expected) in [("one", "pk_one", TENANT), ("two", "pk_two", OTHER_TENANT)]
        {
            let key = NewApiKey {
                key_id: key_id.into(),
                secret_digest: [7; 32],
                sealed_secret: vec![1; 28],
                created_at_s: 1_700_000_000,
            };
            let new = NewTenant { name: name.into(), key };
            let tenant = self.runtime.block_on(store.create_tenant(new)).unwrap();
            assert_eq!(tenant.id, expected, "tenant ids are given out in order");
        }
        self.store = Some((store, dir));
    }

    /// As the gateway does: an open chain at the end is answered, not submitted.
    fn apply(&mut self, events: &[Event], now: u64) -> Vec<Outcome> {
        SCENARIO_NOW.store(now, Ordering::SeqCst);
        let mut closed = events.to_vec();
        let open = split_open_chain(&mut closed);
        let mut outcomes = self.runtime.block_on(self.store().submit(closed)).unwrap();
        outcomes.extend(open);
        outcomes
    }

    fn account(&mut self, key: Key) -> Option<Account> {
        self.store().account(key).unwrap()
    }

    fn timestamp_floor(&mut self) -> u64 {
        self.store().timestamp_last().unwrap()
    }
}

#[test]
fn every_scenario_answers_as_the_pure_ledger() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut backend = EmbeddedBackend { runtime, store: None };
    let mut failures = Vec::new();
    let mut ran = 0;
    for scenario in TABLES.iter().flat_map(|table| table.iter()) {
        ran += 1;
        if let Err(problem) = check_with(&mut backend, scenario) {
            failures.push(format!("scenario `{}`:\n  {problem}", scenario.name));
        }
    }
    if let Some((store, _dir)) = backend.store.take() {
        store.close();
    }
    assert!(ran >= 45, "only {ran} scenarios ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
