//! The tester's model of what the ledger must hold: expected balances of the run's
//! accounts, a reservoir sample of acknowledged transfers, transfers whose outcome is
//! unknown, and open authorisations waiting for a post or void.
//!
//! Every structure is bounded (by `--accounts` or a fixed maximum, with an overflow
//! count). It must never change an expectation for an answer other than `ok`/`exists`.

use std::collections::VecDeque;

use uuid::Uuid;

use crate::api::{NewTransfer, Transfer};
use crate::workload::Rng;

/// Acknowledged transfers kept for read-back.
pub const RESERVOIR_MAX: usize = 100_000;
/// Events of unknown outcome kept for resolution.
pub const UNKNOWN_EVENTS_MAX: usize = 100_000;
/// Open authorisations kept for a later post or void.
const OPEN_PENDING_MAX: usize = 10_000;
/// Recently acknowledged transfer ids kept for `read_transfer`.
const RECENT_MAX: usize = 4096;
/// Retried transfers remembered to name suspects of a balance mismatch.
const RETRIED_MAX: usize = 10_000;
/// Violations kept with their text (the rest are counted).
pub const VIOLATIONS_MAX: usize = 1000;

/// What an applied transfer does to balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Debits and credits posted.
    Plain,
    /// Reserves: debits and credits pending.
    Pending,
    /// Releases `pending_amount` and posts the transfer's amount.
    Post {
        /// The resolved pending transfer's amount.
        pending_amount: u64,
    },
    /// Releases `pending_amount`.
    Void {
        /// The resolved pending transfer's amount.
        pending_amount: u64,
    },
}

/// One transfer event as planned: the body sent and what it must do.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The body sent.
    pub body: NewTransfer,
    /// Debit account index.
    pub debit: u32,
    /// Credit account index.
    pub credit: u32,
    /// What it does when applied.
    pub effect: Effect,
    /// How it must read back.
    pub expected: Transfer,
}

/// An acknowledged pending transfer not yet resolved.
#[derive(Debug, Clone, Copy)]
pub struct OpenPending {
    /// Its id.
    pub id: Uuid,
    /// Debit account index.
    pub debit: u32,
    /// Credit account index.
    pub credit: u32,
    /// Reserved amount.
    pub amount: u64,
}

/// Expected balances of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Pending debits.
    pub debits_pending: i128,
    /// Posted debits.
    pub debits_posted: i128,
    /// Pending credits.
    pub credits_pending: i128,
    /// Posted credits.
    pub credits_posted: i128,
}

/// The tester's expectations.
#[derive(Debug)]
pub struct Model {
    /// Indexed like the run's accounts (0 is the funding account).
    pub balances: Vec<Balance>,
    /// Sample of acknowledged transfers.
    pub reservoir: Vec<Transfer>,
    acknowledged: u64,
    rng: Rng,
    /// Requests (groups of events) whose outcome is unknown.
    pub unknown: Vec<Vec<Planned>>,
    unknown_events: usize,
    /// Unknown events not kept.
    pub unknown_overflow: u64,
    open_pending: VecDeque<OpenPending>,
    recent: VecDeque<Uuid>,
    /// Recently retried applied transfers: (id, debit index, credit index).
    pub retried: VecDeque<(Uuid, u32, u32)>,
    /// Problems seen during the run (retries that did not answer `exists`).
    pub violations: Vec<String>,
    /// Violations not kept.
    pub violations_overflow: u64,
}

impl Model {
    /// Expectations for `accounts` accounts (funding included), sampled with `seed`.
    pub fn new(accounts: usize, seed: u64) -> Model {
        Model {
            balances: vec![Balance::default(); accounts],
            reservoir: Vec::new(),
            acknowledged: 0,
            rng: Rng::new(seed ^ 0x7265_7365_7276_6f69),
            unknown: Vec::new(),
            unknown_events: 0,
            unknown_overflow: 0,
            open_pending: VecDeque::new(),
            recent: VecDeque::new(),
            retried: VecDeque::new(),
            violations: Vec::new(),
            violations_overflow: 0,
        }
    }

    /// Records that `planned` was applied exactly once.
    pub fn acknowledge(&mut self, planned: &Planned) {
        self.apply(planned);
        self.sample(&planned.expected);
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(planned.body.id);
        if planned.effect == Effect::Pending && self.open_pending.len() < OPEN_PENDING_MAX {
            let (id, debit, credit) = (planned.body.id, planned.debit, planned.credit);
            let amount = planned.expected.amount;
            self.open_pending.push_back(OpenPending { id, debit, credit, amount });
        }
    }

    fn apply(&mut self, planned: &Planned) {
        let amount = i128::from(planned.expected.amount);
        let (debit, credit) = (planned.debit as usize, planned.credit as usize);
        let (release, post) = match planned.effect {
            Effect::Plain => (0, amount),
            Effect::Pending => (-amount, 0),
            Effect::Post { pending_amount } => (i128::from(pending_amount), amount),
            Effect::Void { pending_amount } => (i128::from(pending_amount), 0),
        };
        self.balances[debit].debits_pending -= release;
        self.balances[credit].credits_pending -= release;
        self.balances[debit].debits_posted += post;
        self.balances[credit].credits_posted += post;
    }

    fn sample(&mut self, transfer: &Transfer) {
        self.acknowledged += 1;
        if self.reservoir.len() < RESERVOIR_MAX {
            self.reservoir.push(transfer.clone());
            return;
        }
        let slot = self.rng.below(self.acknowledged) as usize;
        if let Some(kept) = self.reservoir.get_mut(slot) {
            *kept = transfer.clone();
        }
    }

    /// Records a request whose outcome is unknown, to resolve after the run.
    pub fn unknown(&mut self, group: Vec<Planned>) {
        if self.unknown_events + group.len() > UNKNOWN_EVENTS_MAX {
            self.unknown_overflow += group.len() as u64;
            return;
        }
        self.unknown_events += group.len();
        self.unknown.push(group);
    }

    /// Takes an open authorisation to post or void.
    pub fn take_open_pending(&mut self) -> Option<OpenPending> {
        self.open_pending.pop_front()
    }

    /// A recently acknowledged transfer id.
    pub fn recent(&self, roll: u64) -> Option<Uuid> {
        let len = self.recent.len() as u64;
        (len > 0).then(|| self.recent[(roll % len) as usize])
    }

    /// Remembers an applied transfer that was sent again.
    pub fn retried(&mut self, planned: &Planned) {
        if self.retried.len() == RETRIED_MAX {
            self.retried.pop_front();
        }
        self.retried.push_back((planned.body.id, planned.debit, planned.credit));
    }

    /// Notes a violation.
    pub fn violation(&mut self, text: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(text);
        } else {
            self.violations_overflow += 1;
        }
    }

    /// Transfers acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }
}
