//! One OS thread per core, each running a current-thread tokio runtime and a `LocalSet`.
//!
//! [`spawn_cores`] starts the threads; [`Cores::join`] waits for them. A core ends when
//! the future its `make` closure returned completes; tasks it spawned and did not await
//! are dropped with its runtime.

use std::any::Any;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};

use tokio::runtime::{Builder, Runtime};
use tokio::task::LocalSet;

/// The running core threads, returned by [`spawn_cores`].
///
/// Dropping it detaches the threads; call [`Cores::join`] to wait for them.
#[must_use = "dropping Cores detaches the core threads; call join to wait for them"]
#[derive(Debug)]
pub struct Cores {
    threads: Vec<JoinHandle<()>>,
}

/// Why a core thread did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The core's future (or its runtime) panicked on that core's thread.
    #[error("core {core} panicked: {message}")]
    Panicked {
        /// Index of the core, as passed to `make`.
        core: usize,
        /// The panic message, when the payload was a string.
        message: String,
    },
}

/// Number of cores this process may use: [`std::thread::available_parallelism`], at
/// least 1.
pub fn available_cores() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Starts `count` threads named `{thread_name}-{i}`, each running `make(i)` to completion
/// on its own current-thread tokio runtime (all drivers enabled), inside a [`LocalSet`].
///
/// `make` is called on the core's own thread, inside its runtime and `LocalSet`, so it
/// and the future it returns may use `tokio::net` types (e.g. `TcpListener::from_std`),
/// `tokio::task::spawn_local` for `!Send` tasks, and plain `tokio::spawn`, which runs on
/// the same core.
///
/// Either every core starts or none does: runtimes are built and threads spawned first,
/// and `make` runs only once all of them exist.
///
/// # Errors
///
/// `count` is 0 (`InvalidInput`), or building a runtime or spawning a thread failed; the
/// message names the core. On error, threads already spawned exit without calling `make`
/// and are joined before this returns.
pub fn spawn_cores<F, Fut>(count: usize, thread_name: &str, make: F) -> io::Result<Cores>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if count == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "spawn_cores: count is 0"));
    }
    let make = Arc::new(make);
    let mut starting =
        Starting { gates: Vec::with_capacity(count), threads: Vec::with_capacity(count) };
    for core in 0..count {
        if let Err(error) = starting.spawn(core, thread_name, &make) {
            starting.abort();
            return Err(error);
        }
    }
    Ok(starting.open())
}

/// Threads spawned but held at their start gate until every core exists.
struct Starting {
    gates: Vec<mpsc::SyncSender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Starting {
    fn spawn<F, Fut>(&mut self, core: usize, thread_name: &str, make: &Arc<F>) -> io::Result<()>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime =
            build_runtime().map_err(|error| core_error(core, "building runtime", error))?;
        let (gate, wait) = mpsc::sync_channel(1);
        let make = Arc::clone(make);
        let thread = thread::Builder::new()
            .name(format!("{thread_name}-{core}"))
            .spawn(move || run_core(core, &runtime, wait, &*make))
            .map_err(|error| core_error(core, "spawning thread", error))?;
        self.gates.push(gate);
        self.threads.push(thread);
        Ok(())
    }

    /// Lets every core run `make`.
    fn open(self) -> Cores {
        for gate in &self.gates {
            // Cannot fail: the thread waits on the gate before doing anything else.
            let _ = gate.send(());
        }
        Cores { threads: self.threads }
    }

    /// Closes the gates (the threads return without running `make`) and joins them.
    fn abort(self) {
        drop(self.gates);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn build_runtime() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

fn core_error(core: usize, step: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("core {core}: {step}: {error}"))
}

/// The body of a core thread: wait for the start gate, then run `make(core)`.
fn run_core<F, Fut>(core: usize, runtime: &Runtime, gate: mpsc::Receiver<()>, make: &F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    if gate.recv().is_err() {
        return; // spawn_cores failed for another core: never start.
    }
    LocalSet::new().block_on(runtime, async { make(core).await });
}

impl Cores {
    /// Number of core threads.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Blocks until every core thread has ended (call it from outside the cores).
    ///
    /// # Errors
    ///
    /// [`CoreError::Panicked`] for the lowest-numbered core that panicked; all threads are
    /// joined either way.
    pub fn join(self) -> Result<(), CoreError> {
        let results: Vec<Result<(), CoreError>> = self
            .threads
            .into_iter()
            .enumerate()
            .map(|(core, thread)| join_core(core, thread))
            .collect();
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }
}

fn join_core(core: usize, thread: JoinHandle<()>) -> Result<(), CoreError> {
    thread.join().map_err(|payload| CoreError::Panicked { core, message: panic_message(&*payload) })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        return (*message).to_owned();
    }
    match payload.downcast_ref::<String>() {
        Some(message) => message.clone(),
        None => "non-string panic payload".to_owned(),
    }
}
