//! Per-core runtimes, per-core listeners and the group-commit batcher.
//!
//! # Per core, not work stealing
//!
//! Tokio offers two runtimes: a current-thread one, and a multi-thread one whose workers
//! steal tasks from each other. Work stealing balances uneven load, but every task wake-up
//! may cross cores, every task must be `Send`, and everything two tasks share must be
//! synchronised. Pingora's `pingora-runtime` measured that overhead and offers a third
//! flavour: many current-thread runtimes, one per thread, with no stealing. Protea takes
//! the same shape and goes one step further, pushing the split all the way down:
//!
//! - [`cores::spawn_cores`] starts one OS thread per core. Each runs its own
//!   current-thread tokio runtime and a [`tokio::task::LocalSet`], so a core's tasks may
//!   be `!Send` and share state through `Rc`/`RefCell` instead of `Arc`/`Mutex`.
//! - [`listener::bind_reuseport`] gives each core its own listening socket on the same
//!   address (`SO_REUSEPORT`): the kernel spreads incoming connections across them, and
//!   no accept queue, acceptor thread or hand-off between cores exists.
//! - [`batcher::batcher`] gives each core its own group-commit batcher (and, in the
//!   crates above, its own database connections). A request is accepted, parsed, queued,
//!   flushed and answered on the core that accepted it.
//!
//! So the request path takes no lock that another core can hold and never wakes a task
//! on another core. The cost is balance: the kernel spreads *connections*, not requests,
//! and a busy core gets no help from an idle one. That suits many client connections; a
//! tenant that sends everything over one long-lived HTTP/2 connection is served by one
//! core.
//!
//! The measurement that decides this for Protea (per-core versus one work-stealing
//! runtime, same host, same load, p99 and throughput) belongs in `benches` and in an ADR
//! under `docs/adr/`; its figure goes here once it exists.
//!
//! # Group commit
//!
//! The batcher flushes at once when nothing is in flight; while a flush is in flight,
//! arrivals accumulate and go together in the next flush, up to `batch_size_max` events.
//! Low load gets low latency, high load gets large batches, and no timer is involved.
//! Every bound is explicit: a full queue or an oversized request is refused at once
//! ([`batcher::SubmitError`]), never queued without limit.
//!
//! # What this crate never does
//!
//! It is generic plumbing. It knows no HTTP types (no status codes, headers or bodies:
//! `gateway` maps [`batcher::SubmitError`] to statuses) and no ledger types (a batch is a
//! `Vec` of some `Flusher::Event`; `storage` decides what a flush means). It depends on
//! neither `gateway` nor `storage`, does no logging, reads no configuration, and never
//! blocks a core's thread once the core is running. [`pg`] makes PostgreSQL connections
//! (TLS, timeouts, per-core pools) but runs no query of the ledger's.

pub mod batcher;
pub mod cores;
pub mod listener;
pub mod pg;
