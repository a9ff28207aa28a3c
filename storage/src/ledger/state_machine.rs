//! The ledger state machine: `apply(state, events, now) -> outcomes`, synchronous and
//! deterministic, with time passed in.
//!
//! A backend prefetches what a batch needs into a [`State`] (see [`super::prefetch`]),
//! calls [`apply`], then persists what [`Changes`] lists. This module never does I/O,
//! never reads a clock and never allocates per event beyond the outcome it returns.
//! Invariants it asserts: every applied transfer debits and credits the same amount (money
//! is conserved per ledger), no balance exceeds [`AMOUNT_MAX`], and no account with a limit
//! flag ends an event past its limit.

use std::collections::HashMap;

use super::result::ResultCode;
use super::types::{
    AMOUNT_MAX, Account, AccountFlags, Event, Key, NewAccount, NewTransfer, PendingStatus,
    TenantId, Transfer, TransferFlags,
};

/// The slice of the ledger a batch can touch, loaded by a backend before [`apply`] (or
/// the whole ledger, in tests). `apply` updates it in place.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Accounts by key.
    pub accounts: HashMap<Key, Account>,
    /// Transfers by key.
    pub transfers: HashMap<Key, Transfer>,
    /// Stored rejections by transfer key.
    pub failures: HashMap<Key, ResultCode>,
    /// Pending transfers that were posted, voided or expired.
    pub pending_statuses: HashMap<Key, PendingStatus>,
    /// The newest timestamp assigned so far; timestamps only ever increase.
    pub timestamp_last: u64,
}

/// What one event produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The result code.
    pub code: ResultCode,
    /// For `id_already_failed`: the code the first attempt was rejected with.
    pub failed_with: Option<ResultCode>,
    /// The record the event left or found (`ok`, `exists`, `exists_with_different_fields`).
    pub record: Option<Record>,
}

/// An account or a transfer, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// An account.
    Account(Account),
    /// A transfer.
    Transfer(Transfer),
}

/// What a backend must persist after [`apply`]: keys whose final values are in the
/// [`State`], in the order they were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Accounts created or whose balances changed (each once).
    pub accounts: Vec<Key>,
    /// Transfers created, in timestamp order.
    pub transfers: Vec<Key>,
    /// Rejections to store.
    pub failures: Vec<(Key, ResultCode)>,
    /// Pending transfers resolved (posted, voided or expired).
    pub pending_statuses: Vec<(Key, PendingStatus)>,
}

/// Batches at least this large reserve room for their transfers up front. Measured with
/// `cargo bench -p benches --bench ledger`: reserving halves `apply` for 8190 events
/// (7.6 ms -> 3.5 ms). Single-event batches measure ~0.5 µs slower in builds that contain
/// this call even when it does not run (unexplained; negligible next to a commit's fsync).
const RESERVE_EVENTS_MIN: usize = 64;

/// Applies `events` in order at time `now_ns` (nanoseconds since the Unix epoch),
/// updating `state`. Linked chains apply whole or not at all.
pub fn apply(state: &mut State, events: &[Event], now_ns: u64) -> (Vec<Outcome>, Changes) {
    if events.len() >= RESERVE_EVENTS_MIN {
        state.transfers.reserve(events.len());
    }
    let changes = Changes {
        accounts: Vec::with_capacity(events.len() * 2),
        transfers: Vec::with_capacity(events.len()),
        ..Changes::default()
    };
    let mut run = Run { state, now_ns, changes, undo: Vec::new(), net: 0 };
    let mut outcomes = Vec::with_capacity(events.len());
    let mut start = 0;
    while start < events.len() {
        let chain = chain_at(events, start);
        match chain.end {
            Some(end) => run.apply_chain(&events[start..=end], &mut outcomes),
            None => push_open_chain(chain.len, &mut outcomes),
        }
        start += chain.len;
    }
    let mut changes = run.changes;
    changes.accounts.sort_unstable();
    changes.accounts.dedup();
    (outcomes, changes)
}

/// Splits a linked chain left open at the end of `events` off the batch and answers it
/// (`linked_event_failed` for each event, `linked_event_chain_open` for the last). Stores
/// concatenate batches from many requests, so a caller answers this tail itself and
/// submits only the rest (where every chain is closed).
pub fn split_open_chain(events: &mut Vec<Event>) -> Vec<Outcome> {
    let closed = events.iter().rposition(|event| !event.is_linked()).map_or(0, |last| last + 1);
    let open = events.len() - closed;
    events.truncate(closed);
    let mut outcomes = Vec::new();
    if open > 0 {
        push_open_chain(open, &mut outcomes);
    }
    outcomes
}

struct Chain {
    len: usize,
    /// The index of the chain's last event; `None` when the batch ends inside the chain.
    end: Option<usize>,
}

fn chain_at(events: &[Event], start: usize) -> Chain {
    match events[start..].iter().position(|e| !e.is_linked()) {
        Some(offset) => Chain { len: offset + 1, end: Some(start + offset) },
        None => Chain { len: events.len() - start, end: None },
    }
}

fn push_open_chain(len: usize, outcomes: &mut Vec<Outcome>) {
    outcomes.extend((1..len).map(|_| rejected(ResultCode::LinkedEventFailed)));
    outcomes.push(rejected(ResultCode::LinkedEventChainOpen));
}

const fn rejected(code: ResultCode) -> Outcome {
    Outcome { code, failed_with: None, record: None }
}

/// A state change that a failed linked chain must take back.
enum Undo {
    Account(Key, Option<Account>),
    Transfer(Key),
    Pending(Key),
}

struct Run<'s> {
    state: &'s mut State,
    now_ns: u64,
    changes: Changes,
    undo: Vec<Undo>,
    /// Debits moved minus credits moved (pending and posted) by the current event: zero
    /// after every event, which is what conserves money per ledger.
    net: i128,
}

struct Mark {
    undo: usize,
    accounts: usize,
    transfers: usize,
    pending_statuses: usize,
    net: i128,
}

impl Run<'_> {
    fn apply_chain(&mut self, chain: &[Event], outcomes: &mut Vec<Outcome>) {
        let mark = self.mark();
        let first = outcomes.len();
        for (offset, event) in chain.iter().enumerate() {
            let outcome = self.apply_event(event);
            if !outcome.code.is_success() {
                self.rollback(mark);
                outcomes.truncate(first);
                outcomes.extend((0..offset).map(|_| rejected(ResultCode::LinkedEventFailed)));
                outcomes.push(outcome);
                let rest = chain.len() - offset - 1;
                outcomes.extend((0..rest).map(|_| rejected(ResultCode::LinkedEventFailed)));
                self.store_failure(event, outcome.code);
                return;
            }
            outcomes.push(outcome);
        }
        self.undo.clear();
    }

    fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            accounts: self.changes.accounts.len(),
            transfers: self.changes.transfers.len(),
            pending_statuses: self.changes.pending_statuses.len(),
            net: self.net,
        }
    }

    fn rollback(&mut self, mark: Mark) {
        while self.undo.len() > mark.undo {
            match self.undo.pop() {
                Some(Undo::Account(key, Some(before))) => {
                    self.state.accounts.insert(key, before);
                }
                Some(Undo::Account(key, None)) => {
                    self.state.accounts.remove(&key);
                }
                Some(Undo::Transfer(key)) => {
                    self.state.transfers.remove(&key);
                }
                Some(Undo::Pending(key)) => {
                    self.state.pending_statuses.remove(&key);
                }
                None => break,
            }
        }
        self.changes.accounts.truncate(mark.accounts);
        self.changes.transfers.truncate(mark.transfers);
        self.changes.pending_statuses.truncate(mark.pending_statuses);
        self.net = mark.net;
    }

    fn store_failure(&mut self, event: &Event, code: ResultCode) {
        let Event::CreateTransfer(tenant, transfer) = event else { return };
        if code.is_stored_failure() {
            let key = Key::new(*tenant, transfer.id);
            self.state.failures.insert(key, code);
            self.changes.failures.push((key, code));
        }
    }

    fn apply_event(&mut self, event: &Event) -> Outcome {
        let result = match *event {
            Event::CreateAccount(tenant, account) => self.create_account(tenant, &account),
            Event::CreateTransfer(tenant, transfer) => self.create_transfer(tenant, &transfer),
            Event::ExpirePending(key) => self.expire_pending(key),
        };
        let outcome = result.unwrap_or_else(rejected);
        assert_eq!(self.net, 0, "every event debits and credits the same amount");
        outcome
    }

    /// The timestamp the next applied event gets: `now`, or one past the last.
    fn peek_timestamp(&self) -> u64 {
        let after_last =
            self.state.timestamp_last.checked_add(1).expect("u64 nanoseconds last until 2554");
        self.now_ns.max(after_last)
    }

    fn next_timestamp(&mut self) -> u64 {
        let timestamp = self.peek_timestamp();
        self.state.timestamp_last = timestamp;
        timestamp
    }

    fn put_account(&mut self, key: Key, account: Account) {
        assert_account_within_limits(&account);
        let before = self.state.accounts.insert(key, account);
        self.net += net_debits(&account) - before.as_ref().map_or(0, net_debits);
        self.undo.push(Undo::Account(key, before));
        self.changes.accounts.push(key);
    }

    fn put_transfer(&mut self, key: Key, transfer: Transfer) {
        self.state.transfers.insert(key, transfer);
        self.undo.push(Undo::Transfer(key));
        self.changes.transfers.push(key);
    }

    fn put_pending_status(&mut self, key: Key, status: PendingStatus) {
        self.state.pending_statuses.insert(key, status);
        self.undo.push(Undo::Pending(key));
        self.changes.pending_statuses.push((key, status));
    }

    fn create_account(
        &mut self,
        tenant: TenantId,
        new: &NewAccount,
    ) -> Result<Outcome, ResultCode> {
        validate_new_account(new)?;
        let key = Key::new(tenant, new.id);
        if let Some(existing) = self.state.accounts.get(&key) {
            return Ok(existing_account(new, existing));
        }
        let account = Account::open(new, self.next_timestamp());
        self.put_account(key, account);
        Ok(Outcome {
            code: ResultCode::Ok,
            failed_with: None,
            record: Some(Record::Account(account)),
        })
    }

    fn create_transfer(
        &mut self,
        tenant: TenantId,
        new: &NewTransfer,
    ) -> Result<Outcome, ResultCode> {
        validate_new_transfer(new)?;
        let key = Key::new(tenant, new.id);
        if let Some(existing) = self.state.transfers.get(&key) {
            let pending = self.state.transfers.get(&Key::new(tenant, existing.pending_id));
            return Ok(existing_transfer(new, existing, pending));
        }
        if let Some(&first) = self.state.failures.get(&key) {
            let code = ResultCode::IdAlreadyFailed;
            return Ok(Outcome { code, failed_with: Some(first), record: None });
        }
        let transfer = if resolves_pending(new.flags) {
            self.resolve_pending(tenant, new)?
        } else {
            self.move_funds(tenant, new)?
        };
        self.put_transfer(key, transfer);
        Ok(Outcome {
            code: ResultCode::Ok,
            failed_with: None,
            record: Some(Record::Transfer(transfer)),
        })
    }

    /// A single-phase or pending transfer between two accounts.
    fn move_funds(&mut self, tenant: TenantId, new: &NewTransfer) -> Result<Transfer, ResultCode> {
        let debit_key = Key::new(tenant, new.debit_account_id);
        let credit_key = Key::new(tenant, new.credit_account_id);
        let mut debit =
            *self.state.accounts.get(&debit_key).ok_or(ResultCode::DebitAccountNotFound)?;
        let mut credit =
            *self.state.accounts.get(&credit_key).ok_or(ResultCode::CreditAccountNotFound)?;
        check_accounts_for_new(new, &debit, &credit)?;
        let amount = balanced_amount(new, &debit, &credit)?;
        let pending = new.flags.contains(TransferFlags::PENDING);
        if pending {
            check_timeout(self.peek_timestamp(), new.timeout_seconds)?;
        }
        check_overflows(&debit, &credit, amount, pending)?;
        check_limits(&debit, &credit, amount)?;
        let timestamp = self.next_timestamp();
        if pending {
            debit.debits_pending += amount;
            credit.credits_pending += amount;
        } else {
            debit.debits_posted += amount;
            credit.credits_posted += amount;
        }
        self.put_account(debit_key, debit);
        self.put_account(credit_key, credit);
        Ok(Transfer {
            id: new.id,
            debit_account_id: new.debit_account_id,
            credit_account_id: new.credit_account_id,
            amount,
            pending_id: 0,
            user_data: new.user_data,
            ledger: new.ledger,
            code: new.code,
            flags: new.flags,
            timeout_seconds: new.timeout_seconds,
            timestamp,
        })
    }

    /// A post (capture) or void of a pending transfer.
    fn resolve_pending(
        &mut self,
        tenant: TenantId,
        new: &NewTransfer,
    ) -> Result<Transfer, ResultCode> {
        let pending_key = Key::new(tenant, new.pending_id);
        let pending =
            *self.state.transfers.get(&pending_key).ok_or(ResultCode::PendingTransferNotFound)?;
        check_pending_matches(new, &pending)?;
        self.check_still_pending(pending_key, &pending)?;
        let posting = new.flags.contains(TransferFlags::POST_PENDING);
        let amount = resolved_amount(new, &pending, posting)?;
        let (debit_key, mut debit, credit_key, mut credit) = self.accounts_of(tenant, &pending);
        if posting && (is_closed(&debit) || is_closed(&credit)) {
            return Err(ResultCode::AccountClosed);
        }
        let timestamp = self.next_timestamp();
        release(&mut debit, &mut credit, pending.amount);
        if posting {
            debit.debits_posted += amount;
            credit.credits_posted += amount;
        }
        self.put_account(debit_key, debit);
        self.put_account(credit_key, credit);
        let status = if posting { PendingStatus::Posted } else { PendingStatus::Voided };
        self.put_pending_status(pending_key, status);
        Ok(Transfer {
            id: new.id,
            debit_account_id: pending.debit_account_id,
            credit_account_id: pending.credit_account_id,
            amount,
            pending_id: pending.id,
            user_data: new.user_data,
            ledger: pending.ledger,
            code: pending.code,
            flags: new.flags,
            timeout_seconds: 0,
            timestamp,
        })
    }

    fn expire_pending(&mut self, key: Key) -> Result<Outcome, ResultCode> {
        let pending = *self.state.transfers.get(&key).ok_or(ResultCode::PendingTransferNotFound)?;
        if !pending.flags.contains(TransferFlags::PENDING) {
            return Err(ResultCode::PendingTransferNotPending);
        }
        if let Some(status) = self.state.pending_statuses.get(&key) {
            return Err(status_code(*status));
        }
        if pending.expires_at().is_none_or(|at| at > self.now_ns) {
            return Err(ResultCode::PendingTransferNotPending);
        }
        let (debit_key, mut debit, credit_key, mut credit) = self.accounts_of(key.tenant, &pending);
        release(&mut debit, &mut credit, pending.amount);
        self.put_account(debit_key, debit);
        self.put_account(credit_key, credit);
        self.put_pending_status(key, PendingStatus::Expired);
        Ok(Outcome {
            code: ResultCode::Ok,
            failed_with: None,
            record: Some(Record::Transfer(pending)),
        })
    }

    fn check_still_pending(&self, key: Key, pending: &Transfer) -> Result<(), ResultCode> {
        if let Some(status) = self.state.pending_statuses.get(&key) {
            return Err(status_code(*status));
        }
        match pending.expires_at() {
            Some(at) if at <= self.now_ns => Err(ResultCode::PendingTransferExpired),
            _ => Ok(()),
        }
    }

    fn accounts_of(&self, tenant: TenantId, transfer: &Transfer) -> (Key, Account, Key, Account) {
        let debit_key = Key::new(tenant, transfer.debit_account_id);
        let credit_key = Key::new(tenant, transfer.credit_account_id);
        let lookup = |key| {
            *self
                .state
                .accounts
                .get(&key)
                .expect("the accounts of a stored transfer are prefetched")
        };
        (debit_key, lookup(debit_key), credit_key, lookup(credit_key))
    }
}

fn status_code(status: PendingStatus) -> ResultCode {
    match status {
        PendingStatus::Posted => ResultCode::PendingTransferAlreadyPosted,
        PendingStatus::Voided => ResultCode::PendingTransferAlreadyVoided,
        PendingStatus::Expired => ResultCode::PendingTransferExpired,
    }
}

fn release(debit: &mut Account, credit: &mut Account, amount: u64) {
    assert!(debit.debits_pending >= amount, "pending debits never go negative");
    assert!(credit.credits_pending >= amount, "pending credits never go negative");
    debit.debits_pending -= amount;
    credit.credits_pending -= amount;
}

fn resolves_pending(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::POST_PENDING) || flags.contains(TransferFlags::VOID_PENDING)
}

fn is_closed(account: &Account) -> bool {
    account.flags.contains(AccountFlags::CLOSED)
}

fn validate_new_account(new: &NewAccount) -> Result<(), ResultCode> {
    validate_id(new.id)?;
    let both_limits = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
        .union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    if new.flags.contains(both_limits) {
        return Err(ResultCode::FlagsAreMutuallyExclusive);
    }
    if new.ledger == 0 {
        return Err(ResultCode::LedgerMustNotBeZero);
    }
    if new.code == 0 {
        return Err(ResultCode::CodeMustNotBeZero);
    }
    Ok(())
}

fn validate_id(id: u128) -> Result<(), ResultCode> {
    match id {
        0 => Err(ResultCode::IdMustNotBeZero),
        u128::MAX => Err(ResultCode::IdMustNotBeIntMax),
        _ => Ok(()),
    }
}

fn validate_new_transfer(new: &NewTransfer) -> Result<(), ResultCode> {
    validate_id(new.id)?;
    validate_transfer_flags(new.flags)?;
    if new.amount > AMOUNT_MAX {
        return Err(ResultCode::AmountExceedsMaximum);
    }
    if resolves_pending(new.flags) { validate_resolving(new) } else { validate_moving(new) }
}

fn validate_transfer_flags(flags: TransferFlags) -> Result<(), ResultCode> {
    let kinds = [TransferFlags::PENDING, TransferFlags::POST_PENDING, TransferFlags::VOID_PENDING];
    let kind_count = kinds.iter().filter(|k| flags.contains(**k)).count();
    let balancing = flags.contains(TransferFlags::BALANCING_DEBIT)
        || flags.contains(TransferFlags::BALANCING_CREDIT);
    if kind_count > 1 || (balancing && resolves_pending(flags)) {
        return Err(ResultCode::FlagsAreMutuallyExclusive);
    }
    Ok(())
}

fn validate_resolving(new: &NewTransfer) -> Result<(), ResultCode> {
    if new.pending_id == 0 {
        return Err(ResultCode::PendingIdMustNotBeZero);
    }
    if new.pending_id == new.id {
        return Err(ResultCode::PendingIdMustBeDifferent);
    }
    if new.debit_account_id != 0 && new.debit_account_id == new.credit_account_id {
        return Err(ResultCode::AccountsMustBeDifferent);
    }
    if new.timeout_seconds != 0 {
        return Err(ResultCode::TimeoutReservedForPendingTransfer);
    }
    Ok(())
}

fn validate_moving(new: &NewTransfer) -> Result<(), ResultCode> {
    let checks = [
        (new.debit_account_id == 0, ResultCode::DebitAccountIdMustNotBeZero),
        (new.credit_account_id == 0, ResultCode::CreditAccountIdMustNotBeZero),
        (new.debit_account_id == new.credit_account_id, ResultCode::AccountsMustBeDifferent),
        (new.pending_id != 0, ResultCode::PendingIdMustBeZero),
        (
            new.timeout_seconds != 0 && !new.flags.contains(TransferFlags::PENDING),
            ResultCode::TimeoutReservedForPendingTransfer,
        ),
        (new.amount == 0, ResultCode::AmountMustNotBeZero),
        (new.ledger == 0, ResultCode::LedgerMustNotBeZero),
        (new.code == 0, ResultCode::CodeMustNotBeZero),
    ];
    match checks.iter().find(|(failed, _)| *failed) {
        Some((_, code)) => Err(*code),
        None => Ok(()),
    }
}

fn existing_account(new: &NewAccount, existing: &Account) -> Outcome {
    let same = new.ledger == existing.ledger
        && new.code == existing.code
        && without_linked_account(new.flags) == without_linked_account(existing.flags)
        && new.user_data == existing.user_data
        && new.subject_id == existing.subject_id;
    let code = if same { ResultCode::Exists } else { ResultCode::ExistsWithDifferentFields };
    Outcome { code, failed_with: None, record: Some(Record::Account(*existing)) }
}

/// Flags compared on a retry: `linked` only says how the event was batched.
fn without_linked_account(flags: AccountFlags) -> u16 {
    flags.bits() & !AccountFlags::LINKED.bits()
}

/// Flags compared on a retry: `linked` only says how the event was batched.
fn without_linked_transfer(flags: TransferFlags) -> u16 {
    flags.bits() & !TransferFlags::LINKED.bits()
}

/// A pending transfer's expiry must be representable.
fn check_timeout(timestamp: u64, timeout_seconds: u32) -> Result<(), ResultCode> {
    let timeout_ns = u64::from(timeout_seconds) * 1_000_000_000;
    match timestamp.checked_add(timeout_ns) {
        Some(_) => Ok(()),
        None => Err(ResultCode::OverflowsTimeout),
    }
}

/// `pending` is the transfer `existing` posted or voided, if it is one.
fn existing_transfer(
    new: &NewTransfer,
    existing: &Transfer,
    pending: Option<&Transfer>,
) -> Outcome {
    let same = if resolves_pending(new.flags) {
        same_resolving(new, existing, pending)
    } else {
        same_moving(new, existing)
    };
    let same = same
        && without_linked_transfer(new.flags) == without_linked_transfer(existing.flags)
        && new.user_data == existing.user_data;
    let code = if same { ResultCode::Exists } else { ResultCode::ExistsWithDifferentFields };
    Outcome { code, failed_with: None, record: Some(Record::Transfer(*existing)) }
}

/// Zero means "as stored" for the optional fields of a post or void.
fn same_or_zero<T: PartialEq + Default>(given: T, stored: T) -> bool {
    given == T::default() || given == stored
}

/// A zero amount on a post asks for the whole pending amount, not for "as stored"; a void
/// always releases the whole pending amount, which is what it stored.
fn same_resolving(new: &NewTransfer, existing: &Transfer, pending: Option<&Transfer>) -> bool {
    let amount_matches = match (new.flags.contains(TransferFlags::POST_PENDING), new.amount) {
        (true, 0) => pending.is_some_and(|p| p.amount == existing.amount),
        (_, amount) => same_or_zero(amount, existing.amount),
    };
    new.pending_id == existing.pending_id
        && same_or_zero(new.debit_account_id, existing.debit_account_id)
        && same_or_zero(new.credit_account_id, existing.credit_account_id)
        && same_or_zero(new.ledger, existing.ledger)
        && same_or_zero(new.code, existing.code)
        && amount_matches
}

fn same_moving(new: &NewTransfer, existing: &Transfer) -> bool {
    let balancing = new.flags.contains(TransferFlags::BALANCING_DEBIT)
        || new.flags.contains(TransferFlags::BALANCING_CREDIT);
    let amount_matches =
        if balancing { new.amount >= existing.amount } else { new.amount == existing.amount };
    new.debit_account_id == existing.debit_account_id
        && new.credit_account_id == existing.credit_account_id
        && new.ledger == existing.ledger
        && new.code == existing.code
        && new.timeout_seconds == existing.timeout_seconds
        && new.pending_id == existing.pending_id
        && amount_matches
}

fn check_accounts_for_new(
    new: &NewTransfer,
    debit: &Account,
    credit: &Account,
) -> Result<(), ResultCode> {
    if debit.ledger != credit.ledger {
        return Err(ResultCode::AccountsMustHaveTheSameLedger);
    }
    if new.ledger != debit.ledger {
        return Err(ResultCode::TransferMustHaveTheSameLedgerAsAccounts);
    }
    if is_closed(debit) || is_closed(credit) {
        return Err(ResultCode::AccountClosed);
    }
    Ok(())
}

/// The amount to move: the requested amount, clamped by the balancing flags.
fn balanced_amount(
    new: &NewTransfer,
    debit: &Account,
    credit: &Account,
) -> Result<u64, ResultCode> {
    let mut amount = new.amount;
    if new.flags.contains(TransferFlags::BALANCING_DEBIT) {
        let available =
            debit.credits_posted.saturating_sub(debit.debits_posted + debit.debits_pending);
        amount = amount.min(available);
        if amount == 0 {
            return Err(ResultCode::ExceedsCredits);
        }
    }
    if new.flags.contains(TransferFlags::BALANCING_CREDIT) {
        let available =
            credit.debits_posted.saturating_sub(credit.credits_posted + credit.credits_pending);
        amount = amount.min(available);
        if amount == 0 {
            return Err(ResultCode::ExceedsDebits);
        }
    }
    Ok(amount)
}

fn exceeds_max(balance: u64, amount: u64) -> bool {
    balance.checked_add(amount).is_none_or(|sum| sum > AMOUNT_MAX)
}

fn check_overflows(
    debit: &Account,
    credit: &Account,
    amount: u64,
    pending: bool,
) -> Result<(), ResultCode> {
    let checks = if pending {
        [
            (exceeds_max(debit.debits_pending, amount), ResultCode::OverflowsDebitsPending),
            (exceeds_max(credit.credits_pending, amount), ResultCode::OverflowsCreditsPending),
        ]
    } else {
        [
            (exceeds_max(debit.debits_posted, amount), ResultCode::OverflowsDebitsPosted),
            (exceeds_max(credit.credits_posted, amount), ResultCode::OverflowsCreditsPosted),
        ]
    };
    let totals = [
        (
            exceeds_max(debit.debits_pending + debit.debits_posted, amount),
            ResultCode::OverflowsDebits,
        ),
        (
            exceeds_max(credit.credits_pending + credit.credits_posted, amount),
            ResultCode::OverflowsCredits,
        ),
    ];
    match checks.iter().chain(totals.iter()).find(|(failed, _)| *failed) {
        Some((_, code)) => Err(*code),
        None => Ok(()),
    }
}

fn check_limits(debit: &Account, credit: &Account, amount: u64) -> Result<(), ResultCode> {
    let debit_limited = debit.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    if debit_limited && debit.debits_pending + debit.debits_posted + amount > debit.credits_posted {
        return Err(ResultCode::ExceedsCredits);
    }
    let credit_limited = credit.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    if credit_limited
        && credit.credits_pending + credit.credits_posted + amount > credit.debits_posted
    {
        return Err(ResultCode::ExceedsDebits);
    }
    Ok(())
}

fn check_pending_matches(new: &NewTransfer, pending: &Transfer) -> Result<(), ResultCode> {
    if !pending.flags.contains(TransferFlags::PENDING) {
        return Err(ResultCode::PendingTransferNotPending);
    }
    let checks = [
        (
            same_or_zero(new.debit_account_id, pending.debit_account_id),
            ResultCode::PendingTransferHasDifferentDebitAccountId,
        ),
        (
            same_or_zero(new.credit_account_id, pending.credit_account_id),
            ResultCode::PendingTransferHasDifferentCreditAccountId,
        ),
        (same_or_zero(new.ledger, pending.ledger), ResultCode::PendingTransferHasDifferentLedger),
        (same_or_zero(new.code, pending.code), ResultCode::PendingTransferHasDifferentCode),
    ];
    match checks.iter().find(|(matches, _)| !*matches) {
        Some((_, code)) => Err(*code),
        None => Ok(()),
    }
}

/// What a post captures (zero asks for the full amount) or a void releases.
fn resolved_amount(
    new: &NewTransfer,
    pending: &Transfer,
    posting: bool,
) -> Result<u64, ResultCode> {
    if !posting {
        return match new.amount {
            0 => Ok(pending.amount),
            amount if amount == pending.amount => Ok(amount),
            _ => Err(ResultCode::PendingTransferHasDifferentAmount),
        };
    }
    match new.amount {
        0 => Ok(pending.amount),
        amount if amount > pending.amount => Err(ResultCode::ExceedsPendingTransferAmount),
        amount => Ok(amount),
    }
}

/// Debits minus credits (pending and posted) of one account.
fn net_debits(account: &Account) -> i128 {
    let debits = i128::from(account.debits_pending) + i128::from(account.debits_posted);
    debits - i128::from(account.credits_pending) - i128::from(account.credits_posted)
}

fn assert_account_within_limits(account: &Account) {
    let debits = account.debits_pending + account.debits_posted;
    let credits = account.credits_pending + account.credits_posted;
    assert!(debits <= AMOUNT_MAX && credits <= AMOUNT_MAX, "balances stay within AMOUNT_MAX");
    if account.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
        assert!(debits <= account.credits_posted, "debits_must_not_exceed_credits holds");
    }
    if account.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
        assert!(credits <= account.debits_posted, "credits_must_not_exceed_debits holds");
    }
}
