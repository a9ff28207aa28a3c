//! The compliance registers beside the trail, as stored: data-subject requests (with their
//! turnaround), retention runs and key rotations (evidence for the Information Officer's
//! report) and the breach register (POPIA s.22). The rules both backends apply live here.
//!
//! No register holds personal information: subjects are pseudonymous ids, outcomes and
//! categories are codes, and a breach's description is written without any (the gateway
//! checks that it names nobody; storage only bounds it).

use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::tenants::check_time;

use super::record::{BIGINT_MAX, check_code};

/// Most records a list returns (a larger limit is cut to it).
pub const PAGE_MAX: usize = 1000;
/// Most requests the embedded store reads to compute [`DsarStats`] (the newest ones):
/// PostgreSQL aggregates every request in SQL; the embedded store scans rows, so its
/// figures cover at most this many requests.
pub const DSAR_STATS_SCAN_MAX: usize = 100_000;
/// Most bytes of a breach's description.
pub const DESCRIPTION_BYTES_MAX: usize = 4096;
/// Most data categories a breach names.
pub const CATEGORIES_MAX: usize = 32;
/// Most characters of a data category.
pub const CATEGORY_LEN_MAX: usize = 64;
/// Most characters of a key-encryption key's id (as `crypto::envelope` allows).
pub const KEK_ID_LEN_MAX: usize = 64;

/// What a data subject asked for (POPIA ss.23-25).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DsarKind {
    /// Access to (an export of) their personal information.
    Access,
    /// Correction of it.
    Correction,
    /// Its deletion (crypto-shredding).
    Deletion,
    /// An objection to its processing.
    Objection,
}

impl DsarKind {
    /// Every kind, in a fixed order (the order of [`DsarStats`]).
    pub const ALL: [DsarKind; 4] =
        [DsarKind::Access, DsarKind::Correction, DsarKind::Deletion, DsarKind::Objection];

    /// The stable snake_case name (stored in PostgreSQL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Correction => "correction",
            Self::Deletion => "deletion",
            Self::Objection => "objection",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<DsarKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The byte the embedded store keeps.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Access => 1,
            Self::Correction => 2,
            Self::Deletion => 3,
            Self::Objection => 4,
        }
    }

    /// The kind stored as `byte`, if any.
    pub(crate) fn from_byte(byte: u8) -> Option<DsarKind> {
        Self::ALL.into_iter().find(|kind| kind.to_byte() == byte)
    }
}

/// A data-subject request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDsar {
    /// The tenant the subject belongs to (it must exist).
    pub tenant: TenantId,
    /// The subject's pseudonymous id (never 0).
    pub subject: u128,
    /// What they asked for.
    pub kind: DsarKind,
    /// When it was received, in Unix seconds.
    pub received_at_s: u64,
}

impl NewDsar {
    /// Checks the fields (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        check_id(self.tenant, "tenant id must be at most 2^63-1")?;
        if self.subject == 0 {
            return Err(StoreError::Invalid("subject id must not be 0"));
        }
        check_time(self.received_at_s)
    }
}

/// A stored data-subject request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dsar {
    /// The store-assigned id (from 1).
    pub id: u64,
    /// The tenant the subject belongs to.
    pub tenant: TenantId,
    /// The subject's pseudonymous id.
    pub subject: u128,
    /// What they asked for.
    pub kind: DsarKind,
    /// When it was received, in Unix seconds.
    pub received_at_s: u64,
    /// When it was completed, in Unix seconds; `None` while open.
    pub completed_at_s: Option<u64>,
    /// How it ended (a code); `None` while open.
    pub outcome: Option<String>,
}

impl Dsar {
    /// The stored request `new` becomes under `id`: open.
    pub(crate) fn open(id: u64, new: NewDsar) -> Self {
        let NewDsar { tenant, subject, kind, received_at_s } = new;
        Dsar { id, tenant, subject, kind, received_at_s, completed_at_s: None, outcome: None }
    }

    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.completed_at_s.is_none()
    }

    /// Seconds from receipt to completion, once completed.
    pub fn turnaround_s(&self) -> Option<u64> {
        self.completed_at_s.map(|at| at.saturating_sub(self.received_at_s))
    }

    /// Checks a stored request's fields (decoders call this).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let new = NewDsar {
            tenant: self.tenant,
            subject: self.subject,
            kind: self.kind,
            received_at_s: self.received_at_s,
        };
        new.check()?;
        match (self.completed_at_s, &self.outcome) {
            (None, None) => Ok(()),
            (Some(at_s), Some(outcome)) => check_completion(self.received_at_s, at_s, outcome),
            _ => Err(StoreError::Invalid("a completed request has a time and an outcome")),
        }
    }
}

/// The rule a completion before the request's receipt breaks.
pub(crate) const COMPLETED_BEFORE_RECEIPT: &str =
    "a request cannot complete before it was received";
/// The rule a notification before the breach's detection breaks.
pub(crate) const NOTIFIED_BEFORE_DETECTION: &str =
    "a notification cannot precede the breach's detection";

/// Checks a completion at `at_s` with `outcome` of a request received at `received_at_s`.
pub(crate) fn check_completion(
    received_at_s: u64,
    at_s: u64,
    outcome: &str,
) -> Result<(), StoreError> {
    check_time(at_s)?;
    check_code(outcome, "outcome must be 1-64 characters of a-z, 0-9, '_' and '.'")?;
    if at_s < received_at_s {
        return Err(StoreError::Invalid(COMPLETED_BEFORE_RECEIPT));
    }
    Ok(())
}

/// Which requests [`crate::CoreStore::dsars`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsarFilter {
    /// Only those not completed yet.
    Open,
    /// Every request.
    All,
}

/// One kind's figures for the Information Officer's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DsarStats {
    /// The kind of request.
    pub kind: DsarKind,
    /// Requests received.
    pub count: u64,
    /// Requests still open.
    pub open: u64,
    /// Requests completed.
    pub completed: u64,
    /// The median seconds from receipt to completion (the mean of the two middle values,
    /// rounded down, for an even count); `None` when none is completed.
    pub median_turnaround_s: Option<u64>,
    /// The longest seconds from receipt to completion; `None` when none is completed.
    pub max_turnaround_s: Option<u64>,
}

impl DsarStats {
    /// The figures of `kind` from its completed requests' turnarounds (any order) and its
    /// open count.
    pub(crate) fn of(kind: DsarKind, mut turnarounds: Vec<u64>, open: u64) -> Self {
        turnarounds.sort_unstable();
        let completed = turnarounds.len() as u64;
        DsarStats {
            kind,
            count: completed + open,
            open,
            completed,
            median_turnaround_s: median(&turnarounds),
            max_turnaround_s: turnarounds.last().copied(),
        }
    }
}

/// The median of sorted `values`: the middle one, or the mean of the two middle ones
/// rounded down (as PostgreSQL's `floor(percentile_cont(0.5))`).
fn median(sorted: &[u64]) -> Option<u64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => {
            let sum = u128::from(sorted[n / 2 - 1]) + u128::from(sorted[n / 2]);
            u64::try_from(sum / 2).ok()
        }
    }
}

/// One run of the retention job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRun {
    /// When it started, in Unix seconds.
    pub started_at_s: u64,
    /// When it finished, in Unix seconds (not before it started).
    pub finished_at_s: u64,
    /// Field values it purged.
    pub fields_purged: u64,
    /// Subjects it erased (no field left).
    pub subjects_erased: u64,
    /// How it ended (a code: `completed`, `stopped_at_batch_max`, `failed`...).
    pub outcome: String,
}

impl RetentionRun {
    /// Checks the fields (both backends call this first, decoders too).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        check_time(self.started_at_s)?;
        check_time(self.finished_at_s)?;
        if self.finished_at_s < self.started_at_s {
            return Err(StoreError::Invalid("a run cannot finish before it started"));
        }
        check_count(self.fields_purged)?;
        check_count(self.subjects_erased)?;
        check_code(&self.outcome, "outcome must be 1-64 characters of a-z, 0-9, '_' and '.'")
    }
}

/// One run of a key-encryption key's rotation (re-wrapping data keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    /// When it ran, in Unix seconds.
    pub at_s: u64,
    /// The KEK's id: 1 to 64 characters of `[A-Za-z0-9_.-]`.
    pub kek_id: String,
    /// The version keys were re-wrapped from (at least 1).
    pub from_version: u32,
    /// The version they were re-wrapped to (at least 1, not `from_version`).
    pub to_version: u32,
    /// Keys re-wrapped in this run.
    pub rewrapped: u64,
    /// Keys still wrapped with `from_version` after it.
    pub remaining: u64,
}

impl KeyRotation {
    /// Checks the fields (both backends call this first, decoders too).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        check_time(self.at_s)?;
        if !valid_kek_id(&self.kek_id) {
            return Err(StoreError::Invalid(
                "KEK id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
            ));
        }
        let versions = (self.from_version, self.to_version);
        if versions.0 == 0 || versions.1 == 0 || versions.0 == versions.1 {
            return Err(StoreError::Invalid("KEK versions are at least 1 and differ"));
        }
        check_count(self.rewrapped)?;
        check_count(self.remaining)
    }
}

/// A breach of security compromising personal information (POPIA s.22), as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBreach {
    /// When it was detected, in Unix seconds.
    pub detected_at_s: u64,
    /// The operator who recorded it (it must exist).
    pub reported_by: u64,
    /// What happened: 1 to 4096 bytes of text without NUL, naming nobody.
    pub description: String,
    /// The data categories affected: 1 to 32 distinct codes of 1 to 64 `[a-z0-9_]`.
    pub categories: Vec<String>,
    /// How many data subjects are affected (an estimate where unknown).
    pub subjects_affected: u64,
    /// The tenant whose subjects are affected, if one is (it must exist).
    pub tenant: Option<TenantId>,
}

impl NewBreach {
    /// Checks the fields (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        check_time(self.detected_at_s)?;
        check_id(self.reported_by, "operator id must be at most 2^63-1")?;
        let description = &self.description;
        if !(1..=DESCRIPTION_BYTES_MAX).contains(&description.len()) || description.contains('\0') {
            return Err(StoreError::Invalid("description must be 1-4096 bytes without NUL"));
        }
        check_categories(&self.categories)?;
        check_count(self.subjects_affected)?;
        match self.tenant {
            Some(tenant) => check_id(tenant, "tenant id must be at most 2^63-1"),
            None => Ok(()),
        }
    }
}

/// A recorded breach, with when the regulator and the subjects were notified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The store-assigned id (from 1).
    pub id: u64,
    /// When it was detected, in Unix seconds.
    pub detected_at_s: u64,
    /// The operator who recorded it.
    pub reported_by: u64,
    /// What happened.
    pub description: String,
    /// The data categories affected.
    pub categories: Vec<String>,
    /// How many data subjects are affected.
    pub subjects_affected: u64,
    /// The tenant whose subjects are affected, if one is.
    pub tenant: Option<TenantId>,
    /// When the Information Regulator was notified, in Unix seconds.
    pub regulator_notified_at_s: Option<u64>,
    /// When the data subjects were notified, in Unix seconds.
    pub subjects_notified_at_s: Option<u64>,
}

impl Breach {
    /// The stored breach `new` becomes under `id`: nobody notified yet.
    pub(crate) fn recorded(id: u64, new: NewBreach) -> Self {
        Breach {
            id,
            detected_at_s: new.detected_at_s,
            reported_by: new.reported_by,
            description: new.description,
            categories: new.categories,
            subjects_affected: new.subjects_affected,
            tenant: new.tenant,
            regulator_notified_at_s: None,
            subjects_notified_at_s: None,
        }
    }

    /// Checks a stored breach's fields (decoders call this).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let new = NewBreach {
            detected_at_s: self.detected_at_s,
            reported_by: self.reported_by,
            description: self.description.clone(),
            categories: self.categories.clone(),
            subjects_affected: self.subjects_affected,
            tenant: self.tenant,
        };
        new.check()?;
        for at_s in
            [self.regulator_notified_at_s, self.subjects_notified_at_s].into_iter().flatten()
        {
            check_notification(self.detected_at_s, at_s)?;
        }
        Ok(())
    }

    /// When `who` was notified.
    pub fn notified_at_s(&self, who: Notified) -> Option<u64> {
        match who {
            Notified::Regulator => self.regulator_notified_at_s,
            Notified::Subjects => self.subjects_notified_at_s,
        }
    }

    /// Records that `who` was notified at `at_s`: `false` when that was recorded already.
    pub(crate) fn notify(&mut self, who: Notified, at_s: u64) -> bool {
        let slot = match who {
            Notified::Regulator => &mut self.regulator_notified_at_s,
            Notified::Subjects => &mut self.subjects_notified_at_s,
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(at_s);
        true
    }
}

/// Who was notified of a breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notified {
    /// The Information Regulator.
    Regulator,
    /// The affected data subjects.
    Subjects,
}

/// Checks a notification at `at_s` of a breach detected at `detected_at_s`.
pub(crate) fn check_notification(detected_at_s: u64, at_s: u64) -> Result<(), StoreError> {
    check_time(at_s)?;
    if at_s < detected_at_s {
        return Err(StoreError::Invalid(NOTIFIED_BEFORE_DETECTION));
    }
    Ok(())
}

/// Data categories: 1 to [`CATEGORY_LEN_MAX`] characters of `[a-z0-9_]`.
pub fn valid_category(category: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    (1..=CATEGORY_LEN_MAX).contains(&category.len()) && category.bytes().all(allowed)
}

/// KEK ids: 1 to [`KEK_ID_LEN_MAX`] characters of `[A-Za-z0-9_.-]`.
pub fn valid_kek_id(id: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_.-".contains(&b);
    (1..=KEK_ID_LEN_MAX).contains(&id.len()) && id.bytes().all(allowed)
}

fn check_categories(categories: &[String]) -> Result<(), StoreError> {
    let rule = "categories must be 1-32 distinct codes of 1-64 characters of a-z, 0-9 and '_'";
    let count_ok = (1..=CATEGORIES_MAX).contains(&categories.len());
    let each_ok = categories.iter().all(|category| valid_category(category));
    let distinct =
        categories.iter().enumerate().all(|(i, category)| !categories[..i].contains(category));
    if count_ok && each_ok && distinct { Ok(()) } else { Err(StoreError::Invalid(rule)) }
}

fn check_id(id: u64, rule: &'static str) -> Result<(), StoreError> {
    if id <= BIGINT_MAX { Ok(()) } else { Err(StoreError::Invalid(rule)) }
}

fn check_count(count: u64) -> Result<(), StoreError> {
    check_id(count, "counts must be at most 2^63-1")
}

/// `limit` cut to [`PAGE_MAX`].
pub(crate) fn page_limit(limit: usize) -> usize {
    limit.min(PAGE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TIME_S_MAX;

    const T0: u64 = 1_900_000_000;

    fn breach() -> NewBreach {
        NewBreach {
            detected_at_s: T0,
            reported_by: 1,
            description: "backup bucket was public for 2 hours".into(),
            categories: vec!["contact_details".into(), "identity_number".into()],
            subjects_affected: 120,
            tenant: Some(2),
        }
    }

    #[test]
    fn kinds_round_trip_by_name_and_byte() {
        for kind in DsarKind::ALL {
            assert_eq!(DsarKind::parse(kind.as_str()), Some(kind));
            assert_eq!(DsarKind::from_byte(kind.to_byte()), Some(kind));
        }
        assert_eq!((DsarKind::parse("erasure"), DsarKind::from_byte(0)), (None, None));
    }

    #[test]
    fn medians_match_postgres_percentile_cont_rounded_down() {
        let stats = |values: &[u64]| DsarStats::of(DsarKind::Access, values.to_vec(), 2);
        assert_eq!(stats(&[]).median_turnaround_s, None);
        assert_eq!(stats(&[5]).median_turnaround_s, Some(5));
        assert_eq!(stats(&[9, 1, 4]).median_turnaround_s, Some(4));
        assert_eq!(stats(&[1, 4, 9, 10]).median_turnaround_s, Some(6));
        assert_eq!(stats(&[u64::MAX, u64::MAX]).median_turnaround_s, Some(u64::MAX));
        let four = stats(&[3, 1, 2, 8]);
        assert_eq!(
            (four.count, four.open, four.completed, four.max_turnaround_s),
            (6, 2, 4, Some(8))
        );
    }

    #[test]
    fn register_rules() {
        assert!(breach().check().is_ok());
        let broken: [fn(&mut NewBreach); 9] = [
            |b| b.detected_at_s = TIME_S_MAX + 1,
            |b| b.description.clear(),
            |b| b.description = "a\0b".into(),
            |b| b.description = "x".repeat(DESCRIPTION_BYTES_MAX + 1),
            |b| b.categories.clear(),
            |b| b.categories.push("contact_details".into()),
            |b| b.categories.push("Contact".into()),
            |b| b.categories = (0..=CATEGORIES_MAX).map(|n| format!("c{n}")).collect(),
            |b| b.subjects_affected = BIGINT_MAX + 1,
        ];
        for breaks in broken {
            let mut bad = breach();
            breaks(&mut bad);
            assert!(matches!(bad.check(), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        let run = RetentionRun {
            started_at_s: T0,
            finished_at_s: T0,
            fields_purged: 0,
            subjects_erased: 0,
            outcome: "completed".into(),
        };
        assert!(run.check().is_ok());
        assert!(RetentionRun { finished_at_s: T0 - 1, ..run.clone() }.check().is_err());
        assert!(RetentionRun { outcome: "done!".into(), ..run }.check().is_err());
        let rotation = KeyRotation {
            at_s: T0,
            kek_id: "kek-main.2025".into(),
            from_version: 1,
            to_version: 2,
            rewrapped: 10,
            remaining: 0,
        };
        assert!(rotation.check().is_ok());
        assert!(KeyRotation { to_version: 1, ..rotation.clone() }.check().is_err());
        assert!(KeyRotation { from_version: 0, ..rotation.clone() }.check().is_err());
        assert!(KeyRotation { kek_id: "kek main".into(), ..rotation }.check().is_err());
        let dsar = NewDsar { tenant: 1, subject: 9, kind: DsarKind::Access, received_at_s: T0 };
        assert!(dsar.check().is_ok());
        assert!(NewDsar { subject: 0, ..dsar.clone() }.check().is_err());
        assert!(check_completion(T0, T0 - 1, "completed").is_err());
        assert!(check_completion(T0, T0, "Completed").is_err());
        assert!(check_completion(T0, T0, "completed").is_ok());
    }

    #[test]
    fn a_notification_is_recorded_once() {
        let mut stored = Breach::recorded(1, breach());
        assert!(stored.notify(Notified::Regulator, T0 + 10));
        assert!(!stored.notify(Notified::Regulator, T0 + 20));
        assert_eq!(stored.notified_at_s(Notified::Regulator), Some(T0 + 10));
        assert_eq!(stored.notified_at_s(Notified::Subjects), None);
        assert!(stored.check().is_ok());
        stored.subjects_notified_at_s = Some(T0 - 1);
        assert!(stored.check().is_err());
    }
}
