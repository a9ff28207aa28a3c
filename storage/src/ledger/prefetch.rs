//! What a batch needs loaded before [`super::apply`]: the keys of every account and
//! transfer its events can read.
//!
//! Two steps, because a post or void may omit its accounts: first the transfers (the
//! events' own ids, for idempotency, and the pending transfers they resolve), then the
//! accounts (named by events, or by the pending transfers just loaded). Keys come back
//! sorted and unique, which is also the order in which a backend must lock rows.

use std::collections::HashMap;

use super::types::{Event, Key, Transfer};

/// The transfer keys `events` can read: their own ids and the pending ids they resolve.
/// Stored rejections and pending statuses are looked up under the same keys.
pub fn transfer_keys(events: &[Event]) -> Vec<Key> {
    let mut keys = Vec::with_capacity(events.len() * 2);
    for event in events {
        match *event {
            Event::CreateTransfer(tenant, t) => {
                keys.push(Key::new(tenant, t.id));
                if t.pending_id != 0 {
                    keys.push(Key::new(tenant, t.pending_id));
                }
            }
            Event::ExpirePending(key) => keys.push(key),
            Event::CreateAccount(..) => {}
        }
    }
    sorted_unique(keys)
}

/// The account keys `events` can read, given the transfers loaded for
/// [`transfer_keys`].
pub fn account_keys(events: &[Event], transfers: &HashMap<Key, Transfer>) -> Vec<Key> {
    let mut keys = Vec::with_capacity(events.len() * 2);
    let push_accounts_of = |key: Key, keys: &mut Vec<Key>| {
        if let Some(t) = transfers.get(&key) {
            keys.push(Key::new(key.tenant, t.debit_account_id));
            keys.push(Key::new(key.tenant, t.credit_account_id));
        }
    };
    for event in events {
        match *event {
            Event::CreateAccount(tenant, a) => keys.push(Key::new(tenant, a.id)),
            Event::CreateTransfer(tenant, t) => {
                keys.push(Key::new(tenant, t.debit_account_id));
                keys.push(Key::new(tenant, t.credit_account_id));
                if t.pending_id != 0 {
                    push_accounts_of(Key::new(tenant, t.pending_id), &mut keys);
                }
            }
            Event::ExpirePending(key) => push_accounts_of(key, &mut keys),
        }
    }
    keys.retain(|k| k.id != 0);
    sorted_unique(keys)
}

fn sorted_unique(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort_unstable();
    keys.dedup();
    keys
}
