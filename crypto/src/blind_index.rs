//! Blind indexes: keyed HMAC-SHA256 digests of normalised personal-information values, so
//! a subject can be found by email, phone or national id number without decrypting every
//! record and without storing the value in clear.
//!
//! The index of a value is the first 16 bytes of HMAC-SHA256 under the blind-index key of
//! `field name || 0x00 || normalised value`: the same value in two fields indexes
//! differently, and two spellings of one value (`Ann@Example.com `, `ann@example.com`)
//! index alike. Normalisation refuses what is not a value of its kind rather than
//! guessing. Without the key an index reveals nothing; with it, a guessed value can be
//! confirmed, so the key is kept like the KEK. This module does no I/O, and its `Debug`
//! output never shows the key.

use ring::hmac;

/// Bytes of an index.
pub const INDEX_LEN: usize = 16;
/// The length of a blind-index key, in bytes.
pub const KEY_LEN: usize = 32;
/// The longest value accepted, in bytes (before normalisation).
pub const VALUE_BYTES_MAX: usize = 320;

/// A blind index.
pub type Index = [u8; INDEX_LEN];

/// What kind of value a field holds, which decides its normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An email address: trimmed, lower case; one `@` with text either side.
    Email,
    /// A phone number in international form: a `+` and 7 to 15 digits; spaces, dashes,
    /// dots and brackets are dropped.
    Phone,
    /// An identity or passport number: 4 to 32 letters and digits, upper case; spaces
    /// and dashes are dropped.
    NationalId,
}

/// Why a value cannot be indexed. Never carries the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NormaliseError {
    /// Longer than [`VALUE_BYTES_MAX`].
    #[error("the value is too long")]
    TooLong,
    /// Not a value of its kind; the payload names the kind.
    #[error("the value is not a valid {0}")]
    Invalid(&'static str),
}

/// The blind-index key, made once and reused.
pub struct BlindIndexKey {
    id: String,
    key: hmac::Key,
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindIndexKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl BlindIndexKey {
    /// A key named `id` from 32 secret bytes.
    pub fn new(id: &str, key: &[u8; KEY_LEN]) -> Self {
        Self { id: id.to_owned(), key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// The key's id (stored beside nothing: it names the key for operators).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The index of `value` in `field`, after normalising it as `kind`.
    pub fn index(&self, field: &str, kind: Kind, value: &str) -> Result<Index, NormaliseError> {
        let normalised = normalise(kind, value)?;
        let mut message = Vec::with_capacity(field.len() + 1 + normalised.len());
        message.extend_from_slice(field.as_bytes());
        message.push(0);
        message.extend_from_slice(normalised.as_bytes());
        let tag = hmac::sign(&self.key, &message);
        let mut index = [0u8; INDEX_LEN];
        index.copy_from_slice(&tag.as_ref()[..INDEX_LEN]);
        Ok(index)
    }
}

/// The normal form of `value` as `kind`.
pub fn normalise(kind: Kind, value: &str) -> Result<String, NormaliseError> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(NormaliseError::TooLong);
    }
    match kind {
        Kind::Email => email(value),
        Kind::Phone => phone(value),
        Kind::NationalId => national_id(value),
    }
}

fn email(value: &str) -> Result<String, NormaliseError> {
    let normal = value.trim().to_lowercase();
    let valid = matches!(normal.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !normal.chars().any(char::is_whitespace);
    valid.then_some(normal).ok_or(NormaliseError::Invalid("email address"))
}

fn phone(value: &str) -> Result<String, NormaliseError> {
    let trimmed = value.trim();
    let rest = trimmed.strip_prefix('+').ok_or(NormaliseError::Invalid("phone number"))?;
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(NormaliseError::Invalid("phone number")),
        }
    }
    if (7..=15).contains(&digits.len()) && !digits.starts_with('0') {
        Ok(format!("+{digits}"))
    } else {
        Err(NormaliseError::Invalid("phone number"))
    }
}

fn national_id(value: &str) -> Result<String, NormaliseError> {
    let mut normal = String::with_capacity(value.len());
    for c in value.trim().chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => normal.push(c.to_ascii_uppercase()),
            ' ' | '-' => {}
            _ => return Err(NormaliseError::Invalid("identity number")),
        }
    }
    if (4..=32).contains(&normal.len()) {
        Ok(normal)
    } else {
        Err(NormaliseError::Invalid("identity number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BlindIndexKey {
        BlindIndexKey::new("bi-1", &[7; KEY_LEN])
    }

    #[test]
    fn spellings_of_one_value_index_alike() {
        let key = key();
        let a = key.index("email", Kind::Email, " Ann@Example.COM ").unwrap();
        assert_eq!(a, key.index("email", Kind::Email, "ann@example.com").unwrap());
        let p = key.index("phone", Kind::Phone, "+27 (82) 555-0101").unwrap();
        assert_eq!(p, key.index("phone", Kind::Phone, "+27825550101").unwrap());
        let n = key.index("national_id", Kind::NationalId, "8001015009 087").unwrap();
        assert_eq!(n, key.index("national_id", Kind::NationalId, "8001015009087").unwrap());
    }

    #[test]
    fn fields_keys_and_values_keep_indexes_apart() {
        let key = key();
        let email = key.index("email", Kind::Email, "ann@example.com").unwrap();
        assert_ne!(email, key.index("work_email", Kind::Email, "ann@example.com").unwrap());
        assert_ne!(email, key.index("email", Kind::Email, "bob@example.com").unwrap());
        let other = BlindIndexKey::new("bi-2", &[8; KEY_LEN]);
        assert_ne!(email, other.index("email", Kind::Email, "ann@example.com").unwrap());
    }

    #[test]
    fn a_known_answer() {
        // python3 -c "import hmac,hashlib; print(hmac.new(bytes([7])*32,
        //   b'email\x00ann@example.com', hashlib.sha256).hexdigest()[:32])"
        let index = key().index("email", Kind::Email, "Ann@example.com").unwrap();
        let hex: String = index.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "9daa5146a736f7f73a1003d3ef961c48");
    }

    #[test]
    fn what_is_not_a_value_of_its_kind_is_refused() {
        let invalid = |kind, value| normalise(kind, value).is_err();
        for value in ["", "ann", "@example.com", "ann@", "a@b@c", "ann @example.com"] {
            assert!(invalid(Kind::Email, value), "{value:?}");
        }
        for value in ["0825550101", "+0825550101", "+27 82 555 01a1", "+123", "+1234567890123456"] {
            assert!(invalid(Kind::Phone, value), "{value:?}");
        }
        for value in ["", "12", "8001/015009", &"9".repeat(33)] {
            assert!(invalid(Kind::NationalId, value), "{value:?}");
        }
        assert_eq!(normalise(Kind::Email, &"a".repeat(321)), Err(NormaliseError::TooLong));
        assert!(!format!("{:?}", key()).contains('7'));
    }
}
