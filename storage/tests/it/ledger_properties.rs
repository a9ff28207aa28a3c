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
//! with the ledger on every result. The histories themselves are generated in
//! `ledger_history.rs`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use proptest::prelude::*;
use storage::ledger::{
    AMOUNT_MAX, AccountFlags, Changes, Event, Key, Outcome, PendingStatus, Record, ResultCode,
    State, TenantId, TransferFlags, apply, prefetch,
};

use crate::ledger_history::{History, START, Sent, events, history, opening_events};
use crate::ledger_model::Model;
use crate::ledger_support::balances;

// ---------------------------------------------------------------------------------------
// Running histories.

/// One applied batch, as the properties see it.
pub(crate) struct Applied<'a> {
    pub(crate) before: &'a State,
    pub(crate) events: &'a [Event],
    pub(crate) now: u64,
    pub(crate) outcomes: &'a [Outcome],
    pub(crate) changes: &'a Changes,
    pub(crate) after: &'a State,
}

pub(crate) type Checked = Result<(), TestCaseError>;

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
pub(crate) fn chains(events: &[Event]) -> Vec<Range<usize>> {
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

pub(crate) fn succeeded(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.code.is_success())
}

/// The event that failed its chain: the first failure other than `linked_event_failed`.
pub(crate) fn culprit(outcomes: &[Outcome]) -> Option<usize> {
    outcomes.iter().position(|o| !o.code.is_success() && o.code != ResultCode::LinkedEventFailed)
}

pub(crate) fn is_post(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::POST_PENDING)
}

pub(crate) fn resolves(flags: TransferFlags) -> bool {
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
