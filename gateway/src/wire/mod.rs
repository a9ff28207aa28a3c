//! The JSON wire codec of the hot path: request bodies in, ledger records and results out.
//!
//! [`decode`] parses a create-accounts or create-transfers body in place with simd-json
//! (its tape, borrowed into the request buffer) straight into the ledger's
//! [`NewAccount`](storage::ledger::NewAccount) and
//! [`NewTransfer`](storage::ledger::NewTransfer); [`encode`] writes
//! [`Account`](storage::ledger::Account), [`Transfer`](storage::ledger::Transfer) and
//! per-event results as JSON bytes into a caller's buffer, with no serde in between.
//! JSON field names follow TigerBeetle's.
//!
//! This module knows bytes and ledger types only: it must never see HTTP types, decide a
//! status code, do I/O, or carry anything into a [`WireError`] beyond a short, truncated
//! excerpt of client input (a field name or flag name, at most [`ECHO_BYTES_MAX`] bytes).

pub mod decode;
pub mod encode;

pub use decode::{
    DEPTH_NEEDED, DecodeLimits, Decoded, EVENTS_MAX, decode_accounts, decode_transfers, parse_uuid,
};
pub use encode::{
    encode_uuid, write_account, write_result_fields, write_result_item, write_str, write_transfer,
    write_u64, write_uuid,
};

/// The most bytes of client input a [`WireError`] message or param ever repeats; longer
/// input is cut at a character boundary and marked with `…`.
pub const ECHO_BYTES_MAX: usize = 64;

/// Where the 32 hex digits of a hyphenated UUID sit, most significant first; the other
/// four positions (8, 13, 18, 23) hold hyphens.
const UUID_DIGITS: [usize; 32] = {
    let mut positions = [0; 32];
    let mut digit = 0;
    let mut position = 0;
    while digit < 32 {
        if !matches!(position, 8 | 13 | 18 | 23) {
            positions[digit] = position;
            digit += 1;
        }
        position += 1;
    }
    positions
};

/// Why a body was rejected as a whole. Safe to show to the client: it names the problem
/// and the offending field but never repeats more than [`ECHO_BYTES_MAX`] bytes of input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    /// A stable snake_case code, one of the `WireError::*` constants (e.g.
    /// [`WireError::INVALID_FIELD`]); fixed cardinality, so usable as a metric label.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The offending field as a JSON path (`amount`, `[3].amount`, `[3].flags[1]`), or
    /// `None` when the problem is the body as a whole.
    pub param: Option<String>,
}

impl WireError {
    /// The body is not well-formed JSON (or nests deeper than allowed).
    pub const INVALID_JSON: &'static str = "invalid_json";
    /// A field (or an event, or the body's top-level shape) has the wrong type or range.
    pub const INVALID_FIELD: &'static str = "invalid_field";
    /// A required field is absent.
    pub const MISSING_FIELD: &'static str = "missing_field";
    /// A field this event type does not have.
    pub const UNKNOWN_FIELD: &'static str = "unknown_field";
    /// The array holds more events than the configured maximum.
    pub const TOO_MANY_EVENTS: &'static str = "too_many_events";
    /// The array holds no events.
    pub const EMPTY_BATCH: &'static str = "empty_batch";

    /// Every code, for documentation and metric registration.
    pub const CODES: &'static [&'static str] = &[
        Self::INVALID_JSON,
        Self::INVALID_FIELD,
        Self::MISSING_FIELD,
        Self::UNKNOWN_FIELD,
        Self::TOO_MANY_EVENTS,
        Self::EMPTY_BATCH,
    ];

    /// An error with no param.
    pub fn whole(code: &'static str, message: String) -> Self {
        Self { code, message, param: None }
    }

    /// An error about the field at JSON path `param`.
    pub fn at(code: &'static str, message: String, param: String) -> Self {
        Self { code, message, param: Some(param) }
    }
}

/// `input` cut to at most [`ECHO_BYTES_MAX`] bytes at a character boundary, with quotes,
/// backslashes and control characters escaped, ready to quote in a message.
pub fn echo(input: &str) -> String {
    let mut end = input.len().min(ECHO_BYTES_MAX);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 8);
    out.extend(input[..end].chars().flat_map(char::escape_debug));
    if end < input.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    //! Round trips through both halves of the codec, against serde_json and the uuid
    //! crate as independent models.

    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use storage::ledger::{
        AMOUNT_MAX, Account, AccountFlags, NewAccount, NewTransfer, Transfer, TransferFlags,
    };

    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits { events_max: decode::EVENTS_MAX, depth_max: 8 };

    /// An optional id: often zero, sometimes the extremes.
    fn any_id() -> impl Strategy<Value = u128> {
        prop_oneof![Just(0), Just(1), Just(u128::MAX), any::<u128>()]
    }

    fn transfer_flags() -> impl Strategy<Value = TransferFlags> {
        let all = TransferFlags::NAMED.iter().fold(0, |bits, (_, flag)| bits | flag.bits());
        any::<u16>().prop_map(move |bits| TransferFlags::from_bits(bits & all).expect("known bits"))
    }

    fn account_flags() -> impl Strategy<Value = AccountFlags> {
        let all = AccountFlags::NAMED.iter().fold(0, |bits, (_, flag)| bits | flag.bits());
        any::<u16>().prop_map(move |bits| AccountFlags::from_bits(bits & all).expect("known bits"))
    }

    prop_compose! {
        fn new_transfer()(
            id in any::<u128>(),
            debit_account_id in any_id(),
            credit_account_id in any_id(),
            amount in prop_oneof![Just(0), Just(AMOUNT_MAX), 0..=AMOUNT_MAX],
            pending_id in any_id(),
            user_data in any_id(),
            ledger in prop_oneof![Just(0), Just(u32::MAX), any::<u32>()],
            code in any::<u16>(),
            flags in transfer_flags(),
            timeout_seconds in prop_oneof![Just(0), any::<u32>()],
        ) -> NewTransfer {
            NewTransfer {
                id, debit_account_id, credit_account_id, amount, pending_id, user_data, ledger,
                code, flags, timeout_seconds,
            }
        }
    }

    prop_compose! {
        fn new_account()(
            id in any::<u128>(),
            ledger in 1..=u32::MAX,
            code in 1..=u16::MAX,
            flags in account_flags(),
            user_data in any_id(),
            subject_id in any_id(),
        ) -> NewAccount {
            NewAccount { id, ledger, code, flags, user_data, subject_id }
        }
    }

    prop_compose! {
        fn account()(
            new in new_account(),
            balances in any::<[u64; 4]>(),
            timestamp in any::<u64>(),
        ) -> Account {
            let NewAccount { id, ledger, code, flags, user_data, subject_id } = new;
            let [debits_pending, debits_posted, credits_pending, credits_posted] = balances;
            Account {
                id, ledger, code, flags, user_data, subject_id, debits_pending, debits_posted,
                credits_pending, credits_posted, timestamp,
            }
        }
    }

    prop_compose! {
        fn transfer()(new in new_transfer(), amount in any::<u64>(), timestamp in any::<u64>())
            -> Transfer {
            let NewTransfer {
                id, debit_account_id, credit_account_id, pending_id, user_data, ledger, code,
                flags, timeout_seconds, ..
            } = new;
            Transfer {
                id, debit_account_id, credit_account_id, amount, pending_id, user_data, ledger,
                code, flags, timeout_seconds, timestamp,
            }
        }
    }

    /// How the test-side writer spells an event, so decoding sees many equivalent forms.
    #[derive(Clone, Copy, Debug)]
    struct Spelling {
        upper_case: bool,
        /// Zero-valued optional fields: 0 omits them, 1 writes them, 2 writes `null`.
        zeros: u8,
        reversed: bool,
        spaced: bool,
    }

    fn spelling() -> impl Strategy<Value = Spelling> {
        (any::<bool>(), 0..3u8, any::<bool>(), any::<bool>()).prop_map(
            |(upper_case, zeros, reversed, spaced)| Spelling {
                upper_case,
                zeros,
                reversed,
                spaced,
            },
        )
    }

    /// A test-side JSON writer, independent of `encode`: serde_json values in our order.
    fn object(fields: Vec<(&str, Value, bool)>, how: Spelling) -> String {
        let mut fields: Vec<(&str, Value)> = fields
            .into_iter()
            .filter_map(|(key, value, zero)| match (zero, how.zeros) {
                (true, 0) => None,
                (true, 2) => Some((key, Value::Null)),
                _ => Some((key, value)),
            })
            .collect();
        if how.reversed {
            fields.reverse();
        }
        let gap = if how.spaced { " \n\t" } else { "" };
        let members: Vec<String> =
            fields.iter().map(|(key, value)| format!("{gap}\"{key}\"{gap}:{gap}{value}")).collect();
        format!("{{{}{gap}}}", members.join(","))
    }

    fn uuid_json(id: u128, how: Spelling) -> Value {
        let text = uuid::Uuid::from_u128(id).hyphenated().to_string();
        Value::String(if how.upper_case { text.to_uppercase() } else { text })
    }

    fn transfer_json(t: &NewTransfer, how: Spelling) -> String {
        let flags: Vec<&str> = t.flags.names().collect();
        object(
            vec![
                ("id", uuid_json(t.id, how), false),
                ("debit_account_id", uuid_json(t.debit_account_id, how), t.debit_account_id == 0),
                (
                    "credit_account_id",
                    uuid_json(t.credit_account_id, how),
                    t.credit_account_id == 0,
                ),
                ("amount", json!(t.amount), t.amount == 0),
                ("pending_id", uuid_json(t.pending_id, how), t.pending_id == 0),
                ("ledger", json!(t.ledger), t.ledger == 0),
                ("code", json!(t.code), t.code == 0),
                ("flags", json!(flags), flags.is_empty()),
                ("timeout_seconds", json!(t.timeout_seconds), t.timeout_seconds == 0),
                ("user_data", uuid_json(t.user_data, how), t.user_data == 0),
            ],
            how,
        )
    }

    fn account_json(a: &NewAccount, how: Spelling) -> String {
        // Duplicate flag names are allowed and change nothing.
        let flags: Vec<&str> = a.flags.names().chain(a.flags.names()).collect();
        object(
            vec![
                ("id", uuid_json(a.id, how), false),
                ("ledger", json!(a.ledger), false),
                ("code", json!(a.code), false),
                ("flags", json!(flags), flags.is_empty()),
                ("user_data", uuid_json(a.user_data, how), a.user_data == 0),
                ("subject_id", uuid_json(a.subject_id, how), a.subject_id == 0),
            ],
            how,
        )
    }

    fn array(items: Vec<String>) -> Vec<u8> {
        format!("[{}]", items.join(",")).into_bytes()
    }

    /// `value[key]` as a UUID, which must be written in lower case.
    fn uuid_at(value: &Value, key: &str) -> u128 {
        let text = value[key].as_str().expect("a UUID string");
        assert_eq!(text, text.to_lowercase());
        parse_uuid(text).expect("a UUID")
    }

    fn optional_uuid_at(value: &Value, key: &str) -> u128 {
        if value.get(key).is_some() { uuid_at(value, key) } else { 0 }
    }

    fn flags_at(value: &Value) -> Vec<&str> {
        let names = value["flags"].as_array().expect("flags array");
        names.iter().map(|name| name.as_str().expect("flag name")).collect()
    }

    fn keys(value: &Value) -> Vec<&str> {
        value.as_object().expect("object").keys().map(String::as_str).collect()
    }

    proptest! {
        #[test]
        fn transfers_round_trip(t in new_transfer(), how in spelling()) {
            let mut body = transfer_json(&t, how).into_bytes();
            prop_assert_eq!(decode_transfers(&mut body, &LIMITS), Ok(Decoded::One(t)));
        }

        #[test]
        fn transfer_batches_round_trip(ts in vec((new_transfer(), spelling()), 1..40)) {
            let mut body = array(ts.iter().map(|(t, how)| transfer_json(t, *how)).collect());
            let expected: Vec<NewTransfer> = ts.into_iter().map(|(t, _)| t).collect();
            prop_assert_eq!(decode_transfers(&mut body, &LIMITS), Ok(Decoded::Many(expected)));
        }

        #[test]
        fn accounts_round_trip(a in new_account(), how in spelling()) {
            let mut body = account_json(&a, how).into_bytes();
            prop_assert_eq!(decode_accounts(&mut body, &LIMITS), Ok(Decoded::One(a)));
        }

        #[test]
        fn account_batches_round_trip(accounts in vec((new_account(), spelling()), 1..40)) {
            let mut body = array(accounts.iter().map(|(a, how)| account_json(a, *how)).collect());
            let expected: Vec<NewAccount> = accounts.into_iter().map(|(a, _)| a).collect();
            prop_assert_eq!(decode_accounts(&mut body, &LIMITS), Ok(Decoded::Many(expected)));
        }

        #[test]
        fn written_accounts_parse_back(a in account()) {
            let mut out = Vec::new();
            write_account(&mut out, &a);
            let v: Value = serde_json::from_slice(&out).expect("valid JSON");
            let mut expected_keys = vec![
                "code", "credits_pending", "credits_posted", "debits_pending", "debits_posted",
                "flags", "id", "ledger", "subject_id", "timestamp", "user_data",
            ];
            expected_keys.retain(|key| match *key {
                "user_data" => a.user_data != 0,
                "subject_id" => a.subject_id != 0,
                _ => true,
            });
            prop_assert_eq!(keys(&v), expected_keys);
            prop_assert_eq!(uuid_at(&v, "id"), a.id);
            prop_assert_eq!(v["ledger"].as_u64(), Some(u64::from(a.ledger)));
            prop_assert_eq!(v["code"].as_u64(), Some(u64::from(a.code)));
            prop_assert_eq!(flags_at(&v), a.flags.names().collect::<Vec<_>>());
            prop_assert_eq!(optional_uuid_at(&v, "user_data"), a.user_data);
            prop_assert_eq!(optional_uuid_at(&v, "subject_id"), a.subject_id);
            prop_assert_eq!(v["debits_pending"].as_u64(), Some(a.debits_pending));
            prop_assert_eq!(v["debits_posted"].as_u64(), Some(a.debits_posted));
            prop_assert_eq!(v["credits_pending"].as_u64(), Some(a.credits_pending));
            prop_assert_eq!(v["credits_posted"].as_u64(), Some(a.credits_posted));
            prop_assert_eq!(v["timestamp"].as_u64(), Some(a.timestamp));
        }

        #[test]
        fn written_transfers_parse_back(t in transfer()) {
            let mut out = Vec::new();
            write_transfer(&mut out, &t);
            let v: Value = serde_json::from_slice(&out).expect("valid JSON");
            let mut expected_keys = vec![
                "amount", "code", "credit_account_id", "debit_account_id", "flags", "id",
                "ledger", "pending_id", "timeout_seconds", "timestamp", "user_data",
            ];
            expected_keys.retain(|key| match *key {
                "pending_id" => t.pending_id != 0,
                "timeout_seconds" => t.timeout_seconds != 0,
                "user_data" => t.user_data != 0,
                _ => true,
            });
            prop_assert_eq!(keys(&v), expected_keys);
            prop_assert_eq!(uuid_at(&v, "id"), t.id);
            prop_assert_eq!(uuid_at(&v, "debit_account_id"), t.debit_account_id);
            prop_assert_eq!(uuid_at(&v, "credit_account_id"), t.credit_account_id);
            prop_assert_eq!(v["amount"].as_u64(), Some(t.amount));
            prop_assert_eq!(optional_uuid_at(&v, "pending_id"), t.pending_id);
            prop_assert_eq!(v["ledger"].as_u64(), Some(u64::from(t.ledger)));
            prop_assert_eq!(v["code"].as_u64(), Some(u64::from(t.code)));
            prop_assert_eq!(flags_at(&v), t.flags.names().collect::<Vec<_>>());
            let timeout = v.get("timeout_seconds").map_or(Some(0), Value::as_u64);
            prop_assert_eq!(timeout, Some(u64::from(t.timeout_seconds)));
            prop_assert_eq!(optional_uuid_at(&v, "user_data"), t.user_data);
            prop_assert_eq!(v["timestamp"].as_u64(), Some(t.timestamp));
        }

        #[test]
        fn uuids_round_trip(id in any::<u128>(), upper_case in any::<bool>()) {
            let text = std::str::from_utf8(&encode_uuid(id)).expect("ASCII").to_owned();
            prop_assert_eq!(&text, &uuid::Uuid::from_u128(id).hyphenated().to_string());
            let text = if upper_case { text.to_uppercase() } else { text };
            prop_assert_eq!(parse_uuid(&text), Some(id));
        }

        #[test]
        fn parse_uuid_agrees_with_the_uuid_crate(s in "[0-9a-fA-F\\-gG:{} é]{30,40}") {
            // uuid also takes other forms at other lengths; at 36 only the hyphenated one.
            let model = uuid::Uuid::try_parse(&s).ok().filter(|_| s.len() == 36);
            prop_assert_eq!(parse_uuid(&s), model.map(|id| id.as_u128()));
        }

        #[test]
        fn parse_uuid_rejects_every_wrong_character(
            id in any::<u128>(),
            at in 0..36usize,
            replacement in any::<char>(),
        ) {
            let mut text: Vec<char> = uuid::Uuid::from_u128(id).hyphenated().to_string().chars().collect();
            text[at] = replacement;
            let text: String = text.into_iter().collect();
            let model = uuid::Uuid::try_parse(&text).ok().filter(|_| text.len() == 36);
            prop_assert_eq!(parse_uuid(&text), model.map(|id| id.as_u128()));
        }

        #[test]
        fn parse_uuid_on_ascii_noise(s in "[\\x00-\\x7f]{36}") {
            let model = uuid::Uuid::try_parse(&s).ok();
            prop_assert_eq!(parse_uuid(&s), model.map(|id| id.as_u128()));
        }

        #[test]
        fn strings_round_trip(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(serde_json::from_slice::<String>(&out).expect("valid JSON"), s);
        }

        #[test]
        fn echo_is_short(s in any::<String>()) {
            let echoed = echo(&s);
            // Each byte kept may grow to a `\u{...}` escape; the cut is what matters.
            prop_assert!(echoed.chars().filter(|c| *c != '…').count() <= ECHO_BYTES_MAX * 10);
            prop_assert_eq!(echoed.ends_with('…'), s.len() > ECHO_BYTES_MAX);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut body in vec(any::<u8>(), 0..300)) {
            let mut copy = body.clone();
            let _ = decode_transfers(&mut body, &LIMITS);
            let _ = decode_accounts(&mut copy, &LIMITS);
        }

        #[test]
        fn damaged_bodies_never_panic(
            ts in vec((new_transfer(), spelling()), 1..4),
            damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut body = array(ts.iter().map(|(t, how)| transfer_json(t, *how)).collect());
            for (at, byte) in damage {
                let index = at.index(body.len());
                body[index] = byte;
            }
            if let Err(error) = decode_transfers(&mut body, &LIMITS) {
                prop_assert!(WireError::CODES.contains(&error.code));
            }
        }
    }
}
