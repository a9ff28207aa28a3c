//! Consent in the embedded store: `CONSENTS` rows keyed `(tenant, subject, purpose,
//! version)`, so a subject's history is one range and a purpose's newest version is the
//! last key of its range.
//!
//! An append is a control job on the writer thread: it checks the subject is live, counts
//! the subject's records against [`CONSENTS_PER_SUBJECT_MAX`] (`check_room`), takes the
//! next version and inserts, in one write transaction, so two appends never get the same
//! version.
//! Nothing here removes or rewrites a row. Reads run on the caller's thread. Never logs.

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};

use super::Embedded;
use super::codec::{decode_consent, encode_consent};
use super::tables::{CONSENTS, SUBJECTS};
use super::vault::live_record;
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::vault::consent::{
    CONSENTS_PER_SUBJECT_MAX, Consent, NewConsent, check_room, sort_history,
};

impl Embedded {
    /// Appends `new` as the next version of its purpose (see `CoreStore::append_consent`).
    pub async fn append_consent(&self, new: NewConsent) -> Result<Consent, StoreError> {
        new.check()?;
        self.write(move |txn| append(txn, new)).await
    }

    /// Every consent record of the subject, oldest first.
    pub fn consent_history(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        let mut history =
            self.read(|txn| records_of(&txn.open_table(CONSENTS)?, tenant, subject))?;
        sort_history(&mut history);
        Ok(history)
    }

    /// The subject's highest version per purpose, by purpose.
    pub fn current_consents(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        let history = self.read(|txn| records_of(&txn.open_table(CONSENTS)?, tenant, subject))?;
        let mut current: BTreeMap<String, Consent> = BTreeMap::new();
        for consent in history {
            current.insert(consent.purpose.clone(), consent);
        }
        Ok(current.into_values().collect())
    }

    /// Per purpose, how many current consents are granted and withdrawn.
    pub fn consent_counts(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let tallies = self.read(|txn| {
            let table = txn.open_table(CONSENTS)?;
            let mut tallies = Tallies::default();
            for entry in table.iter()? {
                let (key, bytes) = entry?;
                let (tenant, subject, purpose, version) = key.value();
                let consent = decode_consent((tenant, subject, purpose, version), bytes.value())?;
                tallies.see((tenant, subject, purpose), consent.granted);
            }
            Ok(tallies)
        })?;
        Ok(tallies.finish())
    }
}

fn append(txn: &WriteTransaction, new: NewConsent) -> Result<Consent, StoreError> {
    let (tenant, subject) = (new.tenant, new.subject);
    if live_record(&txn.open_table(SUBJECTS)?, (tenant, subject))?.is_none() {
        return Err(StoreError::NotFound("subject"));
    }
    let mut consents = txn.open_table(CONSENTS)?;
    let records = records_count(&consents, tenant, subject)?;
    let purpose = new.purpose.as_str();
    let range = (tenant, subject, purpose, 0)..=(tenant, subject, purpose, u32::MAX);
    let last = match consents.range(range)?.next_back().transpose()? {
        Some((key, bytes)) => Some(decode_consent(key.value(), bytes.value())?),
        None => None,
    };
    check_room(&new, records, last.as_ref().map(|c| c.granted))?;
    let version = last
        .map_or(0, |c| c.version)
        .checked_add(1)
        .ok_or_else(|| StoreError::Invariant("consent version overflow".into()))?;
    let consent = new.into_consent(version);
    let key = (tenant, subject, consent.purpose.as_str(), version);
    consents.insert(key, encode_consent(&consent).as_slice())?;
    Ok(consent)
}

/// How many records the subject has (at most [`CONSENTS_PER_SUBJECT_MAX`] are read).
fn records_count(
    table: &impl ReadableTable<(u64, u128, &'static str, u32), &'static [u8]>,
    tenant: TenantId,
    subject: u128,
) -> Result<usize, StoreError> {
    let mut count = 0;
    for entry in table.range((tenant, subject, "", 0)..)?.take(CONSENTS_PER_SUBJECT_MAX) {
        let (owner, id, _, _) = entry?.0.value();
        if (owner, id) != (tenant, subject) {
            break;
        }
        count += 1;
    }
    Ok(count)
}

/// The subject's records in key order (purpose, then version).
fn records_of(
    table: &impl ReadableTable<(u64, u128, &'static str, u32), &'static [u8]>,
    tenant: TenantId,
    subject: u128,
) -> Result<Vec<Consent>, StoreError> {
    let mut records = Vec::new();
    for entry in table.range((tenant, subject, "", 0)..)? {
        let (key, bytes) = entry?;
        let (owner, id, purpose, version) = key.value();
        if (owner, id) != (tenant, subject) {
            break;
        }
        records.push(decode_consent((owner, id, purpose, version), bytes.value())?);
    }
    Ok(records)
}

/// Counts current states from records in key order: the last record seen of each
/// `(tenant, subject, purpose)` is its current one.
#[derive(Default)]
struct Tallies {
    pending: Option<((TenantId, u128, String), bool)>,
    by_purpose: BTreeMap<String, (u64, u64)>,
}

impl Tallies {
    fn see(&mut self, (tenant, subject, purpose): (TenantId, u128, &str), granted: bool) {
        let same = self
            .pending
            .as_ref()
            .is_some_and(|((t, s, p), _)| (*t, *s, p.as_str()) == (tenant, subject, purpose));
        if !same {
            self.settle();
        }
        self.pending = Some(((tenant, subject, purpose.to_owned()), granted));
    }

    /// Counts the pending group's last state.
    fn settle(&mut self) {
        if let Some(((_, _, purpose), granted)) = self.pending.take() {
            let counts = self.by_purpose.entry(purpose).or_default();
            if granted {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }

    fn finish(mut self) -> Vec<(String, u64, u64)> {
        self.settle();
        self.by_purpose.into_iter().map(|(purpose, (g, w))| (purpose, g, w)).collect()
    }
}
