//! Tests of the request decoder: error tables with codes and params, round trips
//! against serde_json, and inputs that must never panic.
use super::*;

const U: &str = "0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60";
const U_VALUE: u128 = 0x0190b9a4_7c3e_7d1a_9c1f_3b2a1d4e5f60;
const LIMITS: DecodeLimits = DecodeLimits { events_max: EVENTS_MAX, depth_max: 8 };

fn transfers(body: &str) -> Result<Decoded<NewTransfer>, WireError> {
    decode_transfers(&mut body.as_bytes().to_vec(), &LIMITS)
}

fn accounts(body: &str) -> Result<Decoded<NewAccount>, WireError> {
    decode_accounts(&mut body.as_bytes().to_vec(), &LIMITS)
}

/// `{"id":U, <fields>}` as a transfer body.
fn transfer_with(fields: &str) -> String {
    format!(r#"{{"id":"{U}"{}{fields}}}"#, if fields.is_empty() { "" } else { "," })
}

/// `{"id":U,"ledger":1,"code":1, <fields>}` as an account body.
fn account_with(fields: &str) -> String {
    format!(
        r#"{{"id":"{U}","ledger":1,"code":1{}{fields}}}"#,
        if fields.is_empty() { "" } else { "," }
    )
}

fn check_err<T: std::fmt::Debug>(
    case: &str,
    result: Result<Decoded<T>, WireError>,
    code: &str,
    param: Option<&str>,
) {
    let error = result.expect_err(case);
    assert_eq!((error.code, error.param.as_deref()), (code, param), "{case}: {error:?}");
    assert!(error.message.len() < 400, "{case}: message too long: {}", error.message);
}

#[test]
fn transfer_errors() {
    let ok = transfer_with("");
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{".into(), "invalid_json", None),
        ("".into(), "invalid_json", None),
        (format!("{ok} {ok}"), "invalid_json", None),
        (format!("[{ok},]"), "invalid_json", None),
        ("42".into(), "invalid_field", None),
        (r#""x""#.into(), "invalid_field", None),
        ("null".into(), "invalid_field", None),
        ("[]".into(), "empty_batch", None),
        ("[1]".into(), "invalid_field", Some("[0]")),
        (format!("[{ok},[]]"), "invalid_field", Some("[1]")),
        ("{}".into(), "missing_field", Some("id")),
        (format!("[{ok},{{}}]"), "missing_field", Some("[1].id")),
        (r#"{"id":"bad"}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":null}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":1}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":"0190b9a47c3e7d1a9c1f3b2a1d4e5f60"}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":"{0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f6}"}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":"0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f6g"}"#.into(), "invalid_field", Some("id")),
        (r#"{"id":"0190b9a4+7c3e-7d1a-9c1f-3b2a1d4e5f60"}"#.into(), "invalid_field", Some("id")),
        (transfer_with(r#""amout":1"#), "unknown_field", Some("amout")),
        (transfer_with(r#""Amount":1"#), "unknown_field", Some("Amount")),
        (transfer_with(r#""timestamp":1"#), "unknown_field", Some("timestamp")),
        (transfer_with(r#""amount":-1"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":1.5"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":1.0"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":1e3"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":"5""#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":true"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":9223372036854775808"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":18446744073709551615"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":18446744073709551616"#), "invalid_field", Some("amount")),
        (transfer_with(r#""amount":1,"amount":1"#), "invalid_field", Some("amount")),
        (transfer_with(r#""id":"x""#), "invalid_field", Some("id")),
        (transfer_with(&format!(r#""id":"{U}""#)), "invalid_field", Some("id")),
        (transfer_with(r#""ledger":4294967296"#), "invalid_field", Some("ledger")),
        (transfer_with(r#""ledger":-1"#), "invalid_field", Some("ledger")),
        (transfer_with(r#""code":65536"#), "invalid_field", Some("code")),
        (
            transfer_with(r#""timeout_seconds":4294967296"#),
            "invalid_field",
            Some("timeout_seconds"),
        ),
        (transfer_with(r#""debit_account_id":0"#), "invalid_field", Some("debit_account_id")),
        (transfer_with(r#""credit_account_id":"""#), "invalid_field", Some("credit_account_id")),
        (transfer_with(r#""pending_id":5"#), "invalid_field", Some("pending_id")),
        (transfer_with(r#""user_data":{}"#), "invalid_field", Some("user_data")),
        (transfer_with(r#""flags":"pending""#), "invalid_field", Some("flags")),
        (transfer_with(r#""flags":{"pending":true}"#), "invalid_field", Some("flags")),
        (transfer_with(r#""flags":3"#), "invalid_field", Some("flags")),
        (transfer_with(r#""flags":["linked","pendin"]"#), "invalid_field", Some("flags[1]")),
        (transfer_with(r#""flags":["PENDING"]"#), "invalid_field", Some("flags[0]")),
        (transfer_with(r#""flags":[1]"#), "invalid_field", Some("flags[0]")),
        (transfer_with(r#""flags":[null]"#), "invalid_field", Some("flags[0]")),
        (transfer_with(r#""flags":["linked",["pending"]]"#), "invalid_field", Some("flags[1]")),
        (transfer_with(r#""flags":["closed"]"#), "invalid_field", Some("flags[0]")),
        (
            format!(r#"[{ok},{ok},{ok},{}]"#, transfer_with(r#""amount":-1"#)),
            "invalid_field",
            Some("[3].amount"),
        ),
        (
            format!(r#"[{ok},{}]"#, transfer_with(r#""flags":["x"]"#)),
            "invalid_field",
            Some("[1].flags[0]"),
        ),
        (
            format!(r#"[{ok},{}]"#, transfer_with(r#""amout":1"#)),
            "unknown_field",
            Some("[1].amout"),
        ),
        (
            format!(r#"[{ok},{}]"#, transfer_with(r#""code":1,"code":2"#)),
            "invalid_field",
            Some("[1].code"),
        ),
        // The first problem wins, in body order.
        (transfer_with(r#""amount":-1,"amout":1"#), "invalid_field", Some("amount")),
        (r#"{"amout":1,"id":"x"}"#.into(), "unknown_field", Some("amout")),
        // Nesting beyond depth_max is refused by the parser.
        (transfer_with(r#""flags":[[[[[[[[["x"]]]]]]]]]"#), "invalid_json", None),
        (
            transfer_with(r#""user_data":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{}}}}}}}}"#),
            "invalid_json",
            None,
        ),
    ];
    for (body, code, param) in cases {
        check_err(&body, transfers(&body), code, param);
    }
}

#[test]
fn account_errors() {
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{".into(), "invalid_json", None),
        ("[]".into(), "empty_batch", None),
        ("true".into(), "invalid_field", None),
        (format!(r#"{{"id":"{U}"}}"#), "missing_field", Some("ledger")),
        (format!(r#"{{"id":"{U}","ledger":1}}"#), "missing_field", Some("code")),
        (r#"{"ledger":1,"code":1}"#.into(), "missing_field", Some("id")),
        (
            format!(r#"[{},{{"id":"{U}","code":1}}]"#, account_with("")),
            "missing_field",
            Some("[1].ledger"),
        ),
        (format!(r#"{{"id":"{U}","ledger":null,"code":1}}"#), "invalid_field", Some("ledger")),
        (
            format!(r#"{{"id":"{U}","ledger":4294967296,"code":1}}"#),
            "invalid_field",
            Some("ledger"),
        ),
        (format!(r#"{{"id":"{U}","ledger":1,"code":65536}}"#), "invalid_field", Some("code")),
        (account_with(r#""amount":1"#), "unknown_field", Some("amount")),
        (account_with(r#""debits_posted":0"#), "unknown_field", Some("debits_posted")),
        (account_with(r#""flags":["pending"]"#), "invalid_field", Some("flags[0]")),
        (account_with(r#""flags":"closed""#), "invalid_field", Some("flags")),
        (account_with(r#""user_data":"x""#), "invalid_field", Some("user_data")),
        (account_with(r#""subject_id":7"#), "invalid_field", Some("subject_id")),
        (account_with(r#""ledger":2"#), "invalid_field", Some("ledger")),
    ];
    for (body, code, param) in cases {
        check_err(&body, accounts(&body), code, param);
    }
}

#[test]
fn batch_limits() {
    let ok = transfer_with("");
    let limits = DecodeLimits { events_max: 2, depth_max: 8 };
    let mut two = format!("[{ok},{ok}]").into_bytes();
    assert_eq!(decode_transfers(&mut two, &limits).map(|d| d.len()), Ok(2));
    let mut three = format!("[{ok},{ok},{ok}]").into_bytes();
    let error = decode_transfers(&mut three, &limits).expect_err("three events");
    assert_eq!(error.code, WireError::TOO_MANY_EVENTS);
    assert_eq!(error.message, "the array holds 3 events; at most 2 are allowed");
    let error = transfers(&transfer_with(r#""flags":[[[[[[[["x"]]]]]]]]"#)).expect_err("deep");
    assert_eq!(error.message, "the body nests arrays and objects deeper than 8 levels");
    let error = transfers("[]").expect_err("empty");
    assert_eq!(error.message, "the array is empty; send 1 to 8190 events");
    // Exactly at the depth the schema needs.
    let limits = DecodeLimits { events_max: 2, depth_max: DEPTH_NEEDED };
    let mut deepest = format!(r#"[{}]"#, transfer_with(r#""flags":["linked"]"#)).into_bytes();
    assert!(decode_transfers(&mut deepest, &limits).is_ok());
}

#[test]
fn messages() {
    let cases = [
        (
            transfer_with(r#""amount":-1"#),
            "amount must be an integer from 0 to 9223372036854775807",
        ),
        (transfer_with(r#""ledger":1.5"#), "ledger must be an integer from 0 to 4294967295"),
        (
            transfer_with(r#""user_data":1"#),
            "user_data must be a UUID string like \"0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60\"",
        ),
        (transfer_with(r#""amount":1,"amount":2"#), "duplicate field \"amount\""),
        ("{}".into(), "missing field \"id\""),
        (
            transfer_with(r#""flags":["pendin"]"#),
            "unknown flag \"pendin\"; expected one of linked, pending, post_pending, \
             void_pending, balancing_debit, balancing_credit",
        ),
        (
            transfer_with(r#""flags":[7]"#),
            "each flag must be a string, one of linked, pending, post_pending, \
             void_pending, balancing_debit, balancing_credit",
        ),
        (
            transfer_with(r#""amout":1"#),
            "unknown field \"amout\"; expected one of id, debit_account_id, \
             credit_account_id, amount, pending_id, ledger, code, flags, timeout_seconds, \
             user_data",
        ),
        ("[true]".into(), "each event must be a JSON object"),
        ("7".into(), "the body must be a JSON object or an array of objects"),
    ];
    for (body, message) in cases {
        assert_eq!(transfers(&body).expect_err(&body).message, message, "{body}");
    }
    let error = accounts(&format!(r#"{{"id":"{U}","ledger":1,"code":65536}}"#)).expect_err("big");
    assert_eq!(error.message, "code must be an integer from 0 to 65535");
    // Zero decodes: the ledger answers it per event (`code_must_not_be_zero`), so one
    // bad account does not reject the rest of a batch.
    let zero = accounts(&format!(r#"{{"id":"{U}","ledger":0,"code":0}}"#)).expect("zero decodes");
    assert_eq!((zero.as_slice()[0].ledger, zero.as_slice()[0].code), (0, 0));
}

#[test]
fn errors_never_echo_long_input() {
    let long_key = "k".repeat(10_000);
    let error = transfers(&transfer_with(&format!(r#""{long_key}":1"#))).expect_err("key");
    assert!(error.message.len() < 300, "{}", error.message);
    assert!(error.param.as_deref().is_some_and(|p| p.len() <= 64 + 3), "{error:?}");
    let long_flag = "f".repeat(10_000);
    let error = transfers(&transfer_with(&format!(r#""flags":["{long_flag}"]"#)));
    assert!(error.expect_err("flag").message.len() < 300);
    // Syntax errors carry the error kind and offset, not the input.
    let error = transfers(r#"{"id":"secret-secret-secret" "#).expect_err("syntax");
    assert!(!error.message.contains("secret"), "{}", error.message);
    let error = transfers("{\"id\":\"\u{1F600}\u{1F600}\" x").expect_err("syntax");
    assert!(!error.message.contains('\u{1F600}'), "{}", error.message);
    let mut invalid_utf8 = b"{\"id\":\"\xff\xfe\"}".to_vec();
    let error = decode_transfers(&mut invalid_utf8, &LIMITS).expect_err("utf-8");
    assert_eq!(error.code, WireError::INVALID_JSON);
}

#[test]
fn decodes_a_full_transfer() {
    let body = format!(
        r#" {{ "id" : "{U}", "debit_account_id":"00000000-0000-0000-0000-000000000001",
          "credit_account_id":"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFE", "amount":9223372036854775807,
          "pending_id":"0190B9A4-7C3E-7D1A-9C1F-3B2A1D4E5F61", "ledger":4294967295,
          "code":65535, "flags":["pending","linked","pending"], "timeout_seconds":4294967295,
          "user_data":"\u0030190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f62" }} "#
    );
    let expected = NewTransfer {
        id: U_VALUE,
        debit_account_id: 1,
        credit_account_id: u128::MAX - 1,
        amount: AMOUNT_MAX,
        pending_id: U_VALUE + 1,
        user_data: U_VALUE + 2,
        ledger: u32::MAX,
        code: u16::MAX,
        flags: TransferFlags::PENDING.union(TransferFlags::LINKED),
        timeout_seconds: u32::MAX,
    };
    assert_eq!(transfers(&body), Ok(Decoded::One(expected)));
    assert_eq!(transfers(&format!("[{body}]")), Ok(Decoded::Many(vec![expected])));
}

#[test]
fn absent_and_null_optionals_are_zero() {
    let expected = Decoded::One(NewTransfer { id: U_VALUE, ..TransferSchema::EMPTY });
    assert_eq!(transfers(&transfer_with("")), Ok(expected.clone()));
    let nulls = r#""debit_account_id":null,"credit_account_id":null,"amount":null,
        "pending_id":null,"ledger":null,"code":null,"flags":null,"timeout_seconds":null,
        "user_data":null"#;
    assert_eq!(transfers(&transfer_with(nulls)), Ok(expected));
    assert_eq!(transfers(&transfer_with(r#""amount":-0,"flags":[]"#)).map(|d| d.len()), Ok(1));
    let account = NewAccount { id: U_VALUE, ledger: 1, code: 1, ..AccountSchema::EMPTY };
    assert_eq!(accounts(&account_with("")), Ok(Decoded::One(account)));
    let nulls = r#""flags":null,"user_data":null,"subject_id":null"#;
    assert_eq!(accounts(&account_with(nulls)), Ok(Decoded::One(account)));
}

#[test]
fn decodes_a_full_account_batch() {
    let body = format!(
        r#"[{},{{"id":"{U}","ledger":7,"code":9,"flags":["closed","linked"],
          "user_data":"00000000-0000-0000-0000-00000000000a",
          "subject_id":"00000000-0000-0000-0000-00000000000b"}}]"#,
        account_with("")
    );
    let first = NewAccount { id: U_VALUE, ledger: 1, code: 1, ..AccountSchema::EMPTY };
    let second = NewAccount {
        id: U_VALUE,
        ledger: 7,
        code: 9,
        flags: AccountFlags::CLOSED.union(AccountFlags::LINKED),
        user_data: 10,
        subject_id: 11,
    };
    assert_eq!(accounts(&body), Ok(Decoded::Many(vec![first, second])));
}

#[test]
fn thread_scratch_survives_errors_limits_and_large_bodies() {
    let ok = transfer_with(&format!(
        r#""debit_account_id":"{U}","credit_account_id":"{U}","user_data":"{U}",
        "amount":123456789,"ledger":710,"code":1,"flags":["linked"]"#
    ));
    let Ok(Decoded::One(expected)) = transfers(&ok) else { panic!("{ok}") };
    let large: Vec<&str> = std::iter::repeat_n(ok.as_str(), 8000).collect();
    let large = format!("[{}]", large.join(","));
    assert!(large.len() > SCRATCH_BODY_BYTES_MAX);
    let shallow = DecodeLimits { events_max: EVENTS_MAX, depth_max: DEPTH_NEEDED };
    let steps: [(&str, &DecodeLimits, Result<usize, &str>); 8] = [
        (&ok, &LIMITS, Ok(1)),
        ("[{\"id\":", &LIMITS, Err("invalid_json")),
        (&ok, &LIMITS, Ok(1)),
        (&large, &LIMITS, Ok(8000)),
        (&ok, &LIMITS, Ok(1)),
        (&format!("[{ok}]"), &shallow, Ok(1)),
        (&format!("[[{ok}]]"), &shallow, Err("invalid_json")),
        (&format!("[{ok},{ok}]"), &LIMITS, Ok(2)),
    ];
    for (body, limits, outcome) in steps {
        let decoded = decode_transfers(&mut body.as_bytes().to_vec(), limits);
        if let Ok(decoded) = &decoded {
            assert!(decoded.as_slice().iter().all(|t| *t == expected));
        }
        assert_eq!(
            decoded.map(|d| d.len()).map_err(|e| e.code),
            outcome,
            "{}",
            &body[..20.min(body.len())]
        );
    }
}

#[test]
fn parse_uuid_checks_every_ascii_byte_everywhere() {
    for position in 0..36 {
        for byte in 0..=0x7f_u8 {
            let mut text = U.as_bytes().to_vec();
            text[position] = byte;
            let text = String::from_utf8(text).expect("ASCII");
            let model = uuid::Uuid::try_parse(&text).ok().map(|id| id.as_u128());
            assert_eq!(parse_uuid(&text), model, "{text:?}");
        }
    }
}

#[test]
fn parse_uuid_forms() {
    let cases = [
        (U, Some(U_VALUE)),
        ("0190B9A4-7C3E-7D1A-9C1F-3B2A1D4E5F60", Some(U_VALUE)),
        ("0190b9A4-7c3E-7d1a-9C1f-3b2a1d4e5F60", Some(U_VALUE)),
        ("00000000-0000-0000-0000-000000000000", Some(0)),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", Some(u128::MAX)),
        ("", None),
        ("0190b9a47c3e7d1a9c1f3b2a1d4e5f60", None),
        ("{0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60}", None),
        ("urn:uuid:0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60", None),
        ("0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f6", None),
        ("0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f600", None),
        ("0190b9a47-c3e-7d1a-9c1f-3b2a1d4e5f60", None),
        ("0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5fg0", None),
        ("0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f6\u{e9}", None),
        (" 190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60", None),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_uuid(input), expected, "{input:?}");
    }
}
