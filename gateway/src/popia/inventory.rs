//! The data inventory (`docs/popia/inventory.toml`, embedded at build time): every
//! personal-information field the vault accepts, its purpose, lawful basis, retention
//! period and whether it may leave South Africa, and the purposes themselves.
//!
//! [`Inventory::embedded`] parses and checks it once at start (a broken inventory stops
//! the gateway); [`Inventory::check_value`] checks one value against its field's kind and
//! length. Nothing here stores, logs or echoes a value: errors name the field and the
//! rule.

use std::collections::BTreeSet;

use crypto::blind_index;
use serde::Deserialize;

/// The inventory this build carries.
const EMBEDDED: &str = include_str!("../../../docs/popia/inventory.toml");
/// The inventory format this build reads.
const VERSION: u32 = 1;
/// The most fields a subject may have (storage's bound too).
pub const FIELDS_MAX: usize = 64;
/// The longest value any field may declare, in characters.
const VALUE_CHARS_MAX: usize = 4096;
/// The longest retention period, in days (100 years).
const RETENTION_DAYS_MAX: u32 = 36_500;

/// The lawful bases of POPIA s.11(1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    /// (a) The data subject consents.
    Consent,
    /// (b) Necessary for a contract with the data subject.
    Contract,
    /// (c) Required by law.
    LegalObligation,
    /// (d) Protects a legitimate interest of the data subject.
    SubjectInterest,
    /// (e) Necessary for a public body's duty.
    PublicDuty,
    /// (f) Necessary for the legitimate interests of the responsible party or a third party.
    LegitimateInterest,
}

impl LawfulBasis {
    /// The basis's name, as in the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::SubjectInterest => "subject_interest",
            Self::PublicDuty => "public_duty",
            Self::LegitimateInterest => "legitimate_interest",
        }
    }

    /// Where POPIA provides it.
    pub fn section(self) -> &'static str {
        match self {
            Self::Consent => "s.11(1)(a)",
            Self::Contract => "s.11(1)(b)",
            Self::LegalObligation => "s.11(1)(c)",
            Self::SubjectInterest => "s.11(1)(d)",
            Self::PublicDuty => "s.11(1)(e)",
            Self::LegitimateInterest => "s.11(1)(f)",
        }
    }
}

/// What a field holds: decides its checks and its blind-index normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (no control characters).
    Text,
    /// An email address.
    Email,
    /// A phone number in international form.
    Phone,
    /// An identity or passport number.
    NationalId,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An ISO 3166-1 alpha-2 country code.
    Country,
}

impl FieldKind {
    /// The blind-index normalisation of the kind, where it has one.
    pub fn index_kind(self) -> Option<blind_index::Kind> {
        match self {
            Self::Email => Some(blind_index::Kind::Email),
            Self::Phone => Some(blind_index::Kind::Phone),
            Self::NationalId => Some(blind_index::Kind::NationalId),
            Self::Text | Self::Date | Self::Country => None,
        }
    }
}

/// A purpose of processing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Its name (1-64 of `a-z 0-9 _`).
    pub name: String,
    /// Its lawful basis.
    pub lawful_basis: LawfulBasis,
    /// Whether it is direct marketing (s.69: explicit opt-in only).
    #[serde(default)]
    pub direct_marketing: bool,
    /// What it is, for people.
    pub description: String,
}

/// A declared personal-information field.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Its name (1-64 of `a-z 0-9 _`).
    pub name: String,
    /// What it holds.
    pub kind: FieldKind,
    /// The purpose it is processed for.
    pub purpose: String,
    /// Days it is kept after it was last set.
    pub retention_days: u32,
    /// Whether it may be transferred outside South Africa (s.72).
    pub cross_border: bool,
    /// Whether subjects can be looked up by it.
    #[serde(default)]
    pub blind_index: bool,
    /// Its longest value, in characters.
    pub max_len: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    purpose: Vec<Purpose>,
    field: Vec<Field>,
}

/// The checked inventory.
#[derive(Clone, Debug)]
pub struct Inventory {
    purposes: Vec<Purpose>,
    fields: Vec<Field>,
}

/// Why the inventory is unusable (names the entry and the rule).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Not the TOML the module doc describes.
    #[error("data inventory: {0}")]
    Malformed(String),
    /// An entry breaks a rule.
    #[error("data inventory: {entry}: {rule}")]
    Invalid {
        /// The purpose or field.
        entry: String,
        /// What is wrong.
        rule: &'static str,
    },
}

/// Why a value does not fit its field (never carries the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Empty, or only spaces.
    #[error("must not be empty")]
    Empty,
    /// Longer than the field allows.
    #[error("is longer than the field allows")]
    TooLong,
    /// Not a value of the field's kind.
    #[error("is not a valid {0}")]
    Invalid(&'static str),
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn invalid(entry: &str, rule: &'static str) -> InventoryError {
    InventoryError::Invalid { entry: entry.to_owned(), rule }
}

impl Inventory {
    /// The inventory embedded in this build.
    pub fn embedded() -> Result<Self, InventoryError> {
        Self::parse(EMBEDDED)
    }

    /// Parses and checks an inventory.
    pub fn parse(text: &str) -> Result<Self, InventoryError> {
        let document: Document =
            toml::from_str(text).map_err(|e| InventoryError::Malformed(e.to_string()))?;
        if document.version != VERSION {
            return Err(invalid("version", "this build reads version 1"));
        }
        check_purposes(&document.purpose)?;
        check_fields(&document.field, &document.purpose)?;
        Ok(Self { purposes: document.purpose, fields: document.field })
    }

    /// Every purpose.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    /// Every field.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The purpose named `name`.
    pub fn purpose(&self, name: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|purpose| purpose.name == name)
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// Checks `value` against `field`'s kind and length.
    pub fn check_value(field: &Field, value: &str) -> Result<(), ValueError> {
        if value.trim().is_empty() {
            return Err(ValueError::Empty);
        }
        if value.chars().count() > field.max_len {
            return Err(ValueError::TooLong);
        }
        match field.kind {
            FieldKind::Text => text(value),
            FieldKind::Date => date(value),
            FieldKind::Country => country(value),
            kind => match kind.index_kind().map(|k| blind_index::normalise(k, value)) {
                Some(Ok(_)) | None => Ok(()),
                Some(Err(blind_index::NormaliseError::TooLong)) => Err(ValueError::TooLong),
                Some(Err(blind_index::NormaliseError::Invalid(what))) => {
                    Err(ValueError::Invalid(what))
                }
            },
        }
    }
}

fn check_purposes(purposes: &[Purpose]) -> Result<(), InventoryError> {
    let mut names = BTreeSet::new();
    for purpose in purposes {
        let name = &purpose.name;
        if !valid_name(name) {
            return Err(invalid(name, "a purpose name is 1-64 of a-z, 0-9 and _"));
        }
        if !names.insert(name.as_str()) {
            return Err(invalid(name, "declared twice"));
        }
        if purpose.direct_marketing && purpose.lawful_basis != LawfulBasis::Consent {
            return Err(invalid(name, "direct marketing needs consent as its lawful basis (s.69)"));
        }
    }
    Ok(())
}

fn check_fields(fields: &[Field], purposes: &[Purpose]) -> Result<(), InventoryError> {
    if fields.len() > FIELDS_MAX {
        return Err(invalid("field", "at most 64 fields"));
    }
    let mut names = BTreeSet::new();
    for field in fields {
        let name = &field.name;
        if !valid_name(name) {
            return Err(invalid(name, "a field name is 1-64 of a-z, 0-9 and _"));
        }
        if !names.insert(name.as_str()) {
            return Err(invalid(name, "declared twice"));
        }
        if !purposes.iter().any(|purpose| purpose.name == field.purpose) {
            return Err(invalid(name, "its purpose is not declared"));
        }
        if !(1..=RETENTION_DAYS_MAX).contains(&field.retention_days) {
            return Err(invalid(name, "retention_days must be from 1 to 36500"));
        }
        if !(1..=VALUE_CHARS_MAX).contains(&field.max_len) {
            return Err(invalid(name, "max_len must be from 1 to 4096"));
        }
        if field.blind_index && field.kind.index_kind().is_none() {
            return Err(invalid(
                name,
                "only email, phone and national_id fields have blind indexes",
            ));
        }
    }
    Ok(())
}

fn text(value: &str) -> Result<(), ValueError> {
    if value.chars().any(char::is_control) {
        Err(ValueError::Invalid("text without control characters"))
    } else {
        Ok(())
    }
}

fn date(value: &str) -> Result<(), ValueError> {
    let invalid = ValueError::Invalid("date (YYYY-MM-DD)");
    let bytes = value.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return Err(invalid);
    }
    let number = |range: std::ops::Range<usize>| value[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(invalid),
    };
    if year >= 1800 && (1..=days).contains(&day) { Ok(()) } else { Err(invalid) }
}

fn country(value: &str) -> Result<(), ValueError> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ValueError::Invalid("country code (ISO 3166-1 alpha-2, e.g. ZA)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_inventory_is_valid() {
        let inventory = Inventory::embedded().unwrap();
        let marketing = inventory.purpose("direct_marketing").unwrap();
        assert!(marketing.direct_marketing && marketing.lawful_basis == LawfulBasis::Consent);
        let email = inventory.field("email").unwrap();
        assert!(email.blind_index && email.kind == FieldKind::Email);
        for field in inventory.fields() {
            assert!(inventory.purpose(&field.purpose).is_some(), "{}", field.name);
        }
    }

    #[test]
    fn broken_inventories_name_the_entry() {
        let good = EMBEDDED;
        let cases = [
            (good.replace("version = 1", "version = 2"), "version"),
            (good.replacen("name = \"email\"", "name = \"full_name\"", 1), "full_name"),
            (
                good.replacen("purpose = \"fraud_prevention\"", "purpose = \"nothing\"", 1),
                "device_fingerprint",
            ),
            (
                good.replace("lawful_basis = \"consent\"", "lawful_basis = \"contract\""),
                "direct_marketing",
            ),
            (good.replacen("retention_days = 365", "retention_days = 0", 1), "device_fingerprint"),
        ];
        for (text, entry) in cases {
            match Inventory::parse(&text) {
                Err(InventoryError::Invalid { entry: got, .. }) => assert_eq!(got, entry),
                other => panic!("{entry}: {other:?}"),
            }
        }
        assert!(matches!(Inventory::parse("version = 1"), Err(InventoryError::Malformed(_))));
        let extra = format!("{good}\n[[field]]\nname = \"x\"\nsecret = 1\n");
        assert!(matches!(Inventory::parse(&extra), Err(InventoryError::Malformed(_))));
    }

    #[test]
    fn values_are_checked_against_their_kind() {
        let inventory = Inventory::embedded().unwrap();
        let check = |field: &str, value: &str| {
            Inventory::check_value(inventory.field(field).unwrap(), value)
        };
        assert_eq!(check("full_name", "Thandi Mokoena"), Ok(()));
        assert_eq!(check("full_name", "  "), Err(ValueError::Empty));
        assert_eq!(check("full_name", &"x".repeat(201)), Err(ValueError::TooLong));
        assert!(check("full_name", "a\u{0}b").is_err());
        assert_eq!(check("email", "Thandi@Example.co.za"), Ok(()));
        assert!(check("email", "not an email").is_err());
        assert_eq!(check("phone", "+27 82 555 0101"), Ok(()));
        assert!(check("phone", "082 555 0101").is_err());
        assert_eq!(check("date_of_birth", "2000-02-29"), Ok(()));
        for bad in ["1999-02-29", "2000-13-01", "2000-1-01", "20000101"] {
            assert!(check("date_of_birth", bad).is_err(), "{bad}");
        }
        assert_eq!(check("country", "ZA"), Ok(()));
        assert!(check("country", "za").is_err());
    }
}
