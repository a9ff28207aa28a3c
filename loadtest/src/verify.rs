//! Verification after the load: resolve unknown outcomes, read back sampled
//! acknowledged transfers, check money is conserved and every account holds exactly
//! the expected balances.
//!
//! It reads through the public API only and must never create anything except the
//! exact re-sends (same id, same fields) that resolve unknown outcomes.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api::{self, Account, Transfer};
use crate::client::{Client, Response, TransportError};
use crate::engine::{Answer, Engine, Shape, encode, interpret, lock};
use crate::model::{Balance, Planned};

/// Attempts at one re-send or read before giving up.
const RESENDS_MAX: usize = 3;
/// Wait between attempts: the gateway's `Retry-After` is always 1 second.
const RESEND_BACKOFF: Duration = Duration::from_secs(1);

/// The verification's verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verification {
    /// No violation.
    pub passed: bool,
    /// Transfers read back, accounts compared and unknown outcomes resolved.
    pub checked: u64,
    /// What is wrong, naming ids.
    pub violations: Vec<String>,
}

/// Verifies the run's ledger against the engine's model.
pub async fn verify(engine: Arc<Engine>, concurrency: usize) -> Verification {
    let mut verification = Verification::default();
    resolve_unknown(&engine, &mut verification).await;
    read_back(&engine, concurrency, &mut verification).await;
    check_accounts(&engine, concurrency, &mut verification).await;
    let model = lock(&engine.model);
    verification.violations.extend(model.violations.iter().cloned());
    if model.violations_overflow > 0 {
        verification
            .violations
            .push(format!("{} more violations not kept", model.violations_overflow));
    }
    verification.passed = verification.violations.is_empty();
    verification
}

async fn resolve_unknown(engine: &Engine, verification: &mut Verification) {
    let (groups, overflow) = {
        let mut model = lock(&engine.model);
        (std::mem::take(&mut model.unknown), model.unknown_overflow)
    };
    if overflow > 0 {
        verification.violations.push(format!(
            "{overflow} transfers of unknown outcome beyond the bound: balances cannot be checked exactly"
        ));
    }
    for group in groups {
        verification.checked += group.len() as u64;
        resolve_group(engine, group, verification).await;
    }
}

async fn resolve_group(engine: &Engine, group: Vec<Planned>, verification: &mut Verification) {
    let shape = if group.len() == 1 { Shape::Single } else { Shape::Array };
    for _ in 0..RESENDS_MAX {
        let response = engine.client.post("/v1/transfers", encode(&group, shape)).await;
        match interpret(&response, shape, group.len()) {
            Answer::Results(results) => return settle_resolved(engine, &group, &results),
            Answer::Refused(_) => return,
            Answer::Unknown => tokio::time::sleep(RESEND_BACKOFF).await,
        }
    }
    let ids: Vec<String> = group.iter().map(|p| p.body.id.to_string()).collect();
    verification
        .violations
        .push(format!("outcome still unknown after re-sends: {}", ids.join(", ")));
}

/// ok/exists: applied once (the first attempt or this one); anything else: not applied.
fn settle_resolved(engine: &Engine, group: &[Planned], results: &[String]) {
    let mut model = lock(&engine.model);
    for (planned, result) in group.iter().zip(results) {
        if api::is_applied(result) {
            model.acknowledge(planned);
        }
    }
}

async fn read_back(engine: &Arc<Engine>, concurrency: usize, verification: &mut Verification) {
    let sample = lock(&engine.model).reservoir.clone();
    verification.checked += sample.len() as u64;
    let chunk = sample.len().div_ceil(concurrency.max(1)).max(1);
    let mut tasks = JoinSet::new();
    for part in sample.chunks(chunk) {
        let (client, part) = (engine.client.clone(), part.to_vec());
        tasks.spawn(async move { read_back_part(&client, &part).await });
    }
    for violations in tasks.join_all().await {
        verification.violations.extend(violations);
    }
}

async fn read_back_part(client: &Client, expected: &[Transfer]) -> Vec<String> {
    let mut violations = Vec::new();
    for transfer in expected {
        if let Err(text) = read_transfer(client, transfer).await {
            violations.push(text);
        }
    }
    violations
}

async fn read_transfer(client: &Client, expected: &Transfer) -> Result<(), String> {
    let id = expected.id;
    let response = read(client, &format!("/v1/transfers/{id}")).await;
    let response = response.map_err(|e| format!("transfer {id}: read back failed: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "transfer {id} was acknowledged but reads back HTTP {}",
            response.status
        ));
    }
    let stored: Transfer = serde_json::from_slice(&response.body)
        .map_err(|e| format!("transfer {id}: unreadable read-back: {e}"))?;
    match same_transfer(expected, &stored) {
        true => Ok(()),
        false => Err(format!("transfer {id} reads back {stored:?}, expected {expected:?}")),
    }
}

fn same_transfer(expected: &Transfer, stored: &Transfer) -> bool {
    let sorted = |flags: &[String]| {
        let mut flags = flags.to_vec();
        flags.sort();
        flags
    };
    let same_flags = sorted(&expected.flags) == sorted(&stored.flags);
    let without_flags = |t: &Transfer| Transfer { flags: Vec::new(), ..t.clone() };
    same_flags && without_flags(expected) == without_flags(stored)
}

async fn check_accounts(engine: &Arc<Engine>, concurrency: usize, verification: &mut Verification) {
    let ids = engine.workload.accounts.clone();
    verification.checked += ids.len() as u64;
    let chunk = ids.len().div_ceil(concurrency.max(1)).max(1);
    let mut tasks = JoinSet::new();
    for (number, part) in ids.chunks(chunk).enumerate() {
        let (client, part) = (engine.client.clone(), part.to_vec());
        tasks.spawn(async move { (number, read_accounts(&client, &part).await) });
    }
    let mut parts = tasks.join_all().await;
    parts.sort_by_key(|(number, _)| *number);
    let mut accounts = Vec::with_capacity(ids.len());
    for (_, part) in parts {
        match part {
            Ok(part) => accounts.extend(part),
            Err(text) => return verification.violations.push(text),
        }
    }
    let (expected, retried) = {
        let model = lock(&engine.model);
        (model.balances.clone(), Vec::from(model.retried.clone()))
    };
    verification.violations.extend(account_violations(&accounts, &expected, &retried));
}

async fn read_accounts(client: &Client, ids: &[Uuid]) -> Result<Vec<Account>, String> {
    let mut accounts = Vec::with_capacity(ids.len());
    for id in ids {
        let response = read(client, &format!("/v1/accounts/{id}")).await;
        let response = response.map_err(|e| format!("account {id}: read failed: {e}"))?;
        if response.status != 200 {
            return Err(format!("account {id} of the run reads back HTTP {}", response.status));
        }
        let account: Account = serde_json::from_slice(&response.body)
            .map_err(|e| format!("account {id}: unreadable: {e}"))?;
        accounts.push(account);
    }
    Ok(accounts)
}

/// Retried transfers named as suspects of one account's mismatch.
const SUSPECTS_MAX: usize = 5;

/// GET, retried after a transport error or a 5xx (the last answer wins).
async fn read(client: &Client, path: &str) -> Result<Response, TransportError> {
    let mut attempt = 1;
    loop {
        let response = client.get(path).await;
        let retryable = response.as_ref().map_or(true, |r| r.status.is_server_error());
        if !retryable || attempt == RESENDS_MAX {
            return response;
        }
        attempt += 1;
        tokio::time::sleep(RESEND_BACKOFF).await;
    }
}

/// Conservation over the run's accounts and each account against its expectation;
/// `retried` (id, debit index, credit index) names suspects of a mismatch.
pub fn account_violations(
    accounts: &[Account],
    expected: &[Balance],
    retried: &[(Uuid, u32, u32)],
) -> Vec<String> {
    let mut violations = conservation(accounts);
    for (index, (account, want)) in accounts.iter().zip(expected).enumerate() {
        let have = balance_of(account);
        if have != *want {
            violations.push(format!(
                "account {} holds {have:?}, expected {want:?}: an acknowledged transfer lost \
                 or a retried id applied twice (retried here: {})",
                account.id,
                suspects(index, retried)
            ));
        }
    }
    violations
}

fn suspects(index: usize, retried: &[(Uuid, u32, u32)]) -> String {
    let touching = retried.iter().filter(|(_, d, c)| *d as usize == index || *c as usize == index);
    let ids: Vec<String> = touching.take(SUSPECTS_MAX).map(|(id, _, _)| id.to_string()).collect();
    if ids.is_empty() { "none".to_owned() } else { ids.join(", ") }
}

fn conservation(accounts: &[Account]) -> Vec<String> {
    let sum = |f: fn(&Account) -> u64| accounts.iter().map(|a| u128::from(f(a))).sum::<u128>();
    let mut violations = Vec::new();
    let (debits, credits) = (sum(|a| a.debits_posted), sum(|a| a.credits_posted));
    if debits != credits {
        violations.push(format!(
            "money not conserved: debits_posted {debits} != credits_posted {credits}"
        ));
    }
    let (debits, credits) = (sum(|a| a.debits_pending), sum(|a| a.credits_pending));
    if debits != credits {
        violations.push(format!(
            "money not conserved: debits_pending {debits} != credits_pending {credits}"
        ));
    }
    violations
}

fn balance_of(account: &Account) -> Balance {
    Balance {
        debits_pending: i128::from(account.debits_pending),
        debits_posted: i128::from(account.debits_posted),
        credits_pending: i128::from(account.credits_pending),
        credits_posted: i128::from(account.credits_posted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u128, debits_posted: u64, credits_posted: u64) -> Account {
        let id = Uuid::from_u128(n);
        Account { id, debits_pending: 0, debits_posted, credits_pending: 0, credits_posted }
    }

    fn expect(debits_posted: i128, credits_posted: i128) -> Balance {
        Balance { debits_posted, credits_posted, ..Balance::default() }
    }

    #[test]
    fn conserved_and_expected_passes() {
        let accounts = [account(1, 10, 0), account(2, 0, 10)];
        assert!(account_violations(&accounts, &[expect(10, 0), expect(0, 10)], &[]).is_empty());
    }

    #[test]
    fn a_transfer_applied_twice_names_the_account_and_the_retried_id() {
        let accounts = [account(1, 20, 0), account(2, 0, 20)];
        let retried = [(Uuid::from_u128(99), 0, 1)];
        let violations = account_violations(&accounts, &[expect(10, 0), expect(0, 10)], &retried);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains(&Uuid::from_u128(1).to_string()));
        assert!(violations[0].contains(&Uuid::from_u128(99).to_string()));
    }

    #[test]
    fn money_created_from_nothing_is_not_conserved() {
        let accounts = [account(1, 10, 0), account(2, 0, 15)];
        let violations = account_violations(&accounts, &[expect(10, 0), expect(0, 15)], &[]);
        assert_eq!(violations, ["money not conserved: debits_posted 10 != credits_posted 15"]);
    }
}
