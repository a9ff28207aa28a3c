//! Ledger records and results to JSON bytes, appended to a caller's buffer.
//!
//! Hand-written writers, no serde: each record is a handful of `extend_from_slice` calls
//! into one `Vec<u8>` that the handler reuses for the whole response. UUIDs are written
//! lower-case and hyphenated, integers with `itoa`, flags as arrays of their wire names;
//! optional ids and timeouts are omitted when zero. The field names and shapes are the
//! ones [`decode`](super::decode) reads.
//!
//! Writers must never fail, allocate beyond growing `out`, or write anything but valid
//! JSON: every string that is not a fixed name goes through [`write_str`]'s escaping.

use storage::ledger::{Account, Outcome, Record, ResultCode, Transfer};

use super::UUID_DIGITS;

/// Lower-case hex digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// An upper bound on [`write_account`]'s output, to reserve once.
const ACCOUNT_BYTES_MAX: usize = 512;

/// An upper bound on [`write_transfer`]'s output, to reserve once.
const TRANSFER_BYTES_MAX: usize = 512;

/// `id` as the 36 ASCII bytes of a lower-case hyphenated UUID, for headers and logs.
pub fn encode_uuid(id: u128) -> [u8; 36] {
    let mut text = [b'-'; 36];
    for (nibble, position) in UUID_DIGITS.into_iter().enumerate() {
        let shift = 124 - 4 * nibble;
        text[position] = HEX_DIGITS[((id >> shift) & 0xf) as usize];
    }
    text
}

/// Writes `id` as a JSON string holding a lower-case hyphenated UUID, quotes included.
pub fn write_uuid(out: &mut Vec<u8>, id: u128) {
    out.push(b'"');
    out.extend_from_slice(&encode_uuid(id));
    out.push(b'"');
}

/// Writes `n` as a JSON number.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `s` as a JSON string, quotes included, escaping `"`, `\` and control
/// characters (as `\n`, `\t`, ... or `\u00XX`). Any `&str` gives valid JSON.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(bytes.get(start..index).unwrap_or_default());
        write_escape(out, byte, escape);
        start = index + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

fn write_escape(out: &mut Vec<u8>, byte: u8, escape: u8) {
    if escape == b'u' {
        let hex = [HEX_DIGITS[usize::from(byte >> 4)], HEX_DIGITS[usize::from(byte & 0xf)]];
        out.extend_from_slice(b"\\u00");
        out.extend_from_slice(&hex);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// For each byte, 0 when it goes out as is, else the letter after the backslash (`u` for
/// a `\u00XX` escape).
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes `names` as a JSON array of strings. The names must need no escaping (flag and
/// code names are snake_case ASCII).
fn write_names<'a>(out: &mut Vec<u8>, names: impl Iterator<Item = &'a str>) {
    out.push(b'[');
    for (index, name) in names.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    }
    out.push(b']');
}

/// Writes `key_prefix` (the literal `,"key":`, one copy) then `id` as a UUID string.
fn write_uuid_field(out: &mut Vec<u8>, key_prefix: &[u8], id: u128) {
    out.extend_from_slice(key_prefix);
    write_uuid(out, id);
}

/// Writes `key_prefix` (the literal `,"key":`) then `n` as a JSON number.
fn write_u64_field(out: &mut Vec<u8>, key_prefix: &[u8], n: u64) {
    out.extend_from_slice(key_prefix);
    write_u64(out, n);
}

/// Writes an account as a JSON object: `id`, `ledger`, `code`, `flags`, `user_data` and
/// `subject_id` (each omitted when zero), `debits_pending`, `debits_posted`,
/// `credits_pending`, `credits_posted` and `timestamp` (nanoseconds since the epoch).
pub fn write_account(out: &mut Vec<u8>, a: &Account) {
    out.reserve(ACCOUNT_BYTES_MAX);
    write_uuid_field(out, b"{\"id\":", a.id);
    write_u64_field(out, b",\"ledger\":", a.ledger.into());
    write_u64_field(out, b",\"code\":", a.code.into());
    out.extend_from_slice(b",\"flags\":");
    write_names(out, a.flags.names());
    if a.user_data != 0 {
        write_uuid_field(out, b",\"user_data\":", a.user_data);
    }
    if a.subject_id != 0 {
        write_uuid_field(out, b",\"subject_id\":", a.subject_id);
    }
    write_u64_field(out, b",\"debits_pending\":", a.debits_pending);
    write_u64_field(out, b",\"debits_posted\":", a.debits_posted);
    write_u64_field(out, b",\"credits_pending\":", a.credits_pending);
    write_u64_field(out, b",\"credits_posted\":", a.credits_posted);
    write_u64_field(out, b",\"timestamp\":", a.timestamp);
    out.push(b'}');
}

/// Writes a transfer as a JSON object: `id`, `debit_account_id`, `credit_account_id`,
/// `amount`, `pending_id` (omitted when zero), `ledger`, `code`, `flags`,
/// `timeout_seconds` and `user_data` (each omitted when zero) and `timestamp`.
pub fn write_transfer(out: &mut Vec<u8>, t: &Transfer) {
    out.reserve(TRANSFER_BYTES_MAX);
    write_uuid_field(out, b"{\"id\":", t.id);
    write_uuid_field(out, b",\"debit_account_id\":", t.debit_account_id);
    write_uuid_field(out, b",\"credit_account_id\":", t.credit_account_id);
    write_u64_field(out, b",\"amount\":", t.amount);
    if t.pending_id != 0 {
        write_uuid_field(out, b",\"pending_id\":", t.pending_id);
    }
    write_u64_field(out, b",\"ledger\":", t.ledger.into());
    write_u64_field(out, b",\"code\":", t.code.into());
    out.extend_from_slice(b",\"flags\":");
    write_names(out, t.flags.names());
    if t.timeout_seconds != 0 {
        write_u64_field(out, b",\"timeout_seconds\":", t.timeout_seconds.into());
    }
    if t.user_data != 0 {
        write_uuid_field(out, b",\"user_data\":", t.user_data);
    }
    write_u64_field(out, b",\"timestamp\":", t.timestamp);
    out.push(b'}');
}

/// Writes one event's result: `{"index":0,"id":"…","result":"ok"}`, where `index` is the
/// event's position in the request, plus `original_result` for `id_already_failed` and
/// the record's `timestamp` when there is a record.
pub fn write_result_item(out: &mut Vec<u8>, index: usize, id: u128, outcome: &Outcome) {
    out.extend_from_slice(b"{\"index\":");
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    out.push(b',');
    write_result_fields(out, id, outcome);
    let timestamp = match &outcome.record {
        Some(Record::Account(a)) => Some(a.timestamp),
        Some(Record::Transfer(t)) => Some(t.timestamp),
        None => None,
    };
    if let Some(timestamp) = timestamp {
        out.extend_from_slice(b",\"timestamp\":");
        write_u64(out, timestamp);
    }
    out.push(b'}');
}

/// Writes `"id":"…","result":"…"` and, for `id_already_failed`, `"original_result":"…"`.
pub fn write_result_fields(out: &mut Vec<u8>, id: u128, outcome: &Outcome) {
    write_uuid_field(out, b"\"id\":", id);
    write_code_field(out, b",\"result\":\"", outcome.code);
    if let Some(first) = outcome.failed_with {
        write_code_field(out, b",\"original_result\":\"", first);
    }
}

fn write_code_field(out: &mut Vec<u8>, key: &[u8], code: ResultCode) {
    out.extend_from_slice(key);
    out.extend_from_slice(code.as_str().as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use storage::ledger::{AccountFlags, TransferFlags};

    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("writers emit UTF-8")
    }

    #[test]
    fn uuids() {
        let cases = [
            (0, "00000000-0000-0000-0000-000000000000"),
            (1, "00000000-0000-0000-0000-000000000001"),
            (u128::MAX, "ffffffff-ffff-ffff-ffff-ffffffffffff"),
            (0x0190b9a4_7c3e_7d1a_9c1f_3b2a1d4e5f60, "0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60"),
            (0x01234567_89ab_cdef_fedc_ba9876543210, "01234567-89ab-cdef-fedc-ba9876543210"),
        ];
        for (id, text) in cases {
            assert_eq!(encode_uuid(id), text.as_bytes(), "{id:#x}");
            assert_eq!(written(|out| write_uuid(out, id)), format!("\"{text}\""));
        }
    }

    #[test]
    fn strings() {
        let cases = [
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("quote \" backslash \\", r#""quote \" backslash \\""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{0}\u{1}\u{1f}\u{7f}", "\"\\u0000\\u0001\\u001f\u{7f}\""),
            ("/ é ✓ \u{2028}", "\"/ é ✓ \u{2028}\""),
            ("end\\", r#""end\\""#),
        ];
        for (input, expected) in cases {
            assert_eq!(written(|out| write_str(out, input)), expected, "{input:?}");
        }
    }

    #[test]
    fn numbers() {
        for (n, text) in [(0, "0"), (7, "7"), (u64::MAX, "18446744073709551615")] {
            assert_eq!(written(|out| write_u64(out, n)), text);
        }
    }

    #[test]
    fn account() {
        let mut account = Account {
            id: 1,
            ledger: 840,
            code: 10,
            flags: AccountFlags::LINKED.union(AccountFlags::CLOSED),
            user_data: 0,
            subject_id: 0,
            debits_pending: 1,
            debits_posted: 2,
            credits_pending: 3,
            credits_posted: 4,
            timestamp: 1_700_000_000_000_000_000,
        };
        let id = r#""id":"00000000-0000-0000-0000-000000000001""#;
        let balances = r#""debits_pending":1,"debits_posted":2,"credits_pending":3,"credits_posted":4,"timestamp":1700000000000000000"#;
        let bare =
            format!(r#"{{{id},"ledger":840,"code":10,"flags":["linked","closed"],{balances}}}"#);
        assert_eq!(written(|out| write_account(out, &account)), bare);
        account.flags = AccountFlags::empty();
        account.user_data = 2;
        account.subject_id = 3;
        let full = format!(
            r#"{{{id},"ledger":840,"code":10,"flags":[],"user_data":"00000000-0000-0000-0000-000000000002","subject_id":"00000000-0000-0000-0000-000000000003",{balances}}}"#
        );
        assert_eq!(written(|out| write_account(out, &account)), full);
    }

    #[test]
    fn transfer() {
        let mut transfer = Transfer {
            id: 1,
            debit_account_id: 2,
            credit_account_id: 3,
            amount: 500,
            pending_id: 0,
            user_data: 0,
            ledger: 840,
            code: 1,
            flags: TransferFlags::empty(),
            timeout_seconds: 0,
            timestamp: 9,
        };
        let ids = r#""id":"00000000-0000-0000-0000-000000000001","debit_account_id":"00000000-0000-0000-0000-000000000002","credit_account_id":"00000000-0000-0000-0000-000000000003""#;
        let bare =
            format!(r#"{{{ids},"amount":500,"ledger":840,"code":1,"flags":[],"timestamp":9}}"#);
        assert_eq!(written(|out| write_transfer(out, &transfer)), bare);
        transfer.pending_id = 4;
        transfer.user_data = 5;
        transfer.timeout_seconds = 60;
        transfer.flags = TransferFlags::PENDING;
        let full = format!(
            r#"{{{ids},"amount":500,"pending_id":"00000000-0000-0000-0000-000000000004","ledger":840,"code":1,"flags":["pending"],"timeout_seconds":60,"user_data":"00000000-0000-0000-0000-000000000005","timestamp":9}}"#
        );
        assert_eq!(written(|out| write_transfer(out, &transfer)), full);
    }

    #[test]
    fn result_items() {
        let cases = [
            (
                0,
                1,
                ResultCode::Ok,
                r#"{"index":0,"id":"00000000-0000-0000-0000-000000000001","result":"ok"}"#,
            ),
            (
                8189,
                u128::MAX,
                ResultCode::ExceedsCredits,
                r#"{"index":8189,"id":"ffffffff-ffff-ffff-ffff-ffffffffffff","result":"exceeds_credits"}"#,
            ),
        ];
        for (index, id, code, expected) in cases {
            let outcome = Outcome { code, failed_with: None, record: None };
            assert_eq!(written(|out| write_result_item(out, index, id, &outcome)), expected);
        }
        let failed = Outcome {
            code: ResultCode::IdAlreadyFailed,
            failed_with: Some(ResultCode::ExceedsCredits),
            record: None,
        };
        assert_eq!(
            written(|out| write_result_item(out, 3, 1, &failed)),
            r#"{"index":3,"id":"00000000-0000-0000-0000-000000000001","result":"id_already_failed","original_result":"exceeds_credits"}"#
        );
    }

    #[test]
    fn writers_append() {
        let mut out = b"[".to_vec();
        let outcome = |code| Outcome { code, failed_with: None, record: None };
        write_result_item(&mut out, 0, 1, &outcome(ResultCode::Ok));
        out.push(b',');
        write_result_item(&mut out, 1, 2, &outcome(ResultCode::Exists));
        out.push(b']');
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(parsed[1]["result"], "exists");
    }
}
