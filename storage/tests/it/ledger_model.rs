//! The reference model of the ledger property tests: an independent, deliberately plain
//! re-implementation that recomputes balances from the events the ledger accepted and
//! checks every stated reason for a rejection. It shares no code with the state machine
//! beyond the ledger's data types.

use std::collections::HashMap;

use proptest::prelude::*;
use storage::ledger::{
    AMOUNT_MAX, Account, AccountFlags, Event, Key, NewAccount, NewTransfer, Outcome, PendingStatus,
    Record, ResultCode, State, TenantId, Transfer, TransferFlags, apply,
};

use crate::ledger_history::expired;
use crate::ledger_properties::{Applied, Checked, chains, culprit, is_post, resolves, succeeded};

/// A plain re-statement of the ledger's rules: it applies what the ledger accepted,
/// recomputing amounts and balances itself, checks that each accepted event was legal and
/// that each state-dependent rejection's stated reason is true, and must end every batch
/// with the ledger's exact accounts, transfers, statuses and stored rejections.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    accounts: HashMap<Key, Account>,
    transfers: HashMap<Key, Transfer>,
    statuses: HashMap<Key, PendingStatus>,
    failures: HashMap<Key, ResultCode>,
    timestamp_last: u64,
}

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

fn ensure(ok: bool, why: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why.to_owned()) }
}

fn zero_or<T: PartialEq + Default>(given: T, stored: T) -> bool {
    given == T::default() || given == stored
}

fn total_debits(a: &Account) -> u128 {
    u128::from(a.debits_pending) + u128::from(a.debits_posted)
}

fn total_credits(a: &Account) -> u128 {
    u128::from(a.credits_pending) + u128::from(a.credits_posted)
}

fn over_max(balance: u64, amount: u64) -> bool {
    u128::from(balance) + u128::from(amount) > u128::from(AMOUNT_MAX)
}

impl Model {
    pub(crate) fn step(&mut self, step: &Applied<'_>) -> Checked {
        for chain in chains(step.events) {
            let (events, outcomes) = (&step.events[chain.clone()], &step.outcomes[chain]);
            if succeeded(outcomes) {
                for (event, outcome) in events.iter().zip(outcomes) {
                    self.accept(event, outcome, step.now)?;
                }
                continue;
            }
            let failed = culprit(outcomes);
            prop_assert!(failed.is_some(), "nothing to blame in {:?}", outcomes);
            let failed = failed.unwrap_or_default();
            self.reject(events, failed, &outcomes[failed], step.now)?;
        }
        prop_assert_eq!(&self.accounts, &step.after.accounts);
        prop_assert_eq!(&self.transfers, &step.after.transfers);
        prop_assert_eq!(&self.statuses, &step.after.pending_statuses);
        prop_assert_eq!(&self.failures, &step.after.failures);
        Ok(())
    }

    /// An event of a chain the ledger applied.
    fn accept(&mut self, event: &Event, outcome: &Outcome, now: u64) -> Checked {
        let record = outcome.record;
        match (*event, outcome.code, record) {
            (Event::CreateAccount(tenant, new), ResultCode::Ok, Some(Record::Account(got))) => {
                let expected = self.open(tenant, &new, got.timestamp)?;
                self.check_timestamp(got.timestamp, now)?;
                prop_assert_eq!(got, expected);
            }
            (Event::CreateTransfer(tenant, new), ResultCode::Ok, Some(Record::Transfer(got))) => {
                let expected = self.transfer(tenant, &new, now, got.timestamp)?;
                self.check_timestamp(got.timestamp, now)?;
                prop_assert_eq!(got, expected);
            }
            (Event::ExpirePending(key), ResultCode::Ok, Some(Record::Transfer(got))) => {
                self.expire(key, now)?;
                prop_assert_eq!(Some(&got), self.transfers.get(&key));
            }
            (event, ResultCode::Exists, _) => self.check_exists(&event, true)?,
            (event, code, record) => {
                prop_assert!(false, "{:?} answered {:?} with {:?}", event, code, record);
            }
        }
        Ok(())
    }

    fn check_timestamp(&mut self, timestamp: u64, now: u64) -> Checked {
        prop_assert!(
            timestamp > self.timestamp_last && timestamp >= now,
            "timestamp {}",
            timestamp
        );
        self.timestamp_last = timestamp;
        Ok(())
    }

    /// Whether `event` (an account or a transfer) matches the stored record of its id.
    fn check_exists(&self, event: &Event, same: bool) -> Checked {
        let matches = match *event {
            Event::CreateAccount(tenant, new) => {
                let existing = self.accounts.get(&Key::new(tenant, new.id));
                prop_assert!(existing.is_some(), "{:?} has no record", event);
                existing.is_some_and(|e| same_account(&new, e))
            }
            Event::CreateTransfer(tenant, new) => {
                let existing = self.transfers.get(&Key::new(tenant, new.id));
                prop_assert!(existing.is_some(), "{:?} has no record", event);
                existing.is_some_and(|e| self.same_transfer(tenant, &new, e))
            }
            Event::ExpirePending(_) => {
                return Err(fail(format!("{event:?} has no record to compare")));
            }
        };
        prop_assert_eq!(matches, same, "{:?}", event);
        Ok(())
    }

    fn same_transfer(&self, tenant: TenantId, new: &NewTransfer, existing: &Transfer) -> bool {
        let same = if resolves(new.flags) {
            self.same_resolution(tenant, new, existing)
        } else {
            same_movement(new, existing)
        };
        // `linked` says how the event was batched, not what it is: retries ignore it.
        let linked = TransferFlags::LINKED.bits();
        let flags_match = new.flags.bits() & !linked == existing.flags.bits() & !linked;
        same && flags_match && new.user_data == existing.user_data
    }

    /// Zero fields of a post or void mean "as the pending transfer", and a zero amount
    /// on a post means all of it.
    fn same_resolution(&self, tenant: TenantId, new: &NewTransfer, existing: &Transfer) -> bool {
        let pending = self.transfers.get(&Key::new(tenant, existing.pending_id));
        let amount = match (is_post(new.flags), new.amount) {
            (true, 0) => pending.is_some_and(|p| p.amount == existing.amount),
            (_, amount) => zero_or(amount, existing.amount),
        };
        amount
            && new.pending_id == existing.pending_id
            && zero_or(new.debit_account_id, existing.debit_account_id)
            && zero_or(new.credit_account_id, existing.credit_account_id)
            && zero_or(new.ledger, existing.ledger)
            && zero_or(new.code, existing.code)
    }

    /// An event the ledger applied in a chain that then failed: it must have been legal.
    fn apply_tentatively(&mut self, event: &Event, now: u64) -> Checked {
        match *event {
            Event::CreateAccount(tenant, new)
                if !self.accounts.contains_key(&Key::new(tenant, new.id)) =>
            {
                self.open(tenant, &new, now).map(drop)
            }
            Event::CreateTransfer(tenant, new)
                if !self.transfers.contains_key(&Key::new(tenant, new.id)) =>
            {
                self.transfer(tenant, &new, now, now).map(drop)
            }
            Event::ExpirePending(_) => Err(fail(format!("{event:?} cannot be linked"))),
            _ => self.check_exists(event, true),
        }
    }

    fn open(
        &mut self,
        tenant: TenantId,
        new: &NewAccount,
        timestamp: u64,
    ) -> Result<Account, TestCaseError> {
        let key = Key::new(tenant, new.id);
        prop_assert!(!self.accounts.contains_key(&key), "{:?} opened twice", key);
        let account = Account::open(new, timestamp);
        self.accounts.insert(key, account);
        Ok(account)
    }

    /// Plans and applies an accepted transfer.
    fn transfer(
        &mut self,
        tenant: TenantId,
        new: &NewTransfer,
        now: u64,
        timestamp: u64,
    ) -> Result<Transfer, TestCaseError> {
        let key = Key::new(tenant, new.id);
        prop_assert!(!self.transfers.contains_key(&key), "id {:?} accepted twice", key);
        prop_assert!(!self.failures.contains_key(&key), "failed id {:?} accepted", key);
        let transfer = self
            .plan(tenant, new, now)
            .map(|t| Transfer { timestamp, ..t })
            .map_err(|why| fail(format!("accepted {new:?}, but {why}")))?;
        self.commit(tenant, &transfer);
        self.transfers.insert(key, transfer);
        Ok(transfer)
    }

    /// The transfer `new` would store (timestamp zero), or why it is not allowed.
    fn plan(&self, tenant: TenantId, new: &NewTransfer, now: u64) -> Result<Transfer, String> {
        if resolves(new.flags) {
            self.plan_resolution(tenant, new, now)
        } else {
            self.plan_movement(tenant, new)
        }
    }

    fn account(&self, tenant: TenantId, id: u128) -> Result<&Account, String> {
        self.accounts.get(&Key::new(tenant, id)).ok_or_else(|| format!("no account {id}"))
    }

    fn plan_movement(&self, tenant: TenantId, new: &NewTransfer) -> Result<Transfer, String> {
        let pending = new.flags.contains(TransferFlags::PENDING);
        ensure(new.pending_id == 0 && (pending || new.timeout_seconds == 0), "malformed")?;
        let debit = self.account(tenant, new.debit_account_id)?;
        let credit = self.account(tenant, new.credit_account_id)?;
        ensure(debit.ledger == new.ledger && credit.ledger == new.ledger, "ledgers differ")?;
        ensure(!closed(debit) && !closed(credit), "an account is closed")?;
        let amount = clamped(new, debit, credit);
        ensure(amount > 0, "nothing to balance")?;
        let (debit, credit) = moved(debit, credit, amount, pending)?;
        ensure(within_limits(&debit) && within_limits(&credit), "a limit would be crossed")?;
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
            timestamp: 0,
        })
    }

    fn plan_resolution(
        &self,
        tenant: TenantId,
        new: &NewTransfer,
        now: u64,
    ) -> Result<Transfer, String> {
        let key = Key::new(tenant, new.pending_id);
        let pending = self.transfers.get(&key).ok_or("no pending transfer")?;
        ensure(pending.flags.contains(TransferFlags::PENDING), "not a pending transfer")?;
        ensure(!self.statuses.contains_key(&key), "already resolved")?;
        ensure(!expired(pending, now), "expired")?;
        ensure(zero_or(new.debit_account_id, pending.debit_account_id), "other debit account")?;
        ensure(zero_or(new.credit_account_id, pending.credit_account_id), "other credit account")?;
        ensure(
            zero_or(new.ledger, pending.ledger) && zero_or(new.code, pending.code),
            "other ledger or code",
        )?;
        let amount = match (is_post(new.flags), new.amount) {
            (true, 0) => pending.amount,
            (true, amount) => amount,
            (false, _) => pending.amount,
        };
        ensure(amount <= pending.amount, "more than reserved")?;
        ensure(zero_or(new.amount, amount), "a void of another amount")?;
        if is_post(new.flags) {
            let debit = self.account(tenant, pending.debit_account_id)?;
            let credit = self.account(tenant, pending.credit_account_id)?;
            ensure(!closed(debit) && !closed(credit), "an account is closed")?;
        }
        Ok(Transfer {
            amount,
            pending_id: pending.id,
            user_data: new.user_data,
            flags: new.flags,
            timeout_seconds: 0,
            id: new.id,
            timestamp: 0,
            ..*pending
        })
    }

    /// Moves the balances of a planned transfer.
    fn commit(&mut self, tenant: TenantId, t: &Transfer) {
        let debit_key = Key::new(tenant, t.debit_account_id);
        let credit_key = Key::new(tenant, t.credit_account_id);
        if resolves(t.flags) {
            let pending_key = Key::new(tenant, t.pending_id);
            let reserved = self.transfers[&pending_key].amount;
            self.release(debit_key, credit_key, reserved);
            let status =
                if is_post(t.flags) { PendingStatus::Posted } else { PendingStatus::Voided };
            self.statuses.insert(pending_key, status);
        }
        if t.flags.contains(TransferFlags::VOID_PENDING) {
            return;
        }
        let pending = t.flags.contains(TransferFlags::PENDING);
        let debit = self.account_mut(debit_key);
        *(if pending { &mut debit.debits_pending } else { &mut debit.debits_posted }) += t.amount;
        let credit = self.account_mut(credit_key);
        *(if pending { &mut credit.credits_pending } else { &mut credit.credits_posted }) +=
            t.amount;
    }

    fn release(&mut self, debit_key: Key, credit_key: Key, amount: u64) {
        self.account_mut(debit_key).debits_pending -= amount;
        self.account_mut(credit_key).credits_pending -= amount;
    }

    fn account_mut(&mut self, key: Key) -> &mut Account {
        self.accounts.get_mut(&key).expect("the model only moves money between its accounts")
    }

    fn expire(&mut self, key: Key, now: u64) -> Checked {
        let Some(pending) = self.transfers.get(&key).copied() else {
            return Err(fail(format!("expired unknown transfer {key:?}")));
        };
        prop_assert!(expired(&pending, now), "expired early: {:?}", pending);
        prop_assert!(!self.statuses.contains_key(&key), "expired a resolved transfer");
        let debit = Key::new(key.tenant, pending.debit_account_id);
        let credit = Key::new(key.tenant, pending.credit_account_id);
        self.release(debit, credit, pending.amount);
        self.statuses.insert(key, PendingStatus::Expired);
        Ok(())
    }

    /// A chain the ledger rejected at `failed`: the events before it were legal, and
    /// the rejection's reason holds in the state they left.
    fn reject(&mut self, events: &[Event], failed: usize, outcome: &Outcome, now: u64) -> Checked {
        if outcome.code == ResultCode::LinkedEventChainOpen {
            prop_assert!(events.last().is_some_and(Event::is_linked));
            return Ok(());
        }
        let mut tentative = self.clone();
        for event in &events[..failed] {
            tentative.apply_tentatively(event, now)?;
        }
        let event = &events[failed];
        tentative.justify(event, outcome, now)?;
        if let Event::CreateTransfer(tenant, new) = *event
            && outcome.code.is_stored_failure()
        {
            self.failures.insert(Key::new(tenant, new.id), outcome.code);
        }
        Ok(())
    }

    fn justify(&self, event: &Event, outcome: &Outcome, now: u64) -> Checked {
        let code = outcome.code;
        match *event {
            _ if code == ResultCode::ExistsWithDifferentFields => self.check_exists(event, false),
            Event::ExpirePending(key) => {
                prop_assert!(
                    self.why_not_expired(key, now) == code,
                    "{:?} answered {:?}",
                    event,
                    code
                );
                Ok(())
            }
            Event::CreateTransfer(tenant, new) if code == ResultCode::IdAlreadyFailed => {
                let key = Key::new(tenant, new.id);
                prop_assert_eq!(outcome.failed_with, self.failures.get(&key).copied());
                Ok(())
            }
            Event::CreateTransfer(tenant, new) if code.is_stored_failure() => {
                let key = Key::new(tenant, new.id);
                prop_assert!(
                    !self.transfers.contains_key(&key) && !self.failures.contains_key(&key)
                );
                prop_assert!(
                    self.plan(tenant, &new, now).is_err(),
                    "{:?} rejected: {:?}",
                    new,
                    code
                );
                prop_assert!(
                    self.reason_holds(tenant, &new, now, code),
                    "{:?} rejected: {:?}",
                    new,
                    code
                );
                Ok(())
            }
            _ => check_event_only(event, code, now),
        }
    }

    fn why_not_expired(&self, key: Key, now: u64) -> ResultCode {
        match (self.transfers.get(&key), self.statuses.get(&key)) {
            (None, _) => ResultCode::PendingTransferNotFound,
            (Some(_), Some(PendingStatus::Posted)) => ResultCode::PendingTransferAlreadyPosted,
            (Some(_), Some(PendingStatus::Voided)) => ResultCode::PendingTransferAlreadyVoided,
            (Some(_), Some(PendingStatus::Expired)) => ResultCode::PendingTransferExpired,
            (Some(p), None) if expired(p, now) => ResultCode::Ok,
            (Some(_), None) => ResultCode::PendingTransferNotPending,
        }
    }

    /// Whether the condition `code` names is true of `new` in this state.
    fn reason_holds(
        &self,
        tenant: TenantId,
        new: &NewTransfer,
        now: u64,
        code: ResultCode,
    ) -> bool {
        let debit = self.accounts.get(&Key::new(tenant, new.debit_account_id));
        let credit = self.accounts.get(&Key::new(tenant, new.credit_account_id));
        let pending_key = Key::new(tenant, new.pending_id);
        let pending = self.transfers.get(&pending_key);
        let status = self.statuses.get(&pending_key);
        use ResultCode as R;
        match code {
            R::DebitAccountNotFound => debit.is_none(),
            R::CreditAccountNotFound => credit.is_none(),
            R::AccountsMustHaveTheSameLedger => {
                debit.zip(credit).is_some_and(|(d, c)| d.ledger != c.ledger)
            }
            R::TransferMustHaveTheSameLedgerAsAccounts => {
                debit.is_some_and(|d| d.ledger != new.ledger)
            }
            R::AccountClosed => self.involves_closed(tenant, new),
            R::PendingTransferNotFound => pending.is_none(),
            R::PendingTransferNotPending => {
                pending.is_some_and(|p| !p.flags.contains(TransferFlags::PENDING))
            }
            R::PendingTransferHasDifferentDebitAccountId => {
                pending.is_some_and(|p| !zero_or(new.debit_account_id, p.debit_account_id))
            }
            R::PendingTransferHasDifferentCreditAccountId => {
                pending.is_some_and(|p| !zero_or(new.credit_account_id, p.credit_account_id))
            }
            R::PendingTransferHasDifferentLedger => {
                pending.is_some_and(|p| !zero_or(new.ledger, p.ledger))
            }
            R::PendingTransferHasDifferentCode => {
                pending.is_some_and(|p| !zero_or(new.code, p.code))
            }
            R::ExceedsPendingTransferAmount => pending.is_some_and(|p| new.amount > p.amount),
            R::PendingTransferHasDifferentAmount => {
                pending.is_some_and(|p| !zero_or(new.amount, p.amount))
            }
            R::PendingTransferAlreadyPosted => status == Some(&PendingStatus::Posted),
            R::PendingTransferAlreadyVoided => status == Some(&PendingStatus::Voided),
            R::PendingTransferExpired => {
                status == Some(&PendingStatus::Expired) || pending.is_some_and(|p| expired(p, now))
            }
            _ => debit.zip(credit).is_some_and(|(d, c)| balance_reason_holds(new, d, c, code)),
        }
    }

    fn involves_closed(&self, tenant: TenantId, new: &NewTransfer) -> bool {
        let named = if resolves(new.flags) {
            let pending = self.transfers.get(&Key::new(tenant, new.pending_id));
            pending.map_or((0, 0), |p| (p.debit_account_id, p.credit_account_id))
        } else {
            (new.debit_account_id, new.credit_account_id)
        };
        [named.0, named.1]
            .iter()
            .any(|id| self.accounts.get(&Key::new(tenant, *id)).is_some_and(closed))
    }
}

fn same_account(new: &NewAccount, existing: &Account) -> bool {
    let linked = AccountFlags::LINKED.bits();
    new.ledger == existing.ledger
        && new.code == existing.code
        && new.flags.bits() & !linked == existing.flags.bits() & !linked
        && new.user_data == existing.user_data
        && new.subject_id == existing.subject_id
}

/// A balancing transfer asked for at least what it moved; any other asked for exactly it.
fn same_movement(new: &NewTransfer, existing: &Transfer) -> bool {
    let balancing = new.flags.contains(TransferFlags::BALANCING_DEBIT)
        || new.flags.contains(TransferFlags::BALANCING_CREDIT);
    let amount =
        if balancing { new.amount >= existing.amount } else { new.amount == existing.amount };
    amount
        && new.debit_account_id == existing.debit_account_id
        && new.credit_account_id == existing.credit_account_id
        && new.ledger == existing.ledger
        && new.code == existing.code
        && new.timeout_seconds == existing.timeout_seconds
        && new.pending_id == existing.pending_id
}

pub(crate) fn closed(account: &Account) -> bool {
    account.flags.contains(AccountFlags::CLOSED)
}

/// Posted credits not yet spent by debits (pending or posted).
fn available_credit(a: &Account) -> u128 {
    u128::from(a.credits_posted).saturating_sub(total_debits(a))
}

/// Posted debits not yet matched by credits (pending or posted).
fn available_debit(a: &Account) -> u128 {
    u128::from(a.debits_posted).saturating_sub(total_credits(a))
}

/// The amount a transfer moves: what it asks, capped by its balancing flags.
fn clamped(new: &NewTransfer, debit: &Account, credit: &Account) -> u64 {
    let mut amount = u128::from(new.amount);
    if new.flags.contains(TransferFlags::BALANCING_DEBIT) {
        amount = amount.min(available_credit(debit));
    }
    if new.flags.contains(TransferFlags::BALANCING_CREDIT) {
        amount = amount.min(available_debit(credit));
    }
    u64::try_from(amount).expect("no more than the u64 amount asked")
}

/// The two accounts after moving `amount`, or why the balances cannot hold it.
pub(crate) fn moved(
    debit: &Account,
    credit: &Account,
    amount: u64,
    pending: bool,
) -> Result<(Account, Account), String> {
    let (mut debit, mut credit) = (*debit, *credit);
    let overflows = over_max(debit.debits_pending + debit.debits_posted, amount)
        || over_max(credit.credits_pending + credit.credits_posted, amount);
    ensure(!overflows, "a balance would overflow")?;
    if pending {
        debit.debits_pending += amount;
        credit.credits_pending += amount;
    } else {
        debit.debits_posted += amount;
        credit.credits_posted += amount;
    }
    Ok((debit, credit))
}

fn within_limits(a: &Account) -> bool {
    let debits_ok = !a.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        || total_debits(a) <= u128::from(a.credits_posted);
    let credits_ok = !a.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        || total_credits(a) <= u128::from(a.debits_posted);
    debits_ok && credits_ok
}

/// Whether the balance condition `code` names holds for `new` between `debit` and `credit`.
fn balance_reason_holds(
    new: &NewTransfer,
    debit: &Account,
    credit: &Account,
    code: ResultCode,
) -> bool {
    let amount = clamped(new, debit, credit);
    let pending = new.flags.contains(TransferFlags::PENDING);
    let balancing_debit = new.flags.contains(TransferFlags::BALANCING_DEBIT);
    let balancing_credit = new.flags.contains(TransferFlags::BALANCING_CREDIT);
    use ResultCode as R;
    match code {
        R::OverflowsDebitsPending => pending && over_max(debit.debits_pending, amount),
        R::OverflowsCreditsPending => pending && over_max(credit.credits_pending, amount),
        R::OverflowsDebitsPosted => !pending && over_max(debit.debits_posted, amount),
        R::OverflowsCreditsPosted => !pending && over_max(credit.credits_posted, amount),
        R::OverflowsDebits => over_max(debit.debits_pending + debit.debits_posted, amount),
        R::OverflowsCredits => over_max(credit.credits_pending + credit.credits_posted, amount),
        R::ExceedsCredits => {
            (balancing_debit && available_credit(debit) == 0)
                || (debit.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                    && total_debits(debit) + u128::from(amount) > u128::from(debit.credits_posted))
        }
        R::ExceedsDebits => {
            (balancing_credit && available_debit(credit) == 0)
                || (credit.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                    && total_credits(credit) + u128::from(amount)
                        > u128::from(credit.debits_posted))
        }
        _ => false,
    }
}

/// A rejection that is not stored must depend on the event alone: the same event, unlinked,
/// gets the same answer from an empty ledger.
fn check_event_only(event: &Event, code: ResultCode, now: u64) -> Checked {
    prop_assert!(!code.is_stored_failure() && !code.is_success(), "{:?}", code);
    let alone = match *event {
        Event::CreateAccount(tenant, mut new) => {
            let bits = new.flags.bits() & !AccountFlags::LINKED.bits();
            new.flags = AccountFlags::from_bits(bits).expect("fewer bits than before");
            Event::CreateAccount(tenant, new)
        }
        Event::CreateTransfer(tenant, mut new) => {
            let bits = new.flags.bits() & !TransferFlags::LINKED.bits();
            new.flags = TransferFlags::from_bits(bits).expect("fewer bits than before");
            Event::CreateTransfer(tenant, new)
        }
        Event::ExpirePending(_) => *event,
    };
    let (outcomes, _) = apply(&mut State::default(), &[alone], now);
    prop_assert_eq!(outcomes[0].code, code, "{:?}", event);
    Ok(())
}
