//! Big-endian, length-prefixed byte layouts: the audit trail's canonical encoding, and the
//! embedded store's rows of the trail and the compliance registers.
//!
//! A layout starts with a version byte. Integers are big-endian; an optional value is a
//! tag byte (0 absent, 1 present) followed by the value when present; text and byte strings
//! are a 4-byte big-endian length and the bytes. So every field delimits itself and one
//! value has exactly one encoding.
//!
//! Writing never fails: every field was bounded by its record's rules before. Reading
//! checks every length against the end and refuses a bad tag, invalid UTF-8 and trailing
//! bytes as [`StoreError::Corrupt`]; it never panics on stored bytes.

use crate::error::StoreError;

/// A layout under construction.
pub(crate) struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// A layout whose first byte is `version`.
    pub(crate) fn new(version: u8) -> Self {
        Self { buf: vec![version] }
    }

    /// Appends raw bytes (fixed-width fields).
    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// One byte.
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.put(&[value])
    }

    /// 4 bytes, big-endian.
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.put(&value.to_be_bytes())
    }

    /// 8 bytes, big-endian.
    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.put(&value.to_be_bytes())
    }

    /// 16 bytes, big-endian.
    pub(crate) fn u128(&mut self, value: u128) -> &mut Self {
        self.put(&value.to_be_bytes())
    }

    /// A 4-byte big-endian length, then the bytes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).expect("record fields are bounded far below 4 GiB");
        self.u32(len).put(bytes)
    }

    /// UTF-8 text as [`Encoder::bytes`].
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    /// A tag byte, then the value when present.
    pub(crate) fn optional_u64(&mut self, value: Option<u64>) -> &mut Self {
        match value {
            Some(value) => self.u8(1).u64(value),
            None => self.u8(0),
        }
    }

    /// A tag byte, then the value when present.
    pub(crate) fn optional_u128(&mut self, value: Option<u128>) -> &mut Self {
        match value {
            Some(value) => self.u8(1).u128(value),
            None => self.u8(0),
        }
    }

    /// A tag byte, then the text when present.
    pub(crate) fn optional_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(text) => self.u8(1).text(text),
            None => self.u8(0),
        }
    }

    /// The bytes written.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads a layout, every read checked against the end.
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    record: &'static str,
}

impl<'a> Decoder<'a> {
    /// A reader of a `record` layout that must start with `version`.
    pub(crate) fn new(
        bytes: &'a [u8],
        version: u8,
        record: &'static str,
    ) -> Result<Self, StoreError> {
        match bytes.first() {
            Some(&first) if first == version => Ok(Self { bytes, at: 1, record }),
            Some(_) => Err(corrupt(record, "version byte")),
            None => Err(corrupt(record, "length")),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt(self.record, "length"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// `N` raw bytes.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let record = self.record;
        self.take(N)?.try_into().map_err(|_| corrupt(record, "length"))
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    /// 4 bytes, big-endian.
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// 8 bytes, big-endian.
    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// 16 bytes, big-endian.
    pub(crate) fn u128(&mut self) -> Result<u128, StoreError> {
        Ok(u128::from_be_bytes(self.array()?))
    }

    /// A length of at most `len_max`, then the bytes.
    pub(crate) fn bytes(&mut self, len_max: usize) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.u32()?).map_err(|_| corrupt(self.record, "length"))?;
        if len > len_max {
            return Err(corrupt(self.record, "field length"));
        }
        self.take(len)
    }

    /// UTF-8 text of at most `len_max` bytes.
    pub(crate) fn text(&mut self, len_max: usize) -> Result<String, StoreError> {
        let record = self.record;
        let bytes = self.bytes(len_max)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| corrupt(record, "text"))
    }

    /// Whether an optional value follows (its tag byte: 0 or 1).
    fn present(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt(self.record, "optional tag")),
        }
    }

    /// An optional 8-byte value.
    pub(crate) fn optional_u64(&mut self) -> Result<Option<u64>, StoreError> {
        if self.present()? { self.u64().map(Some) } else { Ok(None) }
    }

    /// An optional 16-byte value.
    pub(crate) fn optional_u128(&mut self) -> Result<Option<u128>, StoreError> {
        if self.present()? { self.u128().map(Some) } else { Ok(None) }
    }

    /// Optional text of at most `len_max` bytes.
    pub(crate) fn optional_text(&mut self, len_max: usize) -> Result<Option<String>, StoreError> {
        if self.present()? { self.text(len_max).map(Some) } else { Ok(None) }
    }

    /// Every byte not read yet (a last field that runs to the end).
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }

    /// Refuses trailing bytes.
    pub(crate) fn finish(&self) -> Result<(), StoreError> {
        if self.at == self.bytes.len() { Ok(()) } else { Err(corrupt(self.record, "length")) }
    }
}

/// A stored `record` whose `what` cannot be right.
pub(crate) fn corrupt(record: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{record} record has an invalid {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Encoder::new(7);
        w.u8(1).u32(2).u64(3).u128(4).text("five");
        w.optional_u64(None).optional_u64(Some(6)).optional_u128(Some(7)).optional_text(None);
        w.finish()
    }

    #[test]
    fn fields_round_trip_and_cuts_are_corrupt() {
        let bytes = sample();
        let read = |bytes: &[u8]| -> Result<(), StoreError> {
            let mut r = Decoder::new(bytes, 7, "sample")?;
            assert_eq!((r.u8()?, r.u32()?, r.u64()?, r.u128()?), (1, 2, 3, 4));
            assert_eq!(r.text(4)?, "five");
            assert_eq!((r.optional_u64()?, r.optional_u64()?), (None, Some(6)));
            assert_eq!((r.optional_u128()?, r.optional_text(1)?), (Some(7), None));
            r.finish()
        };
        read(&bytes).unwrap();
        for cut in 0..bytes.len() {
            assert!(matches!(read(&bytes[..cut]), Err(StoreError::Corrupt(_))), "cut {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(read(&trailing).is_err());
        assert!(Decoder::new(&bytes, 8, "sample").is_err(), "another version");
    }

    #[test]
    fn lengths_tags_and_text_are_checked() {
        let mut long = Encoder::new(1);
        let long = long.text("abc").finish();
        assert!(Decoder::new(&long, 1, "t").unwrap().text(2).is_err(), "over its maximum");
        let bad_tag = [1, 2];
        assert!(Decoder::new(&bad_tag, 1, "t").unwrap().optional_u64().is_err());
        let mut bad_utf8 = Encoder::new(1);
        let bad_utf8 = bad_utf8.bytes(&[0xff]).finish();
        assert!(Decoder::new(&bad_utf8, 1, "t").unwrap().text(4).is_err());
        let huge = [1, 0xff, 0xff, 0xff, 0xff];
        assert!(Decoder::new(&huge, 1, "t").unwrap().bytes(usize::MAX).is_err(), "past the end");
    }
}
