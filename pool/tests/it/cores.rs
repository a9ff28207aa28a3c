//! Per-core threads, each with its own current-thread runtime and `LocalSet`.

use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, ThreadId};

use pool::cores::{CoreError, available_cores, spawn_cores};
use tokio::runtime::{Handle, RuntimeFlavor};

/// What one core saw of itself.
#[derive(Debug)]
struct Report {
    core: usize,
    thread_name: String,
    thread: ThreadId,
    runtime: tokio::runtime::Id,
    flavor: RuntimeFlavor,
    local_and_spawned_tasks_ran: bool,
}

async fn report(core: usize) -> Report {
    let local = Rc::new(core); // !Send: needs the LocalSet.
    let local_task = tokio::task::spawn_local(async move { *local });
    let spawned = tokio::spawn(async move { core });
    let ran = local_task.await.expect("local task") == core && spawned.await.expect("task") == core;
    let current = thread::current();
    Report {
        core,
        thread_name: current.name().unwrap_or_default().to_owned(),
        thread: current.id(),
        runtime: Handle::current().id(),
        flavor: Handle::current().runtime_flavor(),
        local_and_spawned_tasks_ran: ran,
    }
}

#[test]
fn each_core_runs_on_its_own_thread_and_current_thread_runtime() {
    let (sender, receiver) = mpsc::channel();
    let cores = spawn_cores(3, "pool-it", move |core| {
        let sender = sender.clone();
        async move { sender.send(report(core).await).expect("test receives") }
    })
    .expect("cores start");
    assert_eq!(cores.count(), 3);
    cores.join().expect("no core panicked");
    let mut reports: Vec<Report> = receiver.iter().collect();
    reports.sort_by_key(|report| report.core);
    assert_eq!(reports.iter().map(|r| r.core).collect::<Vec<_>>(), [0, 1, 2]);
    for report in &reports {
        assert_eq!(report.thread_name, format!("pool-it-{}", report.core));
        assert_eq!(report.flavor, RuntimeFlavor::CurrentThread);
        assert!(report.local_and_spawned_tasks_ran, "{report:?}");
        assert_ne!(report.thread, thread::current().id());
    }
    assert_distinct(reports.iter().map(|r| r.thread));
    assert_distinct(reports.iter().map(|r| r.runtime));
}

fn assert_distinct<T: PartialEq + std::fmt::Debug>(items: impl Iterator<Item = T>) {
    let items: Vec<T> = items.collect();
    for (i, item) in items.iter().enumerate() {
        assert!(!items[i + 1..].contains(item), "{item:?} repeats in {items:?}");
    }
}

#[test]
fn join_names_the_core_that_panicked() {
    let cores = spawn_cores(3, "pool-panic", |core| async move {
        assert_ne!(core, 1, "core one fails on purpose");
    })
    .expect("cores start");
    let error = cores.join().expect_err("core 1 panicked");
    let CoreError::Panicked { core, message } = &error;
    assert_eq!(*core, 1);
    assert!(message.contains("core one fails on purpose"), "{message}");
    assert!(error.to_string().starts_with("core 1 panicked: "), "{error}");
}

#[test]
fn zero_cores_is_refused() {
    let error = spawn_cores(0, "pool-none", |_| async {}).expect_err("count 0");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn at_least_one_core_is_available() {
    assert!(available_cores() >= 1);
}
