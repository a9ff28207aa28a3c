//! The group-commit batcher's own cost: requests submitted through `pool::batcher` to a
//! flusher that answers at once, against calling that flusher directly, on one
//! current-thread runtime (as on a core).
//!
//! Run: `cargo bench -p benches --bench batcher`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pool::batcher::{BatcherConfig, FlushObserver, Flusher, batcher};

/// Answers every event with its own value.
struct Echo;

impl Flusher for Echo {
    type Event = u64;
    type Outcome = u64;
    type Error = ();

    fn flush(&self, events: Vec<u64>) -> impl Future<Output = Result<Vec<u64>, ()>> {
        std::future::ready(Ok(events))
    }
}

struct Quiet;

impl FlushObserver for Quiet {
    fn flushed(&self, _requests: usize, _events: usize, _latency: Duration) {}
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

/// `concurrent` requests of one event each, all in flight at once.
fn bench_batcher(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("batcher");
    for concurrent in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(concurrent as u64));
        group.bench_function(BenchmarkId::new("through_batcher", concurrent), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let config = BatcherConfig { batch_size_max: 8190, queue_depth_max: 4096 };
                    let (handle, run) = batcher(Echo, config, Arc::new(Quiet));
                    let loop_task = tokio::spawn(run);
                    let submits = (0..concurrent as u64).map(|i| {
                        let handle = handle.clone();
                        tokio::spawn(async move { handle.submit(vec![i]).await })
                    });
                    let tasks: Vec<_> = submits.collect();
                    for task in tasks {
                        black_box(task.await.expect("task").expect("submit"));
                    }
                    drop(handle);
                    loop_task.await.expect("batcher loop");
                });
            });
        });
        group.bench_function(BenchmarkId::new("direct", concurrent), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let flusher = Arc::new(Echo);
                    let calls = (0..concurrent as u64).map(|i| {
                        let flusher = flusher.clone();
                        tokio::spawn(async move { flusher.flush(vec![i]).await })
                    });
                    let tasks: Vec<_> = calls.collect();
                    for task in tasks {
                        black_box(task.await.expect("task").expect("flush"));
                    }
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_batcher);
criterion_main!(benches);
