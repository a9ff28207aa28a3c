//! Ledger benchmarks: the pure state machine's `apply`, and durable commits through the
//! embedded store at several batch sizes (what group commit buys: one fsync per batch).
//!
//! Run: `cargo bench -p benches --bench ledger`.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use storage::embedded::{Embedded, EmbeddedConfig};
use storage::ledger::{AccountFlags, Event, NewAccount, NewTransfer, State, TransferFlags, apply};

const TENANT: u64 = 1;
const ACCOUNTS: u128 = 1000;
const NOW_NS: u64 = 1_700_000_000_000_000_000;

fn account_events() -> Vec<Event> {
    (1..=ACCOUNTS)
        .map(|id| {
            let account = NewAccount {
                id,
                ledger: 710,
                code: 1,
                flags: AccountFlags::empty(),
                user_data: 0,
                subject_id: 0,
            };
            Event::CreateAccount(TENANT, account)
        })
        .collect()
}

/// `count` transfers between pseudo-random account pairs, ids from `first_id`.
fn transfer_events(first_id: u128, count: usize) -> Vec<Event> {
    (0..count as u128)
        .map(|i| {
            let n = first_id + i;
            let debit = n * 7919 % ACCOUNTS + 1;
            let credit = (debit % ACCOUNTS) + 1;
            let transfer = NewTransfer {
                id: n,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: 100 + (n % 1000) as u64,
                pending_id: 0,
                user_data: 0,
                ledger: 710,
                code: 1,
                flags: TransferFlags::empty(),
                timeout_seconds: 0,
            };
            Event::CreateTransfer(TENANT, transfer)
        })
        .collect()
}

fn state_with_accounts() -> State {
    let mut state = State::default();
    let (outcomes, _) = apply(&mut state, &account_events(), NOW_NS);
    assert!(outcomes.iter().all(|o| o.code.is_success()));
    state
}

fn bench_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger_apply");
    for size in [1usize, 100, 8190] {
        let events = transfer_events(1_000_000, size);
        let base = state_with_accounts();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &events, |b, events| {
            b.iter_batched_ref(
                || base.clone(),
                |state| black_box(apply(state, events, NOW_NS)),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn bench_embedded_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Embedded::open(&EmbeddedConfig::in_dir(dir.path())).expect("store");
    let created = runtime.block_on(store.submit(account_events())).expect("accounts");
    assert!(created.iter().all(|o| o.code.is_success()));
    let mut next_id = 10_000_000u128;
    let mut group = c.benchmark_group("embedded_commit");
    group.sample_size(20);
    for size in [1usize, 10, 100, 1000] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_batched(
                || {
                    next_id += size as u128;
                    transfer_events(next_id, size)
                },
                |events| runtime.block_on(store.submit(events)).expect("commit"),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    store.close();
}

criterion_group!(benches, bench_apply, bench_embedded_commit);
criterion_main!(benches);
