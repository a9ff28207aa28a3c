//! The smallest JSON the tokens need: flat objects whose values are strings or unsigned
//! integers. The writer escapes `"`, `\` and control characters; the parser accepts
//! RFC 8259's grammar for that subset (whitespace, every string escape including
//! surrogate pairs, integers without sign, fraction, exponent or leading zeros) and
//! refuses everything else: nesting, arrays, booleans, null, negative or fractional
//! numbers, duplicate names, more than [`MEMBERS_MAX`] members, trailing bytes.

/// The most members an object may have.
pub(crate) const MEMBERS_MAX: usize = 8;

/// A member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Num(u64),
}

/// The input is not a flat object of the accepted shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonError;

/// Writes one object, members in the order they are added.
pub(crate) struct ObjectWriter {
    out: String,
}

impl ObjectWriter {
    pub(crate) fn new() -> Self {
        Self { out: String::from("{") }
    }

    pub(crate) fn string(mut self, name: &str, value: &str) -> Self {
        self.name(name);
        write_string(&mut self.out, value);
        self
    }

    pub(crate) fn number(mut self, name: &str, value: u64) -> Self {
        self.name(name);
        self.out.push_str(&value.to_string());
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }

    fn name(&mut self, name: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        write_string(&mut self.out, name);
        self.out.push(':');
    }
}

fn write_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses a flat object into its members, in order; names are unique.
pub(crate) fn parse_object(text: &[u8]) -> Result<Vec<(String, Value)>, JsonError> {
    let mut parser = Parser { bytes: text, pos: 0 };
    let members = parser.object()?;
    parser.whitespace();
    if parser.pos != text.len() {
        return Err(JsonError);
    }
    Ok(members)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, JsonError> {
        let byte = self.peek().ok_or(JsonError)?;
        self.pos += 1;
        Ok(byte)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, wanted: u8) -> Result<(), JsonError> {
        self.whitespace();
        if self.next()? != wanted {
            return Err(JsonError);
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Vec<(String, Value)>, JsonError> {
        self.expect(b'{')?;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(members);
        }
        loop {
            let member = self.member()?;
            if members.len() == MEMBERS_MAX || members.iter().any(|(name, _)| *name == member.0) {
                return Err(JsonError);
            }
            members.push(member);
            self.whitespace();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(members),
                _ => return Err(JsonError),
            }
        }
    }

    fn member(&mut self) -> Result<(String, Value), JsonError> {
        self.expect(b'"')?;
        let name = self.string()?;
        self.expect(b':')?;
        self.whitespace();
        let value = match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                Value::Str(self.string()?)
            }
            Some(b'0'..=b'9') => Value::Num(self.number()?),
            _ => return Err(JsonError),
        };
        Ok((name, value))
    }

    /// The rest of a string whose opening quote has been read.
    fn string(&mut self) -> Result<String, JsonError> {
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).map_err(|_| JsonError),
                b'\\' => self.escape(&mut out)?,
                byte if byte < 0x20 => return Err(JsonError),
                byte => out.push(byte),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let simple = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(out),
            _ => return Err(JsonError),
        };
        out.push(simple);
        Ok(())
    }

    /// `\uXXXX`, or a surrogate pair `\uD8XX\uDCXX`, after the `\u` has been read.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let first = self.hex4()?;
        let scalar = match first {
            0xd800..=0xdbff => {
                self.expect_raw(b"\\u")?;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(JsonError);
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(JsonError),
            _ => first,
        };
        let c = char::from_u32(scalar).ok_or(JsonError)?;
        out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
        Ok(())
    }

    fn expect_raw(&mut self, wanted: &[u8]) -> Result<(), JsonError> {
        for &byte in wanted {
            if self.next()? != byte {
                return Err(JsonError);
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = char::from(self.next()?).to_digit(16).ok_or(JsonError)?;
            value = value * 16 + digit;
        }
        Ok(value)
    }

    fn number(&mut self) -> Result<u64, JsonError> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        if leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(JsonError);
        }
        let text = std::str::from_utf8(digits).map_err(|_| JsonError)?;
        text.parse().map_err(|_| JsonError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<(String, Value)>, JsonError> {
        parse_object(text.as_bytes())
    }

    fn str_member(name: &str, value: &str) -> (String, Value) {
        (name.to_owned(), Value::Str(value.to_owned()))
    }

    #[test]
    fn writes_and_reads_members_in_order() {
        let text = ObjectWriter::new().string("a", "x\"y\\z\n\u{1}é").number("n", 42).finish();
        assert_eq!(text, r#"{"a":"x\"y\\z\n\u0001é","n":42}"#);
        let members = parse(&text).unwrap();
        assert_eq!(members, vec![str_member("a", "x\"y\\z\n\u{1}é"), ("n".into(), Value::Num(42))]);
    }

    #[test]
    fn accepts_the_whole_escape_and_whitespace_grammar() {
        let text = " {\t\"a\" : \"\\/\\b\\f\\r\\t\\u00e9\\ud83d\\ude00\" ,\n\"b\":0 } ";
        let members = parse(text).unwrap();
        let expected = vec![str_member("a", "/\u{8}\u{c}\r\té😀"), ("b".into(), Value::Num(0))];
        assert_eq!(members, expected);
        assert_eq!(parse("{}").unwrap(), vec![]);
        assert_eq!(parse(r#"{"n":18446744073709551615}"#).unwrap()[0].1, Value::Num(u64::MAX));
    }

    #[test]
    fn refuses_everything_outside_the_subset() {
        let cases = [
            "",
            "{",
            "}",
            "[]",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{a:1}",
            "{\"a\":-1}",
            "{\"a\":1.5}",
            "{\"a\":1e3}",
            "{\"a\":01}",
            "{\"a\":true}",
            "{\"a\":null}",
            "{\"a\":{}}",
            "{\"a\":[1]}",
            "{\"a\":\"x}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\ud800\\u0041\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":18446744073709551616}",
            "{\"a\"1}",
            "{'a':1}",
        ];
        for case in cases {
            assert_eq!(parse(case), Err(JsonError), "{case:?}");
        }
        let too_many: Vec<String> = (0..=MEMBERS_MAX).map(|i| format!("\"m{i}\":1")).collect();
        assert_eq!(parse(&format!("{{{}}}", too_many.join(","))), Err(JsonError));
    }

    proptest! {
        #[test]
        fn any_strings_and_numbers_round_trip(
            name in "\\PC{0,12}",
            value in any::<String>(),
            number in any::<u64>(),
        ) {
            let text = ObjectWriter::new().string("s", &value).number(&name, number).finish();
            let mut expected = vec![str_member("s", &value)];
            if name != "s" {
                expected.push((name, Value::Num(number)));
                prop_assert_eq!(parse(&text), Ok(expected));
            } else {
                prop_assert_eq!(parse(&text), Err(JsonError));
            }
        }

        #[test]
        fn near_json_never_panics(
            prefix in prop_oneof![Just("{"), Just("{\"a\":"), Just("{\"a\":\"")],
            tail in "[{}\\[\\]\":, 0-9a-fu.eE+\\\\-]{0,40}",
            bytes in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let _ = parse(&format!("{prefix}{tail}"));
            let _ = parse_object(&[prefix.as_bytes(), &bytes].concat());
        }
    }
}
