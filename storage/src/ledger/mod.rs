//! The double-entry ledger: accounts, transfers, two-phase transfers, linked chains and
//! idempotent ids, modelled on TigerBeetle's.
//!
//! Synchronous, deterministic and free of I/O: a backend loads the keys [`prefetch`]
//! names into a [`State`], calls [`apply`] with the time, and persists the [`Changes`].
//! This module must never read a clock, touch a file or socket, or know about HTTP.

pub mod prefetch;
mod result;
mod state_machine;
mod types;

pub use result::ResultCode;
pub use state_machine::{Changes, Outcome, Record, State, apply, split_open_chain};
pub use types::{
    AMOUNT_MAX, Account, AccountFlags, Event, Key, NewAccount, NewTransfer, PendingStatus,
    TenantId, Transfer, TransferFlags,
};
