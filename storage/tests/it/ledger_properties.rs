//! Property tests of the ledger state machine (proptest), over random histories: a batch
//! opening accounts for two tenants, then up to eight random batches of account,
//! transfer (single-phase, pending, post, void, balancing, linked, sometimes malformed)
//! and `ExpirePending` events, drawn from small id spaces so that ids collide and retries
//! happen, with amounts up to and past `AMOUNT_MAX` and a clock that advances past
//! pending timeouts and sometimes goes backwards.
//!
//! After every batch: money is conserved per tenant and ledger; no limit flag is crossed;
//! linked chains apply all or nothing; replaying this batch, or any earlier one a client
//! could retry, changes nothing; balances recomputed from the stored transfers match;
//! `Changes` lists exactly what changed; prefetched keys are all a batch reads; and a
//! reference model, which recomputes balances from the events the ledger accepted, agrees
//! with the ledger on every result.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use proptest::prelude::*;
use storage::ledger::{
    AMOUNT_MAX, Account, AccountFlags, Changes, Event, Key, NewAccount, NewTransfer, Outcome,
    PendingStatus, Record, ResultCode, State, TenantId, Transfer, TransferFlags, apply, prefetch,
};

use crate::ledger_support::{OTHER_TENANT, SECOND, TENANT, balances};

const ACCOUNT_ID_MAX: u128 = 6;
const TRANSFER_ID_MAX: u128 = 24;
const START: u64 = 1_700_000_000 * SECOND;

// ---------------------------------------------------------------------------------------
// Histories: what the generators produce, turned into events against the current state.

#[derive(Clone, Debug)]
struct History {
    /// Ledger and flags of tenant 1's accounts 1..=6 and tenant 2's accounts 1..=3.
    accounts: Vec<(u32, AccountFlags)>,
    batches: Vec<BatchOps>,
}

#[derive(Clone, Debug)]
struct BatchOps {
    /// How far the clock moves before this batch (negative: backwards).
    advance_ns: i64,
    ops: Vec<Op>,
}

#[derive(Clone, Debug)]
enum Op {
    Account(TenantId, NewAccount),
    /// A single-phase or pending transfer. With `ledger_of_debit`, its ledger is its debit
    /// account's (when there is one).
    Move {
        tenant: TenantId,
        new: NewTransfer,
        credit: Counterparty,
        ledger_of_debit: bool,
    },
    /// A post or void of `pending`.
    Resolve {
        tenant: TenantId,
        new: NewTransfer,
        pending: PendingRef,
    },
    /// A transfer event sent before, again, perhaps changed: the one `back` events ago
    /// among those applied (with `applied`) or among all.
    Retry {
        back: usize,
        applied: bool,
        change: RetryChange,
    },
    Expire(TenantId, PendingRef),
    /// `ExpirePending` for every pending transfer due now, as a store would issue.
    ExpireDue,
}

/// Which account a single-phase or pending transfer credits.
#[derive(Clone, Copy, Debug)]
enum Counterparty {
    /// One of the tenant's other accounts on the debit account's ledger, counted modulo
    /// their number (any id when there is none).
    SameLedger(usize),
    /// The debit account itself.
    Debit,
    /// Any id.
    Id(u128),
}

/// Which pending transfer a post, void or expiry names.
#[derive(Clone, Copy, Debug)]
enum PendingRef {
    /// One of the pending transfers the tenant has (stored or sent earlier in the batch),
    /// counted modulo their number.
    Known(usize),
    /// Any id.
    Id(u128),
}

#[derive(Clone, Copy, Debug)]
enum RetryChange {
    Nothing,
    Amount(u64),
    UserData(u128),
}

fn history() -> impl Strategy<Value = History> {
    let accounts = prop::collection::vec((ledger(), account_flags()), 9);
    let batches = prop::collection::vec(batch_ops(), 1..=8);
    (accounts, batches).prop_map(|(accounts, batches)| History { accounts, batches })
}

fn batch_ops() -> impl Strategy<Value = BatchOps> {
    let advance = prop_oneof![
        2 => Just(0i64),
        2 => 1..1_000i64,
        2 => Just(SECOND as i64),
        1 => Just(2 * SECOND as i64 + 1),
        1 => Just(-(SECOND as i64)),
    ];
    (advance, prop::collection::vec(op(), 1..=8))
        .prop_map(|(advance_ns, ops)| BatchOps { advance_ns, ops })
}

fn op() -> impl Strategy<Value = Op> {
    let retry = (0..8usize, prop::bool::weighted(0.75), retry_change())
        .prop_map(|(back, applied, change)| Op::Retry { back, applied, change });
    prop_oneof![
        1 => account_op(),
        8 => moving_op(),
        5 => resolving_op(),
        2 => retry,
        1 => (tenant(), pending_ref()).prop_map(|(t, pending)| Op::Expire(t, pending)),
        1 => Just(Op::ExpireDue),
    ]
}

fn tenant() -> impl Strategy<Value = TenantId> {
    prop_oneof![9 => Just(TENANT), 1 => Just(OTHER_TENANT)]
}

fn ledger() -> impl Strategy<Value = u32> {
    prop_oneof![5 => Just(1u32), 1 => Just(2u32)]
}

fn account_flags() -> impl Strategy<Value = AccountFlags> {
    prop_oneof![
        10 => Just(AccountFlags::empty()),
        3 => Just(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        3 => Just(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        1 => Just(AccountFlags::CLOSED),
    ]
}

fn account_id() -> impl Strategy<Value = u128> {
    prop_oneof![30 => 1..=ACCOUNT_ID_MAX, 1 => Just(0u128), 1 => Just(ACCOUNT_ID_MAX + 1)]
}

fn counterparty() -> impl Strategy<Value = Counterparty> {
    prop_oneof![
        40 => any::<usize>().prop_map(Counterparty::SameLedger),
        1 => Just(Counterparty::Debit),
        3 => account_id().prop_map(Counterparty::Id),
    ]
}

fn transfer_id() -> impl Strategy<Value = u128> {
    prop_oneof![40 => 1..=TRANSFER_ID_MAX, 1 => Just(0u128)]
}

fn pending_ref() -> impl Strategy<Value = PendingRef> {
    prop_oneof![
        8 => any::<usize>().prop_map(PendingRef::Known),
        1 => (0..=TRANSFER_ID_MAX).prop_map(PendingRef::Id),
    ]
}

fn retry_change() -> impl Strategy<Value = RetryChange> {
    prop_oneof![
        8 => Just(RetryChange::Nothing),
        2 => Just(RetryChange::Amount(0)),
        2 => (1..=100u64).prop_map(RetryChange::Amount),
        1 => (0..=2u128).prop_map(RetryChange::UserData),
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 1..=100u64,
        1 => Just(0u64),
        3 => (AMOUNT_MAX - 100)..=AMOUNT_MAX,
        1 => (AMOUNT_MAX / 2 - 50)..=(AMOUNT_MAX / 2 + 50),
        1 => Just(AMOUNT_MAX + 1),
    ]
}

fn user_data() -> impl Strategy<Value = u128> {
    prop_oneof![8 => Just(0u128), 1 => 1..=2u128]
}

fn linked() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

/// Usually nothing; sometimes one flag that may clash with the rest.
fn noise() -> impl Strategy<Value = TransferFlags> {
    let one =
        prop::sample::select(TransferFlags::NAMED.iter().map(|(_, f)| *f).collect::<Vec<_>>());
    prop_oneof![40 => Just(TransferFlags::empty()), 1 => one]
}

fn balancing() -> impl Strategy<Value = TransferFlags> {
    let both = TransferFlags::BALANCING_DEBIT.union(TransferFlags::BALANCING_CREDIT);
    prop_oneof![
        10 => Just(TransferFlags::empty()),
        2 => Just(TransferFlags::BALANCING_DEBIT),
        2 => Just(TransferFlags::BALANCING_CREDIT),
        1 => Just(both),
    ]
}

fn with_linked(flags: TransferFlags, linked: bool) -> TransferFlags {
    if linked { flags.union(TransferFlags::LINKED) } else { flags }
}

fn account_op() -> impl Strategy<Value = Op> {
    let code = prop_oneof![9 => Just(1u16), 1 => Just(0u16)];
    (tenant(), account_id(), ledger(), account_flags(), code, user_data(), linked()).prop_map(
        |(tenant, id, ledger, flags, code, user_data, linked)| {
            let flags = if linked { flags.union(AccountFlags::LINKED) } else { flags };
            let new = NewAccount { id, ledger, code, flags, user_data, subject_id: 0 };
            Op::Account(tenant, new)
        },
    )
}

/// A single-phase or pending transfer.
fn moving_op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        3 => Just(None),
        2 => Just(Some(0u32)),
        2 => (1..=2u32).prop_map(Some),
    ];
    let pending_id = prop_oneof![30 => Just(0u128), 1 => 1..=TRANSFER_ID_MAX];
    let ledger = prop_oneof![30 => Just(None), 1 => (0..=2u32).prop_map(Some)];
    let parts = (tenant(), transfer_id(), account_id(), counterparty(), amount(), user_data());
    let flags = (kind, balancing(), noise(), linked(), pending_id, ledger);
    (parts, flags).prop_map(
        |(
            (tenant, id, debit, credit, amount, user_data),
            (kind, balancing, noise, linked, pending_id, ledger),
        )| {
            let pending = kind.map_or(TransferFlags::empty(), |_| TransferFlags::PENDING);
            let new = NewTransfer {
                id,
                debit_account_id: debit,
                credit_account_id: 0,
                amount,
                pending_id,
                user_data,
                ledger: ledger.unwrap_or(0),
                code: 1,
                flags: with_linked(pending.union(balancing).union(noise), linked),
                timeout_seconds: kind.unwrap_or(0),
            };
            Op::Move { tenant, new, credit, ledger_of_debit: ledger.is_none() }
        },
    )
}

/// A post or void, usually naming only the pending transfer.
fn resolving_op() -> impl Strategy<Value = Op> {
    let post_amount = prop_oneof![3 => Just(0u64), 3 => 1..=100u64, 1 => amount()];
    let void_amount = prop_oneof![6 => Just(0u64), 1 => 1..=100u64];
    let accounts = prop_oneof![10 => Just((0u128, 0u128)), 1 => (account_id(), account_id())];
    let ledger = prop_oneof![12 => Just(0u32), 1 => Just(1u32), 1 => Just(2u32)];
    let code = prop_oneof![12 => Just(0u16), 1 => Just(1u16), 1 => Just(2u16)];
    let parts = (tenant(), transfer_id(), pending_ref(), any::<bool>(), post_amount, void_amount);
    let fields = (accounts, ledger, code, noise(), linked(), user_data());
    (parts, fields).prop_map(|((tenant, id, pending, post, post_amount, void_amount), fields)| {
        let ((debit, credit), ledger, code, noise, linked, user_data) = fields;
        let kind = if post { TransferFlags::POST_PENDING } else { TransferFlags::VOID_PENDING };
        let new = NewTransfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: if post { post_amount } else { void_amount },
            pending_id: 0,
            user_data,
            ledger,
            code,
            flags: with_linked(kind.union(noise), linked),
            timeout_seconds: 0,
        };
        Op::Resolve { tenant, new, pending }
    })
}

fn opening_events(history: &History) -> Vec<Event> {
    let ids =
        (1..=ACCOUNT_ID_MAX).map(|id| (TENANT, id)).chain((1..=3).map(|id| (OTHER_TENANT, id)));
    ids.zip(&history.accounts)
        .map(|((tenant, id), &(ledger, flags))| {
            let new = NewAccount { id, ledger, code: 1, flags, user_data: 0, subject_id: 0 };
            Event::CreateAccount(tenant, new)
        })
        .collect()
}

/// A transfer event of an earlier batch, for retries.
#[derive(Clone, Copy)]
struct Sent {
    tenant: TenantId,
    new: NewTransfer,
    applied: bool,
}

/// Turns ops into events against `state` at `now`.
fn events(ops: &[Op], state: &State, now: u64, sent: &[Sent]) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::with_capacity(ops.len());
    for op in ops {
        match *op {
            Op::Account(tenant, new) => events.push(Event::CreateAccount(tenant, new)),
            Op::Move { tenant, mut new, credit, ledger_of_debit } => {
                let debit = state.accounts.get(&Key::new(tenant, new.debit_account_id));
                if ledger_of_debit {
                    new.ledger = debit.map_or(1, |a| a.ledger);
                }
                new.credit_account_id = credit_id(credit, tenant, debit, state);
                events.push(Event::CreateTransfer(tenant, new));
            }
            Op::Resolve { tenant, mut new, pending } => {
                new.pending_id = pending_id(pending, tenant, state, &events);
                events.push(Event::CreateTransfer(tenant, new));
            }
            Op::Retry { back, applied, change } => {
                events.extend(retry(back, applied, change, sent, &events));
            }
            Op::Expire(tenant, pending) => {
                let id = pending_id(pending, tenant, state, &events);
                events.push(Event::ExpirePending(Key::new(tenant, id)));
            }
            Op::ExpireDue => events.extend(due(state, now).into_iter().map(Event::ExpirePending)),
        }
    }
    events
}

fn credit_id(
    credit: Counterparty,
    tenant: TenantId,
    debit: Option<&Account>,
    state: &State,
) -> u128 {
    let (debit, index) = match (credit, debit) {
        (Counterparty::Id(id), _) => return id,
        (Counterparty::Debit, debit) => return debit.map_or(1, |d| d.id),
        (Counterparty::SameLedger(index), Some(debit)) => (debit, index),
        (Counterparty::SameLedger(index), None) => return (index as u128) % ACCOUNT_ID_MAX + 1,
    };
    let mut peers: Vec<u128> = state
        .accounts
        .iter()
        .filter(|(key, a)| key.tenant == tenant && a.ledger == debit.ledger && a.id != debit.id)
        .map(|(key, _)| key.id)
        .collect();
    peers.sort_unstable();
    if peers.is_empty() { ACCOUNT_ID_MAX + 1 } else { peers[index % peers.len()] }
}

fn pending_id(pending: PendingRef, tenant: TenantId, state: &State, batch: &[Event]) -> u128 {
    let PendingRef::Known(index) = pending else {
        let PendingRef::Id(id) = pending else { unreachable!() };
        return id;
    };
    let mut known: Vec<u128> = state
        .transfers
        .iter()
        .filter(|(key, t)| key.tenant == tenant && t.flags.contains(TransferFlags::PENDING))
        .map(|(key, _)| key.id)
        .collect();
    known.sort_unstable();
    known.extend(batch.iter().filter_map(|event| match *event {
        Event::CreateTransfer(t, new)
            if t == tenant && new.flags.contains(TransferFlags::PENDING) =>
        {
            Some(new.id)
        }
        _ => None,
    }));
    if known.is_empty() { 1 } else { known[index % known.len()] }
}

fn retry(
    back: usize,
    applied: bool,
    change: RetryChange,
    sent: &[Sent],
    batch: &[Event],
) -> Option<Event> {
    let in_batch = batch.iter().filter_map(|event| match *event {
        Event::CreateTransfer(tenant, new) => Some(Sent { tenant, new, applied: false }),
        _ => None,
    });
    let candidates: Vec<Sent> =
        sent.iter().copied().chain(in_batch).filter(|s| s.applied || !applied).collect();
    let Sent { tenant, mut new, .. } =
        *candidates.iter().rev().nth(back % candidates.len().max(1))?;
    match change {
        RetryChange::Nothing => {}
        RetryChange::Amount(amount) => new.amount = amount,
        RetryChange::UserData(user_data) => new.user_data = user_data,
    }
    Some(Event::CreateTransfer(tenant, new))
}

/// Pending transfers whose timeout has passed and that are still pending, sorted.
fn due(state: &State, now: u64) -> Vec<Key> {
    let mut keys: Vec<Key> = state
        .transfers
        .iter()
        .filter(|(key, t)| !state.pending_statuses.contains_key(key) && expired(t, now))
        .map(|(key, _)| *key)
        .collect();
    keys.sort_unstable();
    keys
}

/// Whether pending transfer `t` has timed out at `now`, computed without the ledger.
fn expired(t: &Transfer, now: u64) -> bool {
    let timeout_ns = u128::from(t.timeout_seconds) * u128::from(SECOND);
    t.flags.contains(TransferFlags::PENDING)
        && t.timeout_seconds > 0
        && u128::from(t.timestamp) + timeout_ns <= u128::from(now)
}

// ---------------------------------------------------------------------------------------
// Running histories.

/// One applied batch, as the properties see it.
struct Applied<'a> {
    before: &'a State,
    events: &'a [Event],
    now: u64,
    outcomes: &'a [Outcome],
    changes: &'a Changes,
    after: &'a State,
}

type Checked = Result<(), TestCaseError>;

/// Applies `history` batch by batch, calling `check` after each.
fn run(history: &History, mut check: impl FnMut(&Applied<'_>) -> Checked) -> Checked {
    let mut state = State::default();
    let mut now = START;
    let mut sent = Vec::new();
    run_batch(&mut state, &opening_events(history), now, &mut check)?;
    for batch in &history.batches {
        now = now.saturating_add_signed(batch.advance_ns);
        let events = events(&batch.ops, &state, now, &sent);
        let outcomes = run_batch(&mut state, &events, now, &mut check)?;
        sent.extend(events.iter().zip(&outcomes).filter_map(|(event, outcome)| match *event {
            Event::CreateTransfer(tenant, new) => {
                Some(Sent { tenant, new, applied: outcome.code == ResultCode::Ok })
            }
            _ => None,
        }));
    }
    Ok(())
}

fn run_batch(
    state: &mut State,
    events: &[Event],
    now: u64,
    check: &mut impl FnMut(&Applied<'_>) -> Checked,
) -> Result<Vec<Outcome>, TestCaseError> {
    let before = state.clone();
    let (outcomes, changes) = apply(state, events, now);
    prop_assert_eq!(outcomes.len(), events.len());
    let after = &*state;
    check(&Applied {
        before: &before,
        events,
        now,
        outcomes: &outcomes,
        changes: &changes,
        after,
    })?;
    Ok(outcomes)
}

/// The linked chains of `events`, as `apply` cuts them (the last one may be open).
fn chains(events: &[Event]) -> Vec<Range<usize>> {
    let mut chains = Vec::new();
    let mut start = 0;
    for (index, event) in events.iter().enumerate() {
        if !event.is_linked() {
            chains.push(start..index + 1);
            start = index + 1;
        }
    }
    if start < events.len() {
        chains.push(start..events.len());
    }
    chains
}

fn succeeded(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.code.is_success())
}

/// The event that failed its chain: the first failure other than `linked_event_failed`.
fn culprit(outcomes: &[Outcome]) -> Option<usize> {
    outcomes.iter().position(|o| !o.code.is_success() && o.code != ResultCode::LinkedEventFailed)
}

fn is_post(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::POST_PENDING)
}

fn resolves(flags: TransferFlags) -> bool {
    is_post(flags) || flags.contains(TransferFlags::VOID_PENDING)
}

fn same_maps(actual: &State, expected: &State) -> Checked {
    prop_assert_eq!(&actual.accounts, &expected.accounts);
    prop_assert_eq!(&actual.transfers, &expected.transfers);
    prop_assert_eq!(&actual.pending_statuses, &expected.pending_statuses);
    prop_assert_eq!(&actual.failures, &expected.failures);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (a) Money is conserved, (b) limits hold.

fn check_conservation(state: &State) -> Checked {
    let mut sums: HashMap<(TenantId, u32), [u128; 4]> = HashMap::new();
    for (key, account) in &state.accounts {
        let sum = sums.entry((key.tenant, account.ledger)).or_default();
        for (total, value) in sum.iter_mut().zip(balances(account)) {
            *total += u128::from(value);
        }
    }
    for ((tenant, ledger), [debits_pending, debits_posted, credits_pending, credits_posted]) in sums
    {
        prop_assert_eq!(
            debits_pending,
            credits_pending,
            "pending, tenant {} ledger {}",
            tenant,
            ledger
        );
        prop_assert_eq!(
            debits_posted,
            credits_posted,
            "posted, tenant {} ledger {}",
            tenant,
            ledger
        );
    }
    Ok(())
}

fn check_limits(state: &State) -> Checked {
    for account in state.accounts.values() {
        let [debits_pending, debits_posted, credits_pending, credits_posted] =
            balances(account).map(u128::from);
        let debits = debits_pending + debits_posted;
        let credits = credits_pending + credits_posted;
        let max = u128::from(AMOUNT_MAX);
        prop_assert!(debits <= max && credits <= max, "over AMOUNT_MAX: {:?}", account);
        if account.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            prop_assert!(debits <= credits_posted, "debits exceed credits: {:?}", account);
        }
        if account.flags.contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            prop_assert!(credits <= debits_posted, "credits exceed debits: {:?}", account);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (c) Linked chains: all or nothing.

/// Applying the batch chain by chain gives the same outcomes and state as applying it
/// whole; a chain that fails leaves accounts, transfers and pending statuses as they were,
/// and stores at most the one rejection that failed it.
fn check_chains(step: &Applied<'_>) -> Checked {
    let mut state = step.before.clone();
    let mut outcomes = Vec::with_capacity(step.events.len());
    for chain in chains(step.events) {
        let events = &step.events[chain];
        let before = state.clone();
        let (chain_outcomes, _) = apply(&mut state, events, step.now);
        check_chain_shape(events, &chain_outcomes)?;
        if !succeeded(&chain_outcomes) {
            check_untouched(&before, &state)?;
        }
        outcomes.extend(chain_outcomes);
    }
    prop_assert_eq!(outcomes.as_slice(), step.outcomes);
    same_maps(&state, step.after)?;
    prop_assert_eq!(state.timestamp_last, step.after.timestamp_last);
    Ok(())
}

/// All succeed, or exactly one event says why and the others answer
/// `linked_event_failed`; an open chain blames its last event.
fn check_chain_shape(events: &[Event], outcomes: &[Outcome]) -> Checked {
    let open = events.last().is_some_and(Event::is_linked);
    let blamed: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].code != ResultCode::LinkedEventFailed)
        .collect();
    if open {
        prop_assert_eq!(blamed, vec![outcomes.len() - 1]);
        prop_assert_eq!(outcomes[outcomes.len() - 1].code, ResultCode::LinkedEventChainOpen);
    } else if !succeeded(outcomes) {
        prop_assert_eq!(blamed.len(), 1, "{:?}", outcomes);
        prop_assert_ne!(outcomes[blamed[0]].code, ResultCode::LinkedEventChainOpen);
    }
    let lost = outcomes.iter().filter(|o| o.code == ResultCode::LinkedEventFailed);
    for outcome in lost {
        prop_assert_eq!(outcome.record, None);
    }
    Ok(())
}

fn check_untouched(before: &State, after: &State) -> Checked {
    prop_assert_eq!(&after.accounts, &before.accounts);
    prop_assert_eq!(&after.transfers, &before.transfers);
    prop_assert_eq!(&after.pending_statuses, &before.pending_statuses);
    for (key, code) in &before.failures {
        prop_assert_eq!(after.failures.get(key), Some(code));
    }
    prop_assert!(after.failures.len() <= before.failures.len() + 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (d) Replaying a batch changes nothing, right away or later.

/// Replays, after each batch, that batch and every earlier one a client could retry (one
/// without `ExpirePending`, which only the store issues and which may succeed later).
fn check_replays(step: &Applied<'_>, earlier: &mut Vec<(Vec<Event>, Vec<Outcome>)>) -> Checked {
    check_replay(step.after, step.events, step.outcomes, step.now)?;
    let retried_by_clients = !step.events.iter().any(|e| matches!(e, Event::ExpirePending(_)));
    if retried_by_clients {
        earlier.push((step.events.to_vec(), step.outcomes.to_vec()));
    }
    for (events, outcomes) in earlier.iter() {
        check_replay(step.after, events, outcomes, step.now)?;
    }
    Ok(())
}

/// Applies `events`, which answered `first`, again to `state` at `now`.
fn check_replay(state: &State, events: &[Event], first: &[Outcome], now: u64) -> Checked {
    let mut replayed = state.clone();
    let (again, changes) = apply(&mut replayed, events, now);
    prop_assert_eq!(&replayed.accounts, &state.accounts);
    prop_assert_eq!(&replayed.transfers, &state.transfers);
    prop_assert_eq!(&replayed.pending_statuses, &state.pending_statuses);
    for (key, code) in &state.failures {
        prop_assert_eq!(replayed.failures.get(key), Some(code));
    }
    prop_assert!(changes.accounts.is_empty(), "{:?}", changes);
    prop_assert!(changes.transfers.is_empty(), "{:?}", changes);
    prop_assert!(changes.pending_statuses.is_empty(), "{:?}", changes);
    for chain in chains(events) {
        let (events, first, again) = (&events[chain.clone()], &first[chain.clone()], &again[chain]);
        if succeeded(first) {
            check_replayed_success(events, again)?;
        } else {
            check_replayed_failure(events, first, again)?;
        }
    }
    Ok(())
}

/// Every event of a chain that succeeded now `exists`; a chain that ended with an
/// `ExpirePending` fails instead, since the transfer it expired is no longer pending.
fn check_replayed_success(events: &[Event], again: &[Outcome]) -> Checked {
    let expired = matches!(events.last(), Some(Event::ExpirePending(_)));
    let last = again.len() - 1;
    for (index, outcome) in again.iter().enumerate() {
        let expected = match (expired, index == last) {
            (false, _) => ResultCode::Exists,
            (true, true) => ResultCode::PendingTransferExpired,
            (true, false) => ResultCode::LinkedEventFailed,
        };
        prop_assert_eq!(outcome.code, expected, "replay of {:?}", events[index]);
    }
    Ok(())
}

/// Every stored rejection answers `id_already_failed` with the first code, unless another
/// event of its chain now fails first.
fn check_replayed_failure(events: &[Event], first: &[Outcome], again: &[Outcome]) -> Checked {
    let failing_now = culprit(again);
    for (index, event) in events.iter().enumerate() {
        let was = first[index];
        let stored = was.code.is_stored_failure() || was.code == ResultCode::IdAlreadyFailed;
        if !matches!(event, Event::CreateTransfer(..)) || !stored {
            continue;
        }
        let now = again[index];
        if now.code == ResultCode::IdAlreadyFailed {
            prop_assert_eq!(now.failed_with, Some(was.failed_with.unwrap_or(was.code)));
        } else {
            prop_assert_eq!(now.code, ResultCode::LinkedEventFailed, "replay of {:?}", event);
            prop_assert!(failing_now.is_some_and(|i| i < index));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (e) Balances match the stored transfers.

/// Balances from scratch: single-phase transfers and posts move posted amounts; a pending
/// transfer holds its amount pending until posted, voided or expired; voids move nothing.
fn check_recomputed(state: &State) -> Checked {
    let mut sums: HashMap<Key, [u128; 4]> = state.accounts.keys().map(|k| (*k, [0; 4])).collect();
    for (key, transfer) in &state.transfers {
        let pending = transfer.flags.contains(TransferFlags::PENDING);
        let slots = match (pending, state.pending_statuses.get(key)) {
            (true, None) => Some((0, 2)),
            (true, Some(_)) => None,
            (false, _) if transfer.flags.contains(TransferFlags::VOID_PENDING) => None,
            (false, _) => Some((1, 3)),
        };
        let Some((debit_slot, credit_slot)) = slots else { continue };
        let amount = u128::from(transfer.amount);
        add(&mut sums, Key::new(key.tenant, transfer.debit_account_id), debit_slot, amount)?;
        add(&mut sums, Key::new(key.tenant, transfer.credit_account_id), credit_slot, amount)?;
    }
    for (key, account) in &state.accounts {
        prop_assert_eq!(balances(account).map(u128::from), sums[key], "account {:?}", key);
    }
    check_statuses(state)
}

fn add(sums: &mut HashMap<Key, [u128; 4]>, key: Key, slot: usize, amount: u128) -> Checked {
    let sum = sums.get_mut(&key);
    prop_assert!(sum.is_some(), "a transfer names missing account {:?}", key);
    sum.into_iter().for_each(|s| s[slot] += amount);
    Ok(())
}

/// Each posted or voided pending transfer has exactly one post or void naming it, an
/// expired one has none, and every status belongs to a pending transfer.
fn check_statuses(state: &State) -> Checked {
    let mut resolved_by: HashMap<Key, Vec<PendingStatus>> = HashMap::new();
    for (key, transfer) in &state.transfers {
        if resolves(transfer.flags) {
            let status =
                if is_post(transfer.flags) { PendingStatus::Posted } else { PendingStatus::Voided };
            resolved_by.entry(Key::new(key.tenant, transfer.pending_id)).or_default().push(status);
        }
    }
    for (key, status) in &state.pending_statuses {
        let pending = state.transfers.get(key);
        prop_assert!(pending.is_some_and(|p| p.flags.contains(TransferFlags::PENDING)));
        let expected = match status {
            PendingStatus::Expired => vec![],
            other => vec![*other],
        };
        prop_assert_eq!(resolved_by.remove(key).unwrap_or_default(), expected, "{:?}", key);
    }
    prop_assert!(resolved_by.is_empty(), "resolutions without a status: {:?}", resolved_by);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (f) Changes match the state.

fn check_changes(step: &Applied<'_>) -> Checked {
    let (before, after, changes) = (step.before, step.after, step.changes);
    prop_assert!(changes.accounts.windows(2).all(|w| w[0] < w[1]), "accounts sorted, unique");
    let listed: BTreeSet<Key> = changes.accounts.iter().copied().collect();
    prop_assert_eq!(&listed, &touched_accounts(step));
    for (key, account) in &after.accounts {
        let changed = before.accounts.get(key) != Some(account);
        prop_assert!(!changed || listed.contains(key), "unlisted change of {:?}", key);
    }
    check_new_keys(&before.transfers, &after.transfers, &changes.transfers)?;
    let timestamps: Vec<u64> =
        changes.transfers.iter().map(|k| after.transfers[k].timestamp).collect();
    prop_assert!(timestamps.windows(2).all(|w| w[0] < w[1]), "transfers in timestamp order");
    let failures: Vec<Key> = changes.failures.iter().map(|(k, _)| *k).collect();
    check_new_keys(&before.failures, &after.failures, &failures)?;
    for (key, code) in &changes.failures {
        prop_assert!(code.is_stored_failure());
        prop_assert_eq!(after.failures.get(key), Some(code));
    }
    let statuses: Vec<Key> = changes.pending_statuses.iter().map(|(k, _)| *k).collect();
    check_new_keys(&before.pending_statuses, &after.pending_statuses, &statuses)?;
    for (key, status) in &changes.pending_statuses {
        prop_assert_eq!(after.pending_statuses.get(key), Some(status));
    }
    same_maps(&persisted(before, after, changes), after)
}

/// The accounts the batch's `ok` events created or moved money on.
fn touched_accounts(step: &Applied<'_>) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    for (event, outcome) in step.events.iter().zip(step.outcomes) {
        if outcome.code != ResultCode::Ok {
            continue;
        }
        let tenant = match *event {
            Event::CreateAccount(tenant, _) | Event::CreateTransfer(tenant, _) => tenant,
            Event::ExpirePending(key) => key.tenant,
        };
        match outcome.record {
            Some(Record::Account(account)) => {
                keys.insert(Key::new(tenant, account.id));
            }
            Some(Record::Transfer(t)) => {
                keys.insert(Key::new(tenant, t.debit_account_id));
                keys.insert(Key::new(tenant, t.credit_account_id));
            }
            None => {}
        }
    }
    keys
}

/// `listed` names, once each, exactly the keys `after` has and `before` had not, and
/// nothing stored before changed.
fn check_new_keys<V: PartialEq + std::fmt::Debug>(
    before: &HashMap<Key, V>,
    after: &HashMap<Key, V>,
    listed: &[Key],
) -> Checked {
    for (key, value) in before {
        prop_assert_eq!(after.get(key), Some(value), "stored {:?} changed", key);
    }
    let new: BTreeSet<Key> = after.keys().filter(|k| !before.contains_key(k)).copied().collect();
    let listed_set: BTreeSet<Key> = listed.iter().copied().collect();
    prop_assert_eq!(listed_set.len(), listed.len(), "listed twice: {:?}", listed);
    prop_assert_eq!(listed_set, new);
    Ok(())
}

/// What a backend holding `before` has after writing what `changes` lists.
fn persisted(before: &State, after: &State, changes: &Changes) -> State {
    let mut state = before.clone();
    for key in &changes.accounts {
        state.accounts.insert(*key, after.accounts[key]);
    }
    for key in &changes.transfers {
        state.transfers.insert(*key, after.transfers[key]);
    }
    state.failures.extend(changes.failures.iter().copied());
    state.pending_statuses.extend(changes.pending_statuses.iter().copied());
    state
}

// ---------------------------------------------------------------------------------------
// (g) Prefetched keys are all a batch reads.

fn check_prefetch(step: &Applied<'_>) -> Checked {
    let transfer_keys = prefetch::transfer_keys(step.events);
    prop_assert!(transfer_keys.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    let before = step.before;
    let mut slice = State { timestamp_last: before.timestamp_last, ..State::default() };
    for key in &transfer_keys {
        copy(&before.transfers, &mut slice.transfers, key);
        copy(&before.failures, &mut slice.failures, key);
        copy(&before.pending_statuses, &mut slice.pending_statuses, key);
    }
    let account_keys = prefetch::account_keys(step.events, &slice.transfers);
    prop_assert!(account_keys.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    for key in &account_keys {
        copy(&before.accounts, &mut slice.accounts, key);
    }
    let (outcomes, changes) = apply(&mut slice, step.events, step.now);
    prop_assert_eq!(outcomes.as_slice(), step.outcomes);
    prop_assert_eq!(&changes, step.changes);
    same_maps(&persisted(before, &slice, &changes), step.after)
}

fn copy<V: Copy>(from: &HashMap<Key, V>, to: &mut HashMap<Key, V>, key: &Key) {
    if let Some(value) = from.get(key) {
        to.insert(*key, *value);
    }
}

// ---------------------------------------------------------------------------------------
// The reference model.

/// A plain re-statement of the ledger's rules: it applies what the ledger accepted,
/// recomputing amounts and balances itself, checks that each accepted event was legal and
/// that each state-dependent rejection's stated reason is true, and must end every batch
/// with the ledger's exact accounts, transfers, statuses and stored rejections.
#[derive(Clone, Debug, Default)]
struct Model {
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
    fn step(&mut self, step: &Applied<'_>) -> Checked {
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

fn closed(account: &Account) -> bool {
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
fn moved(
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

// ---------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn money_is_conserved_per_ledger(history in history()) {
        run(&history, |step| check_conservation(step.after))?;
    }

    #[test]
    fn limit_flags_are_never_crossed(history in history()) {
        run(&history, |step| check_limits(step.after))?;
    }

    #[test]
    fn linked_chains_apply_all_or_nothing(history in history()) {
        run(&history, check_chains)?;
    }

    #[test]
    fn replaying_a_batch_changes_nothing(history in history()) {
        let mut earlier = Vec::new();
        run(&history, |step| check_replays(step, &mut earlier))?;
    }

    #[test]
    fn balances_match_the_stored_transfers(history in history()) {
        run(&history, |step| check_recomputed(step.after))?;
    }

    #[test]
    fn changes_list_exactly_what_changed(history in history()) {
        run(&history, check_changes)?;
    }

    #[test]
    fn prefetched_keys_are_all_a_batch_reads(history in history()) {
        run(&history, check_prefetch)?;
    }

    #[test]
    fn ledger_agrees_with_the_reference_model(history in history()) {
        let mut model = Model::default();
        run(&history, |step| model.step(step))?;
    }
}
