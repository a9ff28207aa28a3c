//! Random ledger histories for the property tests (`ledger_properties.rs`): what the
//! proptest strategies generate (accounts, transfers, pending resolutions, retries,
//! expiries, on small id spaces so that ids collide) and how a generated batch becomes
//! events against the current state. It checks nothing itself.

use proptest::prelude::*;
use storage::ledger::{
    AMOUNT_MAX, Account, AccountFlags, Event, Key, NewAccount, NewTransfer, State, TenantId,
    Transfer, TransferFlags,
};

use crate::ledger_support::{OTHER_TENANT, SECOND, TENANT};

const ACCOUNT_ID_MAX: u128 = 6;
const TRANSFER_ID_MAX: u128 = 24;
pub(crate) const START: u64 = 1_700_000_000 * SECOND;

#[derive(Clone, Debug)]
pub(crate) struct History {
    /// Ledger and flags of tenant 1's accounts 1..=6 and tenant 2's accounts 1..=3.
    pub(crate) accounts: Vec<(u32, AccountFlags)>,
    pub(crate) batches: Vec<BatchOps>,
}

#[derive(Clone, Debug)]
pub(crate) struct BatchOps {
    /// How far the clock moves before this batch (negative: backwards).
    pub(crate) advance_ns: i64,
    pub(crate) ops: Vec<Op>,
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
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
pub(crate) enum Counterparty {
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
pub(crate) enum PendingRef {
    /// One of the pending transfers the tenant has (stored or sent earlier in the batch),
    /// counted modulo their number.
    Known(usize),
    /// Any id.
    Id(u128),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RetryChange {
    Nothing,
    Amount(u64),
    UserData(u128),
}

pub(crate) fn history() -> impl Strategy<Value = History> {
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

pub(crate) fn opening_events(history: &History) -> Vec<Event> {
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
pub(crate) struct Sent {
    pub(crate) tenant: TenantId,
    pub(crate) new: NewTransfer,
    pub(crate) applied: bool,
}

/// Turns ops into events against `state` at `now`.
pub(crate) fn events(ops: &[Op], state: &State, now: u64, sent: &[Sent]) -> Vec<Event> {
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
pub(crate) fn expired(t: &Transfer, now: u64) -> bool {
    let timeout_ns = u128::from(t.timeout_seconds) * u128::from(SECOND);
    t.flags.contains(TransferFlags::PENDING)
        && t.timeout_seconds > 0
        && u128::from(t.timestamp) + timeout_ns <= u128::from(now)
}
