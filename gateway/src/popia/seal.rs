//! Sealing and opening a data subject's personal information (ADR 0008): what the vault
//! does with keys, before storage sees anything.
//!
//! A subject gets a 256-bit data key from the OS generator, wrapped with the KEK
//! (associated data `protea:subject:<tenant>:<subject>`); each field value is sealed with
//! that data key as a one-version key ring named `sk-<subject>` (associated data
//! `protea:field:<name>`), so every ciphertext names its key and cannot be moved to
//! another field or subject. Blind indexes are computed with the keys document's
//! blind-index key. Everything here is pure (no I/O) and nothing here logs or returns a
//! value in an error: errors name the field and the rule.

use std::collections::BTreeMap;

use crypto::blind_index::BlindIndexKey;
use crypto::envelope::{self, KeyRing};
use storage::ledger::TenantId;
use storage::vault::{BlindIndex, FieldValue, IndexEntry, NewSubject, Subject, SubjectUpdate};

use crate::keys::Keys;
use crate::popia::inventory::{Field, Inventory, ValueError};

/// Field values in clear, by field name.
pub type Values = BTreeMap<String, String>;

/// Why personal information could not be sealed or opened. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A field the inventory does not declare.
    #[error("{0} is not a field of the data inventory")]
    UnknownField(String),
    /// A value that does not fit its field.
    #[error("{field} {error}")]
    InvalidValue {
        /// The field.
        field: String,
        /// What is wrong with the value.
        error: ValueError,
    },
    /// A request with no field at all.
    #[error("a subject needs at least one field")]
    NoFields,
    /// An indexed field, and the keys document has no blind-index key.
    #[error("the keys document has no blind-index key")]
    NoBlindIndexKey,
    /// Sealing or opening failed (a wrong key, a damaged value, the OS generator).
    #[error("personal information could not be sealed or opened ({0})")]
    Crypto(&'static str),
}

/// The associated data a subject's wrapped data key is sealed with.
pub fn subject_aad(tenant: TenantId, subject: u128) -> Vec<u8> {
    format!("protea:subject:{tenant}:{subject:032x}").into_bytes()
}

/// The associated data a field value is sealed with.
pub fn field_aad(name: &str) -> Vec<u8> {
    format!("protea:field:{name}").into_bytes()
}

fn data_key_id(subject: u128) -> String {
    format!("sk-{subject:032x}")
}

fn crypto_error(error: envelope::EnvelopeError) -> SealError {
    SealError::Crypto(error.code())
}

/// The inventory entry of each named field, every value checked against it.
pub fn check_values<'i>(
    inventory: &'i Inventory,
    values: &Values,
) -> Result<Vec<(&'i Field, String)>, SealError> {
    let mut checked = Vec::with_capacity(values.len());
    for (name, value) in values {
        let field = inventory.field(name).ok_or_else(|| SealError::UnknownField(name.clone()))?;
        Inventory::check_value(field, value)
            .map_err(|error| SealError::InvalidValue { field: name.clone(), error })?;
        checked.push((field, value.clone()));
    }
    Ok(checked)
}

/// A new subject `id` of `tenant` holding `values`: its data key generated and wrapped,
/// every value sealed, and the blind indexes of its indexed fields.
pub fn new_subject(
    keys: &Keys,
    inventory: &Inventory,
    tenant: TenantId,
    id: u128,
    values: &Values,
    now_s: u64,
) -> Result<(NewSubject, Vec<IndexEntry>), SealError> {
    if values.is_empty() {
        return Err(SealError::NoFields);
    }
    let checked = check_values(inventory, values)?;
    let (ring, data_key) = KeyRing::generate(&data_key_id(id)).map_err(crypto_error)?;
    let wrapped_key = keys.kek.seal(&data_key, &subject_aad(tenant, id)).map_err(crypto_error)?;
    let fields = seal_values(&ring, &checked, now_s)?;
    let indexes = index_entries(keys.blind_index.as_ref(), &checked)?;
    let kek_version = keys.kek.current_version();
    Ok((NewSubject { tenant, id, wrapped_key, kek_version, fields, created_at_s: now_s }, indexes))
}

fn seal_values(
    ring: &KeyRing,
    checked: &[(&Field, String)],
    now_s: u64,
) -> Result<Vec<FieldValue>, SealError> {
    checked
        .iter()
        .map(|(field, value)| {
            let sealed =
                ring.seal(value.as_bytes(), &field_aad(&field.name)).map_err(crypto_error)?;
            Ok(FieldValue { name: field.name.clone(), sealed, updated_at_s: now_s })
        })
        .collect()
}

fn index_entries(
    key: Option<&BlindIndexKey>,
    checked: &[(&Field, String)],
) -> Result<Vec<IndexEntry>, SealError> {
    let mut entries = Vec::new();
    for (field, value) in checked.iter().filter(|(field, _)| field.blind_index) {
        let index = blind_index(key, field, value)?;
        entries.push(IndexEntry { field: field.name.clone(), index });
    }
    Ok(entries)
}

/// The blind index of `value` in `field` (a search, or a field being stored).
pub fn blind_index(
    key: Option<&BlindIndexKey>,
    field: &Field,
    value: &str,
) -> Result<BlindIndex, SealError> {
    let key = key.ok_or(SealError::NoBlindIndexKey)?;
    let kind =
        field.kind.index_kind().ok_or_else(|| SealError::UnknownField(field.name.clone()))?;
    key.index(&field.name, kind, value).map_err(|error| SealError::InvalidValue {
        field: field.name.clone(),
        error: match error {
            crypto::blind_index::NormaliseError::TooLong => ValueError::TooLong,
            crypto::blind_index::NormaliseError::Invalid(what) => ValueError::Invalid(what),
        },
    })
}

/// The subject's data key, unwrapped, as the key ring its fields are sealed with.
fn data_ring(keys: &Keys, subject: &Subject) -> Result<KeyRing, SealError> {
    let key = keys
        .kek
        .open(&subject.wrapped_key, &subject_aad(subject.tenant, subject.id))
        .map_err(crypto_error)?;
    let key: [u8; envelope::KEY_LEN] =
        key.try_into().map_err(|_| SealError::Crypto("data_key_length"))?;
    KeyRing::new(&data_key_id(subject.id), 1, vec![(1, key)]).map_err(crypto_error)
}

/// Every field value of a live subject, in clear.
pub fn open(keys: &Keys, subject: &Subject) -> Result<Values, SealError> {
    let ring = data_ring(keys, subject)?;
    subject
        .fields
        .iter()
        .map(|field| {
            let plain = ring.open(&field.sealed, &field_aad(&field.name)).map_err(crypto_error)?;
            let text = String::from_utf8(plain).map_err(|_| SealError::Crypto("not_utf8"))?;
            Ok((field.name.clone(), text))
        })
        .collect()
}

/// One corrected field: its sealed value before and after (both under the subject's data
/// key, so they vanish with it), for the audit trail.
#[derive(Clone, PartialEq, Eq)]
pub struct Correction {
    /// The field.
    pub field: String,
    /// Its sealed value before (empty when it was added).
    pub before: Vec<u8>,
    /// Its sealed value after (empty when it was removed).
    pub after: Vec<u8>,
}

impl std::fmt::Debug for Correction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correction").field("field", &self.field).finish_non_exhaustive()
    }
}

/// The change that sets `set` and removes `remove` on a live subject, with its blind
/// indexes, and what each corrected field was and becomes (sealed).
pub fn correction(
    keys: &Keys,
    inventory: &Inventory,
    subject: &Subject,
    set: &Values,
    remove: &[String],
    now_s: u64,
) -> Result<(SubjectUpdate, Vec<Correction>), SealError> {
    let checked = check_values(inventory, set)?;
    for name in remove {
        inventory.field(name).ok_or_else(|| SealError::UnknownField(name.clone()))?;
    }
    let ring = data_ring(keys, subject)?;
    let sealed = seal_values(&ring, &checked, now_s)?;
    let before = |name: &str| {
        subject.fields.iter().find(|f| f.name == name).map(|f| f.sealed.clone()).unwrap_or_default()
    };
    let mut corrections: Vec<Correction> = sealed
        .iter()
        .map(|value| Correction {
            field: value.name.clone(),
            before: before(&value.name),
            after: value.sealed.clone(),
        })
        .collect();
    corrections.extend(remove.iter().map(|name| Correction {
        field: name.clone(),
        before: before(name),
        after: Vec::new(),
    }));
    let update = SubjectUpdate {
        set: sealed,
        remove: remove.to_vec(),
        indexes_set: index_entries(keys.blind_index.as_ref(), &checked)?,
        indexes_removed_fields: Vec::new(),
    };
    Ok((update, corrections))
}

/// A fresh random subject id (never zero: zero means "no owner" on an account).
pub fn new_subject_id() -> Result<u128, SealError> {
    let nonce = crypto::signature::random_nonce().map_err(|_| SealError::Crypto("random"))?;
    let id = u128::from_str_radix(&nonce, 16).map_err(|_| SealError::Crypto("random"))?;
    Ok(id.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        crate::keys::parse(&crate::keys::generate_document().unwrap()).unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn stored(new: NewSubject) -> Subject {
        Subject {
            tenant: new.tenant,
            id: new.id,
            wrapped_key: new.wrapped_key,
            kek_version: new.kek_version,
            fields: new.fields,
            created_at_s: new.created_at_s,
            updated_at_s: new.created_at_s,
            erased_at_s: None,
        }
    }

    #[test]
    fn values_round_trip_and_ciphertexts_name_their_key() {
        let (keys, inventory) = (keys(), Inventory::embedded().unwrap());
        let given = values(&[("full_name", "Thandi Mokoena"), ("email", "thandi@example.co.za")]);
        let (new, indexes) = new_subject(&keys, &inventory, 7, 42, &given, 100).unwrap();
        assert_eq!(indexes.len(), 1, "email is indexed, the name is not");
        for field in &new.fields {
            assert_eq!(envelope::sealed_by(&field.sealed).unwrap(), (data_key_id(42).as_str(), 1));
            let text = String::from_utf8_lossy(&field.sealed);
            assert!(!text.contains("Thandi") && !text.contains("example"), "sealed: {text}");
        }
        assert_eq!(envelope::sealed_by(&new.wrapped_key).unwrap().0, "protea-kek");
        assert_eq!(open(&keys, &stored(new.clone())).unwrap(), given);
        let mut moved = stored(new);
        moved.id = 43;
        assert!(open(&keys, &moved).is_err(), "a wrapped key is bound to its subject");
    }

    #[test]
    fn undeclared_or_invalid_fields_are_named() {
        let (keys, inventory) = (keys(), Inventory::embedded().unwrap());
        let unknown = new_subject(&keys, &inventory, 7, 1, &values(&[("shoe_size", "9")]), 0);
        assert!(matches!(unknown, Err(SealError::UnknownField(name)) if name == "shoe_size"));
        let bad = new_subject(&keys, &inventory, 7, 1, &values(&[("email", "nope")]), 0);
        assert!(matches!(bad, Err(SealError::InvalidValue { field, .. }) if field == "email"));
        assert!(matches!(
            new_subject(&keys, &inventory, 7, 1, &Values::new(), 0),
            Err(SealError::NoFields)
        ));
    }

    #[test]
    fn a_correction_seals_before_and_after_and_reindexes() {
        let (keys, inventory) = (keys(), Inventory::embedded().unwrap());
        let given = values(&[("email", "a@example.com"), ("city", "Durban")]);
        let (new, _) = new_subject(&keys, &inventory, 7, 9, &given, 100).unwrap();
        let subject = stored(new);
        let set = values(&[("email", "b@example.com")]);
        let (update, corrections) =
            correction(&keys, &inventory, &subject, &set, &["city".to_owned()], 200).unwrap();
        assert_eq!(update.indexes_set.len(), 1);
        assert_eq!(corrections.len(), 2);
        let email = &corrections[0];
        assert_eq!(email.field, "email");
        assert!(!email.before.is_empty() && !email.after.is_empty() && email.before != email.after);
        assert!(corrections[1].after.is_empty(), "a removed field has no after");
    }
}
