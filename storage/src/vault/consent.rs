//! Consent as stored (ADR 0008): for each `(tenant, subject, purpose)`, append-only
//! versions 1, 2, 3, ..., each granted or withdrawn, with the channel it came through, an
//! evidence reference and the time. The current state of a purpose is its highest version.
//!
//! History is immutable: there is no API to change or delete a record, and PostgreSQL's
//! table refuses UPDATE, DELETE and TRUNCATE with a trigger. Erasing a subject keeps its
//! consent history, because a record names no personal information: only the subject's
//! pseudonymous id, the purpose, the channel and an evidence reference (a document id,
//! never personal information: the gateway checks that). Appending needs a live subject.
//!
//! Nothing here logs; errors name the rule broken, never a value.

use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::check_time;
use crate::vault::{NAME_LEN_MAX, valid_token};

/// Most characters of a channel name.
pub const CHANNEL_LEN_MAX: usize = 32;
/// Most bytes of an evidence reference.
pub const EVIDENCE_BYTES_MAX: usize = 256;
/// Consent records a subject may gather, all purposes together, before only withdrawals
/// are accepted: a withdrawal of a granted purpose is never refused (consent must stay
/// withdrawable), and with no new grant each purpose can be withdrawn once more, so a
/// history (read whole) holds at most twice this many records.
pub const CONSENTS_PER_SUBJECT_MAX: usize = 1024;

/// A consent record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConsent {
    /// The subject's tenant.
    pub tenant: TenantId,
    /// The subject.
    pub subject: u128,
    /// The purpose: 1 to 64 characters of `[a-z0-9_]`.
    pub purpose: String,
    /// Granted (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// How it was given: 1 to [`CHANNEL_LEN_MAX`] characters of `[a-z0-9_]`.
    pub channel: String,
    /// A reference to the evidence (a document id): at most [`EVIDENCE_BYTES_MAX`] bytes,
    /// no control characters; never personal information.
    pub evidence: String,
    /// When it was given, in Unix seconds.
    pub at_s: u64,
}

impl NewConsent {
    /// Checks every field (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if !valid_token(&self.purpose, NAME_LEN_MAX) {
            return Err(StoreError::Invalid("purpose must be 1-64 characters of a-z, 0-9 and '_'"));
        }
        if !valid_token(&self.channel, CHANNEL_LEN_MAX) {
            return Err(StoreError::Invalid("channel must be 1-32 characters of a-z, 0-9 and '_'"));
        }
        if !valid_evidence(&self.evidence) {
            return Err(StoreError::Invalid(
                "evidence must be at most 256 bytes without control characters",
            ));
        }
        check_time(self.at_s)
    }

    /// The stored record this becomes as version `version`.
    pub(crate) fn into_consent(self, version: u32) -> Consent {
        let NewConsent { tenant, subject, purpose, granted, channel, evidence, at_s } = self;
        Consent { tenant, subject, purpose, version, granted, channel, evidence, at_s }
    }
}

/// A stored consent record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    /// The subject's tenant.
    pub tenant: TenantId,
    /// The subject.
    pub subject: u128,
    /// The purpose.
    pub purpose: String,
    /// Its version within `(tenant, subject, purpose)`: 1, 2, 3, ...
    pub version: u32,
    /// Granted (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// How it was given.
    pub channel: String,
    /// The evidence reference.
    pub evidence: String,
    /// When it was given, in Unix seconds.
    pub at_s: u64,
}

/// Evidence references: at most [`EVIDENCE_BYTES_MAX`] bytes, no control characters.
pub fn valid_evidence(evidence: &str) -> bool {
    evidence.len() <= EVIDENCE_BYTES_MAX && !evidence.chars().any(char::is_control)
}

/// Puts a subject's records in history order: by time, then purpose (byte order), then
/// version.
pub(crate) fn sort_history(history: &mut [Consent]) {
    history.sort_by(|a, b| (a.at_s, &a.purpose, a.version).cmp(&(b.at_s, &b.purpose, b.version)));
}

/// Whether `new` may be appended to a subject holding `records` records, whose purpose's
/// current state is `current` (`None`: never recorded): anything below
/// [`CONSENTS_PER_SUBJECT_MAX`], and past it the withdrawal of a granted purpose only.
pub(crate) fn check_room(
    new: &NewConsent,
    records: usize,
    current: Option<bool>,
) -> Result<(), StoreError> {
    if records < CONSENTS_PER_SUBJECT_MAX || (!new.granted && current == Some(true)) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a subject has at most 1024 consent records; past them only a withdrawal is taken",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent() -> NewConsent {
        NewConsent {
            tenant: 1,
            subject: 7,
            purpose: "marketing_email".into(),
            granted: true,
            channel: "web_form".into(),
            evidence: "doc-2031/7".into(),
            at_s: 1_900_000_000,
        }
    }

    #[test]
    fn consent_rules() {
        assert!(consent().check().is_ok());
        let quiet = NewConsent { evidence: String::new(), ..consent() };
        assert!(quiet.check().is_ok(), "evidence may be empty");
        let broken: [fn(&mut NewConsent); 7] = [
            |c| c.purpose.clear(),
            |c| c.purpose = "Marketing".into(),
            |c| c.channel = "x".repeat(CHANNEL_LEN_MAX + 1),
            |c| c.channel.clear(),
            |c| c.evidence = "e".repeat(EVIDENCE_BYTES_MAX + 1),
            |c| c.evidence = "line\nbreak".into(),
            |c| c.at_s = u64::MAX,
        ];
        for breaks in broken {
            let mut bad = consent();
            breaks(&mut bad);
            assert!(matches!(bad.check(), Err(StoreError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn past_the_bound_only_a_granted_purpose_is_withdrawn() {
        let full = CONSENTS_PER_SUBJECT_MAX;
        let grant = consent();
        let withdrawal = NewConsent { granted: false, ..consent() };
        assert!(check_room(&grant, full - 1, None).is_ok());
        assert!(check_room(&withdrawal, full - 1, Some(false)).is_ok());
        assert!(check_room(&withdrawal, full, Some(true)).is_ok());
        assert!(check_room(&withdrawal, 2 * full, Some(true)).is_ok());
        for (new, current) in [(&grant, Some(false)), (&grant, None), (&withdrawal, None)] {
            assert!(check_room(new, full, current).is_err(), "{new:?} {current:?}");
        }
        assert!(check_room(&withdrawal, full, Some(false)).is_err(), "withdrawn already");
    }

    #[test]
    fn history_order_is_time_purpose_version() {
        let at = |purpose: &str, version, at_s| {
            NewConsent { purpose: purpose.into(), at_s, ..consent() }.into_consent(version)
        };
        let mut history = vec![at("b", 1, 5), at("a", 2, 9), at("a", 1, 5), at("b", 2, 5)];
        sort_history(&mut history);
        let order: Vec<(&str, u32)> =
            history.iter().map(|c| (c.purpose.as_str(), c.version)).collect();
        assert_eq!(order, [("a", 1), ("b", 1), ("b", 2), ("a", 2)]);
    }
}
