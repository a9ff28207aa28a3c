//! The POPIA vault as stored (ADR 0008): data subjects with their wrapped data keys,
//! sealed field values and blind indexes; their consent history ([`consent`]); and the
//! ledger accounts a subject owns, for access requests.
//!
//! Storage never sees personal information or a key in clear. The gateway wraps each
//! subject's data key with the KEK and seals every field value under that data key
//! (`crypto::envelope`), and computes blind indexes (`crypto::blind_index`), before it
//! calls the store: what arrives here is opaque bytes. The rules both backends apply (name
//! shapes, sizes, counts, times) are pure checks in this module, run before any I/O.
//!
//! Erasure crypto-shreds: the wrapped key, every field value and every blind-index row of
//! the subject are deleted, and a tombstone (tenant, id, created and erased times) stays so
//! that the gateway can answer "erased". Ledger accounts keep their pseudonymous
//! `subject_id`, and consent history stays (it names no personal information).
//!
//! This module never logs, formats or puts in an error a sealed value, a wrapped key or a
//! blind index: `Debug` redacts them, and errors name the rule broken, never the value or
//! the subject.

pub mod consent;

use std::fmt;

use crate::error::StoreError;
use crate::ledger::{Account, TenantId};
use crate::store::CoreStore;
use crate::tenants::check_time;
use consent::{Consent, NewConsent};

/// Most field values a subject holds.
pub const FIELDS_MAX: usize = 64;
/// Most characters of a field or purpose name.
pub const NAME_LEN_MAX: usize = 64;
/// Most bytes of one sealed field value.
pub const SEALED_FIELD_BYTES_MAX: usize = 8192;
/// Most bytes of a wrapped data key.
pub const WRAPPED_KEY_BYTES_MAX: usize = 1024;
/// Bytes of a blind index (`crypto::blind_index::INDEX_LEN`).
pub const BLIND_INDEX_LEN: usize = 16;
/// Most blind-index rows one create or update writes.
pub const INDEXES_MAX: usize = 64;
/// Most rows one listing answers (its `limit`).
pub const ROWS_MAX: usize = 10_000;
/// Most fields one retention query names.
pub const CUTOFFS_MAX: usize = 256;

/// A blind index: a truncated keyed HMAC of a normalised value.
pub type BlindIndex = [u8; BLIND_INDEX_LEN];

/// One field's sealed value. `Debug` shows the name and time only.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldValue {
    /// The field's name: 1 to [`NAME_LEN_MAX`] characters of `[a-z0-9_]`.
    pub name: String,
    /// The value sealed under the subject's data key: 1 to [`SEALED_FIELD_BYTES_MAX`]
    /// bytes, opaque here.
    pub sealed: Vec<u8>,
    /// When the value was last set, in Unix seconds (what retention counts from).
    pub updated_at_s: u64,
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldValue")
            .field("name", &self.name)
            .field("sealed", &"[redacted]")
            .field("updated_at_s", &self.updated_at_s)
            .finish()
    }
}

/// A blind-index row to store: the field it indexes and the index. `Debug` shows the
/// field only.
#[derive(Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The field indexed; the subject must hold a value of it.
    pub field: String,
    /// The index of the field's value.
    pub index: BlindIndex,
}

impl fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexEntry").field("field", &self.field).finish_non_exhaustive()
    }
}

/// A subject to create. `Debug` shows no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSubject {
    /// The tenant the subject belongs to.
    pub tenant: TenantId,
    /// The subject's random, non-zero id, chosen by the gateway (zero means "no owner" on
    /// an account).
    pub id: u128,
    /// The data key wrapped by the KEK: 1 to [`WRAPPED_KEY_BYTES_MAX`] bytes.
    pub wrapped_key: Vec<u8>,
    /// The KEK version that wrapped it.
    pub kek_version: u32,
    /// At most [`FIELDS_MAX`] values, each name once.
    pub fields: Vec<FieldValue>,
    /// When the subject is created, in Unix seconds.
    pub created_at_s: u64,
}

impl fmt::Debug for NewSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSubject")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("kek_version", &self.kek_version)
            .field("fields", &self.fields)
            .field("created_at_s", &self.created_at_s)
            .finish_non_exhaustive()
    }
}

impl NewSubject {
    /// Checks the subject and its blind indexes (both backends call this first): every
    /// index names one of the subject's fields.
    pub(crate) fn check(&self, indexes: &[IndexEntry]) -> Result<(), StoreError> {
        if self.id == 0 {
            return Err(StoreError::Invalid("subject id must not be zero"));
        }
        check_wrapped_key(&self.wrapped_key)?;
        check_time(self.created_at_s)?;
        check_fields(&self.fields)?;
        check_indexes(indexes)?;
        let holds = |entry: &IndexEntry| self.fields.iter().any(|v| v.name == entry.field);
        if indexes.iter().all(holds) { Ok(()) } else { Err(index_without_field()) }
    }
}

/// A stored subject. `Debug` shows no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Its id.
    pub id: u128,
    /// The wrapped data key; empty once erased.
    pub wrapped_key: Vec<u8>,
    /// The KEK version that wrapped it; 0 once erased.
    pub kek_version: u32,
    /// The field values, sorted by name (byte order); none once erased.
    pub fields: Vec<FieldValue>,
    /// When it was created, in Unix seconds.
    pub created_at_s: u64,
    /// When its fields last changed (or it was erased), in Unix seconds.
    pub updated_at_s: u64,
    /// When it was erased, if it was.
    pub erased_at_s: Option<u64>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("wrapped_key", &"[redacted]")
            .field("kek_version", &self.kek_version)
            .field("fields", &self.fields)
            .field("created_at_s", &self.created_at_s)
            .field("updated_at_s", &self.updated_at_s)
            .field("erased_at_s", &self.erased_at_s)
            .finish()
    }
}

/// A change to a live subject's fields, applied atomically by
/// [`CoreStore::update_subject_fields`].
///
/// The blind-index rows of every field set, removed or named in `indexes_removed_fields`
/// (or in `indexes_set`) are deleted first, then `indexes_set` is written: an index never
/// outlives the value it was computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectUpdate {
    /// Values to add or replace (each name once; at most [`FIELDS_MAX`]).
    pub set: Vec<FieldValue>,
    /// Fields to remove (each name once, none also in `set`).
    pub remove: Vec<String>,
    /// Blind-index rows to write; each names a field the subject holds after the change.
    pub indexes_set: Vec<IndexEntry>,
    /// Fields whose blind-index rows are deleted though their values stay.
    pub indexes_removed_fields: Vec<String>,
}

impl SubjectUpdate {
    /// Checks names, sizes and counts (both backends call this first; the field count
    /// after the change is checked against the stored fields).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        check_fields(&self.set)?;
        check_names(&self.remove)?;
        check_names(&self.indexes_removed_fields)?;
        check_indexes(&self.indexes_set)?;
        if self.remove.iter().any(|name| self.set.iter().any(|v| &v.name == name)) {
            return Err(StoreError::Invalid("a field cannot be both set and removed"));
        }
        Ok(())
    }

    /// The fields whose blind-index rows are deleted before `indexes_set` is written,
    /// sorted, each once.
    pub(crate) fn reindexed_fields(&self) -> Vec<String> {
        let set = self.set.iter().map(|v| &v.name);
        let indexed = self.indexes_set.iter().map(|e| &e.field);
        let mut names: Vec<String> = set
            .chain(&self.remove)
            .chain(&self.indexes_removed_fields)
            .chain(indexed)
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// How many subjects are stored, for the compliance report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubjectCounts {
    /// Subjects not erased.
    pub live: u64,
    /// Tombstones of erased subjects.
    pub erased: u64,
}

/// Field and purpose names: 1 to [`NAME_LEN_MAX`] characters of `[a-z0-9_]`.
pub fn valid_name(name: &str) -> bool {
    valid_token(name, NAME_LEN_MAX)
}

/// 1 to `len_max` characters of `[a-z0-9_]`.
pub(crate) fn valid_token(token: &str, len_max: usize) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    (1..=len_max).contains(&token.len()) && token.bytes().all(allowed)
}

/// Refuses a listing `limit` above [`ROWS_MAX`].
pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit <= ROWS_MAX {
        Ok(())
    } else {
        Err(StoreError::Invalid("a listing answers at most 10000 rows"))
    }
}

/// Checks the retention query's cutoffs: at most [`CUTOFFS_MAX`], each a valid field name
/// once, times in range.
pub(crate) fn check_cutoffs(cutoffs: &[(String, u64)]) -> Result<(), StoreError> {
    if cutoffs.len() > CUTOFFS_MAX {
        return Err(StoreError::Invalid("a retention query names at most 256 fields"));
    }
    check_unique_names(cutoffs.iter().map(|(name, _)| name.as_str()))?;
    cutoffs.iter().try_for_each(|(_, cutoff_s)| check_time(*cutoff_s))
}

/// Checks a wrapped data key's size.
pub(crate) fn check_wrapped_key(wrapped_key: &[u8]) -> Result<(), StoreError> {
    if (1..=WRAPPED_KEY_BYTES_MAX).contains(&wrapped_key.len()) {
        Ok(())
    } else {
        Err(StoreError::Invalid("wrapped key must be 1 to 1024 bytes"))
    }
}

fn check_fields(fields: &[FieldValue]) -> Result<(), StoreError> {
    if fields.len() > FIELDS_MAX {
        return Err(too_many_fields());
    }
    check_unique_names(fields.iter().map(|v| v.name.as_str()))?;
    for value in fields {
        if !(1..=SEALED_FIELD_BYTES_MAX).contains(&value.sealed.len()) {
            return Err(StoreError::Invalid("a sealed field value must be 1 to 8192 bytes"));
        }
        check_time(value.updated_at_s)?;
    }
    Ok(())
}

/// At most [`FIELDS_MAX`] valid names, each once.
fn check_names(names: &[String]) -> Result<(), StoreError> {
    if names.len() > FIELDS_MAX {
        return Err(too_many_fields());
    }
    check_unique_names(names.iter().map(String::as_str))
}

/// Valid field names, each once.
fn check_unique_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
    let mut sorted: Vec<&str> = names.collect();
    if !sorted.iter().all(|name| valid_name(name)) {
        return Err(StoreError::Invalid("field names must be 1-64 characters of a-z, 0-9 and '_'"));
    }
    sorted.sort_unstable();
    if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::Invalid("a field may be named once"));
    }
    Ok(())
}

/// At most [`INDEXES_MAX`] entries on valid field names, each pair once.
fn check_indexes(indexes: &[IndexEntry]) -> Result<(), StoreError> {
    if indexes.len() > INDEXES_MAX {
        return Err(StoreError::Invalid("at most 64 blind-index rows are written at once"));
    }
    if !indexes.iter().all(|entry| valid_name(&entry.field)) {
        return Err(StoreError::Invalid("field names must be 1-64 characters of a-z, 0-9 and '_'"));
    }
    let mut pairs: Vec<(&str, &BlindIndex)> =
        indexes.iter().map(|e| (e.field.as_str(), &e.index)).collect();
    pairs.sort_unstable();
    if pairs.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::Invalid("a blind-index row may be given once"));
    }
    Ok(())
}

/// The refusal of a subject that would hold more than [`FIELDS_MAX`] fields.
pub(crate) fn too_many_fields() -> StoreError {
    StoreError::Invalid("a subject holds at most 64 fields")
}

/// The refusal of a blind index naming a field the subject does not hold.
pub(crate) fn index_without_field() -> StoreError {
    StoreError::Invalid("a blind index must name a field the subject holds")
}

/// Subjects.
impl CoreStore {
    /// Stores a new subject with its blind-index rows, atomically:
    /// [`StoreError::SubjectExists`] when `(tenant, id)` is taken (even by an erased
    /// subject), [`StoreError::NotFound`] for an unknown tenant, [`StoreError::Invalid`]
    /// for a value breaking a rule.
    pub async fn create_subject(
        &self,
        new: NewSubject,
        indexes: Vec<IndexEntry>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Embedded(store) => store.create_subject(new, indexes).await,
            Self::Postgres(core) => core.create_subject(new, indexes).await,
        }
    }

    /// The subject `(tenant, id)`, if stored; an erased one comes back with
    /// `erased_at_s` set and no key or fields.
    pub async fn subject(&self, tenant: TenantId, id: u128) -> Result<Option<Subject>, StoreError> {
        match self {
            Self::Embedded(store) => store.subject(tenant, id),
            Self::Postgres(core) => core.subject(tenant, id).await,
        }
    }

    /// Applies `update` to the live subject `(tenant, id)` at `now_s`, atomically (see
    /// [`SubjectUpdate`]), and moves its `updated_at_s` to `now_s`: `false` when there is
    /// no live subject. More than [`FIELDS_MAX`] fields after the change, or an index on a
    /// field it does not hold, is [`StoreError::Invalid`] and changes nothing.
    pub async fn update_subject_fields(
        &self,
        tenant: TenantId,
        id: u128,
        update: SubjectUpdate,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.update_subject_fields(tenant, id, update, now_s).await,
            Self::Postgres(core) => core.update_subject_fields(tenant, id, update, now_s).await,
        }
    }

    /// Crypto-shreds the live subject `(tenant, id)` at `now_s`: its wrapped key, every
    /// field value and every blind-index row are deleted and a tombstone stays. `true`
    /// when a live subject was erased, `false` otherwise (erasing twice is `false`).
    pub async fn erase_subject(
        &self,
        tenant: TenantId,
        id: u128,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.erase_subject(tenant, id, now_s).await,
            Self::Postgres(core) => core.erase_subject(tenant, id, now_s).await,
        }
    }

    /// Up to `limit` (at most [`ROWS_MAX`]) ids of `tenant`'s subjects whose `field` has
    /// the blind index `index`, in id order (several subjects may share a value).
    pub async fn subjects_by_index(
        &self,
        tenant: TenantId,
        field: &str,
        index: BlindIndex,
        limit: usize,
    ) -> Result<Vec<u128>, StoreError> {
        match self {
            Self::Embedded(store) => store.subjects_by_index(tenant, field, index, limit),
            Self::Postgres(core) => core.subjects_by_index(tenant, field, index, limit).await,
        }
    }

    /// The retention job's query: up to `limit` (at most [`ROWS_MAX`]) field values of
    /// live subjects whose `updated_at_s` is before the cutoff given for their field name,
    /// as `(tenant, subject, field)`, ordered by field name, then age, tenant and subject.
    pub async fn expired_fields(
        &self,
        cutoffs: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, String)>, StoreError> {
        match self {
            Self::Embedded(store) => store.expired_fields(cutoffs, limit),
            Self::Postgres(core) => core.expired_fields(cutoffs, limit).await,
        }
    }

    /// The KEK rotation's query: up to `limit` (at most [`ROWS_MAX`]) live subjects whose
    /// data key is wrapped by a KEK version below `kek_version`, with the wrapped key,
    /// ordered by version, tenant and id.
    pub async fn subjects_wrapped_before(
        &self,
        kek_version: u32,
        limit: usize,
    ) -> Result<Vec<(TenantId, u128, Vec<u8>)>, StoreError> {
        match self {
            Self::Embedded(store) => store.subjects_wrapped_before(kek_version, limit),
            Self::Postgres(core) => core.subjects_wrapped_before(kek_version, limit).await,
        }
    }

    /// Replaces the live subject's wrapped key with `new_wrapped` (wrapped by KEK version
    /// `new_version`) only if the stored one still equals `expected_old`
    /// (compare-and-set): `true` when it did.
    pub async fn rewrap_subject_key(
        &self,
        tenant: TenantId,
        id: u128,
        expected_old: &[u8],
        new_wrapped: Vec<u8>,
        new_version: u32,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => {
                let expected = expected_old.to_vec();
                store.rewrap_subject_key(tenant, id, expected, new_wrapped, new_version).await
            }
            Self::Postgres(core) => {
                core.rewrap_subject_key(tenant, id, expected_old, &new_wrapped, new_version).await
            }
        }
    }

    /// How many subjects are live and erased, across tenants.
    pub async fn subject_counts(&self) -> Result<SubjectCounts, StoreError> {
        match self {
            Self::Embedded(store) => store.subject_counts(),
            Self::Postgres(core) => core.subject_counts().await,
        }
    }

    /// Up to `limit` (at most [`ROWS_MAX`]) of `tenant`'s ledger accounts whose
    /// `subject_id` is `subject`, in id order (for access requests; erased subjects' too).
    pub async fn accounts_of_subject(
        &self,
        tenant: TenantId,
        subject: u128,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        match self {
            Self::Embedded(store) => store.accounts_of_subject(tenant, subject, limit),
            Self::Postgres(core) => core.accounts_of_subject(tenant, subject, limit).await,
        }
    }
}

/// Consent.
impl CoreStore {
    /// Appends `new` as the next version of its `(tenant, subject, purpose)`, atomically
    /// (concurrent appends get distinct versions): [`StoreError::NotFound`] (`"subject"`)
    /// for an unknown or erased subject, [`StoreError::Invalid`] for a value breaking a
    /// rule, or for anything but the withdrawal of a granted purpose once the subject has
    /// [`consent::CONSENTS_PER_SUBJECT_MAX`] records.
    pub async fn append_consent(&self, new: NewConsent) -> Result<Consent, StoreError> {
        match self {
            Self::Embedded(store) => store.append_consent(new).await,
            Self::Postgres(core) => core.append_consent(new).await,
        }
    }

    /// Every consent record of the subject, oldest first (by time, then purpose and
    /// version); empty for an unknown subject.
    pub async fn consent_history(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        match self {
            Self::Embedded(store) => store.consent_history(tenant, subject),
            Self::Postgres(core) => core.consent_history(tenant, subject).await,
        }
    }

    /// The subject's current consent per purpose (its highest version), by purpose.
    pub async fn current_consents(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        match self {
            Self::Embedded(store) => store.current_consents(tenant, subject),
            Self::Postgres(core) => core.current_consents(tenant, subject).await,
        }
    }

    /// Per purpose (in byte order), how many current consents are granted and withdrawn,
    /// across tenants and subjects (erased subjects' included: their history stays).
    pub async fn consent_counts(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        match self {
            Self::Embedded(store) => store.consent_counts(),
            Self::Postgres(core) => core.consent_counts().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str) -> FieldValue {
        FieldValue { name: name.into(), sealed: vec![0xab; 40], updated_at_s: 1_900_000_000 }
    }

    fn subject() -> NewSubject {
        NewSubject {
            tenant: 1,
            id: 7,
            wrapped_key: vec![0xcd; 100],
            kek_version: 1,
            fields: vec![value("email"), value("phone")],
            created_at_s: 1_900_000_000,
        }
    }

    fn entry(field: &str, byte: u8) -> IndexEntry {
        IndexEntry { field: field.into(), index: [byte; BLIND_INDEX_LEN] }
    }

    #[test]
    fn name_rule() {
        for good in ["email", "id_number", "a", "x9", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Email", "e-mail", "e mail", "émail", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn new_subject_rules() {
        assert!(subject().check(&[entry("email", 1), entry("email", 2)]).is_ok());
        let broken: [fn(&mut NewSubject); 9] = [
            |s| s.id = 0,
            |s| s.wrapped_key.clear(),
            |s| s.wrapped_key = vec![0; WRAPPED_KEY_BYTES_MAX + 1],
            |s| s.created_at_s = u64::MAX,
            |s| s.fields.push(value("email")),
            |s| s.fields[0].sealed.clear(),
            |s| s.fields[0].sealed = vec![0; SEALED_FIELD_BYTES_MAX + 1],
            |s| s.fields[0].name = "Email".into(),
            |s| s.fields = (0..=FIELDS_MAX).map(|n| value(&format!("f{n}"))).collect(),
        ];
        for breaks in broken {
            let mut bad = subject();
            breaks(&mut bad);
            assert!(matches!(bad.check(&[]), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        for indexes in [vec![entry("address", 1)], vec![entry("email", 1), entry("email", 1)]] {
            assert!(matches!(subject().check(&indexes), Err(StoreError::Invalid(_))));
        }
    }

    #[test]
    fn update_rules_and_reindexed_fields() {
        let update = SubjectUpdate {
            set: vec![value("phone")],
            remove: vec!["address".into()],
            indexes_set: vec![entry("email", 3)],
            indexes_removed_fields: vec!["id_number".into(), "phone".into()],
        };
        assert!(update.check().is_ok());
        assert_eq!(update.reindexed_fields(), ["address", "email", "id_number", "phone"]);
        let both = SubjectUpdate { remove: vec!["phone".into()], ..update.clone() };
        assert!(matches!(both.check(), Err(StoreError::Invalid(_))));
        let twice = SubjectUpdate { remove: vec!["x".into(), "x".into()], ..update };
        assert!(matches!(twice.check(), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn limits_and_cutoffs() {
        assert!(check_limit(ROWS_MAX).is_ok() && check_limit(ROWS_MAX + 1).is_err());
        assert!(check_cutoffs(&[("email".into(), 5), ("phone".into(), 6)]).is_ok());
        assert!(check_cutoffs(&[("email".into(), 5), ("email".into(), 6)]).is_err());
        assert!(check_cutoffs(&[("email".into(), u64::MAX)]).is_err());
        let many: Vec<(String, u64)> = (0..=CUTOFFS_MAX).map(|n| (format!("f{n}"), 1)).collect();
        assert!(check_cutoffs(&many).is_err());
    }

    #[test]
    fn debug_shows_no_bytes() {
        let stored = Subject {
            tenant: 1,
            id: 7,
            wrapped_key: vec![0xcd; 4],
            kek_version: 1,
            fields: vec![value("email")],
            created_at_s: 1,
            updated_at_s: 2,
            erased_at_s: None,
        };
        let texts =
            [format!("{stored:?}"), format!("{:?}", subject()), format!("{:?}", entry("x", 9))];
        for text in texts {
            assert!(
                !text.contains("171") && !text.contains("205") && !text.contains("[9"),
                "{text}"
            );
        }
    }
}
