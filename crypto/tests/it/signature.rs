use crypto::signature::{
    ActiveKeys, DEFAULT_WINDOW_SECONDS, RequestParts, Scope, SecretTooShort, SignatureError,
    SignedHeader, SigningKey, body_digest, canonical_query, canonical_request, parse_authorization,
    random_nonce, sign, sign_request, verify,
};
use data_encoding::HEXLOWER;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;
const KEY_ID: &str = "pk_0123456789abcdef";
const NONCE: &str = "n0nce-0123456789abcdef";

fn scope(key_id: &str, timestamp: u64) -> Scope<'_> {
    Scope { key_id, timestamp, nonce: NONCE }
}

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

fn key(fill: u8) -> SigningKey {
    SigningKey::new(&[fill; 32]).expect("32 bytes is long enough")
}

fn malformed(part: &'static str) -> SignatureError {
    SignatureError::Malformed { part }
}

/// RFC 4231 section 4: HMAC-SHA256 test cases 1 to 7 (case 5's tag is truncated to 128
/// bits; cases 6 and 7 use a 131-byte key, longer than SHA-256's block).
#[test]
fn rfc4231_hmac_sha256_test_cases() {
    let case_6_data = b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec();
    let case_7_data = b"This is a test using a larger than block-size key and a larger than \
block-size data. The key needs to be hashed before being used by the HMAC algorithm."
        .to_vec();
    let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            (1..=25).collect(),
            vec![0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (vec![0x0c; 20], b"Test With Truncation".to_vec(), "a3b6167473100ee06e0c796c2955552b"),
        (
            vec![0xaa; 131],
            case_6_data,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            vec![0xaa; 131],
            case_7_data,
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (number, (secret, data, expected)) in cases.iter().enumerate() {
        let tag = hex(&sign(secret, data));
        assert_eq!(&tag[..expected.len()], *expected, "test case {}", number + 1);
        if secret.len() >= 32 {
            let cached = SigningKey::new(secret).unwrap();
            assert_eq!(hex(&cached.sign(data)), tag, "test case {} via SigningKey", number + 1);
        }
    }
}

#[test]
fn signing_keys_need_32_bytes() {
    assert_eq!(SigningKey::new(&[1; 31]).err(), Some(SecretTooShort));
    assert!(SigningKey::new(&[1; 32]).is_ok());
}

/// The canonical request and its tag, computed independently (Python's hmac/hashlib).
#[test]
fn canonical_request_known_answer() {
    let body = br#"[{"id":"0190f1c2-0000-7000-8000-000000000001","amount":100}]"#;
    let digest = body_digest(body);
    let request = RequestParts {
        method: "POST",
        path: "/v1/transfers/%7Bid%7D",
        query: "limit=10&after=abc&a=2&a-b=3&a=1&a&b%20c=d",
        body_sha256: &digest,
    };
    let canonical = canonical_request(&scope(KEY_ID, NOW), &request).unwrap();
    let expected = "PROTEA-HMAC-SHA256\n1700000000\npk_0123456789abcdef\nn0nce-0123456789abcdef\nPOST\n\
/v1/transfers/%7Bid%7D\na&a=1&a=2&a-b=3&after=abc&b%20c=d&limit=10\n\
6578c692c1cd2b9aa9a6b929900220baabb34f64c0dabee2d35e8ef59def285d";
    assert_eq!(canonical, expected);
    let secret = "4f1c".repeat(16);
    let key = SigningKey::new(secret.as_bytes()).unwrap();
    let header = sign_request(&key, &scope(KEY_ID, NOW), &request).unwrap();
    let tag = "6a5b107e571591ff136e3e938cea78064e9b30c40e17c6001a9a1ad35c3f60cc";
    assert_eq!(hex(&header.signature), tag);
    let value = format!(
        "Protea-HMAC-SHA256 KeyId={KEY_ID}, Timestamp=1700000000, Nonce={NONCE}, Signature={tag}"
    );
    assert_eq!(header.header_value(), value);
    assert_eq!(parse_authorization(&value), Ok(header));
}

#[test]
fn empty_body_and_query() {
    let digest = body_digest(b"");
    assert_eq!(hex(&digest), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let request =
        RequestParts { method: "GET", path: "/v1/accounts", query: "", body_sha256: &digest };
    let canonical = canonical_request(&scope("k", 0), &request).unwrap();
    assert_eq!(
        canonical,
        format!("PROTEA-HMAC-SHA256\n0\nk\n{NONCE}\nGET\n/v1/accounts\n\n{}", hex(&digest))
    );
}

#[test]
fn authorization_accepts_any_field_order_and_spacing() {
    let sig = "ab".repeat(32);
    let expected = SignedHeader {
        key_id: "pk_x".into(),
        timestamp: 42,
        nonce: NONCE.into(),
        signature: [0xab; 32],
    };
    for value in [
        format!("Protea-HMAC-SHA256 KeyId=pk_x, Timestamp=42, Nonce={NONCE}, Signature={sig}"),
        format!("Protea-HMAC-SHA256 Signature={sig},Nonce={NONCE},Timestamp=42,KeyId=pk_x"),
        format!("Protea-HMAC-SHA256  Timestamp=42 ,  KeyId=pk_x, Nonce={NONCE} , Signature={sig}"),
    ] {
        assert_eq!(parse_authorization(&value), Ok(expected.clone()), "{value}");
    }
}

#[test]
fn authorization_is_strict() {
    let sig = "ab".repeat(32);
    let n = format!("Nonce={NONCE}");
    let cases = [
        (String::new(), "scheme"),
        (format!("protea-hmac-sha256 KeyId=k, Timestamp=1, {n}, Signature={sig}"), "scheme"),
        (format!("Bearer KeyId=k, Timestamp=1, {n}, Signature={sig}"), "scheme"),
        (format!("Protea-HMAC-SHA256KeyId=k, Timestamp=1, {n}, Signature={sig}"), "scheme"),
        (
            format!("Protea-HMAC-SHA256 KeyId=k, KeyId=k, Timestamp=1, {n}, Signature={sig}"),
            "header",
        ),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, {n}, Signature={sig}"), "header"),
        (
            format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature={sig}, Extra=1"),
            "header",
        ),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature={sig},"), "header"),
        (format!("Protea-HMAC-SHA256 keyid=k, Timestamp=1, {n}, Signature={sig}"), "header"),
        (format!("Protea-HMAC-SHA256 KeyId=k; Timestamp=1, {n}, Signature={sig}"), "key_id"),
        (format!("Protea-HMAC-SHA256 Timestamp=1, {n}, Signature={sig}"), "key_id"),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}"), "signature"),
        (format!("Protea-HMAC-SHA256 KeyId=k, {n}, Signature={sig}"), "timestamp"),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, Signature={sig}"), "nonce"),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce=short, Signature={sig}"), "nonce"),
        (
            format!(
                "Protea-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={}, Signature={sig}",
                "n".repeat(65)
            ),
            "nonce",
        ),
        (
            format!(
                "Protea-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce=0123456789abcdef/, Signature={sig}"
            ),
            "nonce",
        ),
        (format!("Protea-HMAC-SHA256 KeyId=k/1, Timestamp=1, {n}, Signature={sig}"), "key_id"),
        (
            format!(
                "Protea-HMAC-SHA256 KeyId={}, Timestamp=1, {n}, Signature={sig}",
                "k".repeat(65)
            ),
            "key_id",
        ),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=01, {n}, Signature={sig}"), "timestamp"),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=-1, {n}, Signature={sig}"), "timestamp"),
        (
            format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature={}", "AB".repeat(32)),
            "signature",
        ),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature={sig}00"), "signature"),
        (format!("Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature=\"{sig}\""), "signature"),
        (
            format!(
                "Protea-HMAC-SHA256 KeyId=k, Timestamp=1, {n}, Signature={sig}{}",
                " ".repeat(230)
            ),
            "header",
        ),
    ];
    for (value, part) in cases {
        assert_eq!(parse_authorization(&value), Err(malformed(part)), "{value:?}");
    }
}

#[test]
fn nonces_are_fresh_and_well_formed() {
    let a = random_nonce().unwrap();
    let b = random_nonce().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
    let digest = body_digest(b"");
    let request = RequestParts { method: "GET", path: "/a", query: "", body_sha256: &digest };
    let scope = Scope { key_id: KEY_ID, timestamp: NOW, nonce: &a };
    assert!(canonical_request(&scope, &request).is_ok());
}

#[test]
fn requests_that_cannot_be_canonical_are_refused() {
    let digest = body_digest(b"");
    let ok = RequestParts { method: "GET", path: "/a", query: "", body_sha256: &digest };
    let long_path = format!("/{}", "a".repeat(2048));
    let cases = [
        (RequestParts { path: "/a\nb", ..ok }, "path"),
        (RequestParts { path: "a", ..ok }, "path"),
        (RequestParts { path: "", ..ok }, "path"),
        (RequestParts { path: "/a b", ..ok }, "path"),
        (RequestParts { path: "/a?b", ..ok }, "path"),
        (RequestParts { path: "/é", ..ok }, "path"),
        (RequestParts { path: &long_path, ..ok }, "path"),
        (RequestParts { method: "get", ..ok }, "method"),
        (RequestParts { method: "", ..ok }, "method"),
        (RequestParts { method: "GET\n/b", ..ok }, "method"),
        (RequestParts { query: "a=1&&b=2", ..ok }, "query"),
        (RequestParts { query: "a=1&", ..ok }, "query"),
        (RequestParts { query: "&", ..ok }, "query"),
        (RequestParts { query: "a=1\nb", ..ok }, "query"),
        (RequestParts { query: "a=1#f", ..ok }, "query"),
        (RequestParts { query: "a= 1", ..ok }, "query"),
    ];
    for (request, part) in cases {
        let result = canonical_request(&scope(KEY_ID, NOW), &request);
        assert_eq!(result, Err(malformed(part)), "{request:?}");
    }
    assert_eq!(canonical_request(&scope("k\n1", NOW), &ok), Err(malformed("key_id")));
    assert_eq!(canonical_request(&scope("", NOW), &ok), Err(malformed("key_id")));
    let bad_nonce = Scope { nonce: "0123456789abcde\n", ..scope(KEY_ID, NOW) };
    assert_eq!(canonical_request(&bad_nonce, &ok), Err(malformed("nonce")));
}

#[test]
fn timestamps_outside_the_window_are_refused_after_the_signature() {
    let digest = body_digest(b"{}");
    let request =
        RequestParts { method: "POST", path: "/v1/transfers", query: "", body_sha256: &digest };
    let keys = ActiveKeys::single(key(1));
    let check = |timestamp: u64| {
        let header = sign_request(keys.current(), &scope(KEY_ID, timestamp), &request).unwrap();
        verify(&keys, &header, &request, NOW, DEFAULT_WINDOW_SECONDS)
    };
    assert_eq!(check(NOW - 300), Ok(()));
    assert_eq!(check(NOW + 300), Ok(()));
    assert_eq!(check(NOW - 301), Err(SignatureError::Expired));
    assert_eq!(check(NOW + 301), Err(SignatureError::FromTheFuture));
    let forged = sign_request(&key(2), &scope(KEY_ID, NOW - 10_000), &request).unwrap();
    let result = verify(&keys, &forged, &request, NOW, DEFAULT_WINDOW_SECONDS);
    assert_eq!(result, Err(SignatureError::BadSignature));
}

#[test]
fn error_codes_are_fixed_labels() {
    let codes = [
        malformed("path").code(),
        SignatureError::BadSignature.code(),
        SignatureError::Expired.code(),
        SignatureError::FromTheFuture.code(),
    ];
    assert_eq!(codes, ["malformed", "bad_signature", "expired", "from_the_future"]);
}

fn params() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-c0-9%=+._~-]{1,5}", 0..8)
}

/// A valid request: (timestamp, key id, method, path, query params, body).
fn request() -> impl Strategy<Value = (u64, String, String, String, Vec<String>, Vec<u8>)> {
    (
        0u64..100_000_000_000,
        "[A-Za-z0-9_-]{1,20}",
        "[A-Z]{1,8}",
        "/[a-z0-9%/=&;:@!$'()*+,._~-]{0,24}",
        params(),
        proptest::collection::vec(any::<u8>(), 0..48),
    )
}

/// Splits a canonical request back into its parts, query parameters sorted.
fn decode(canonical: &str) -> (String, String, String, String, Vec<String>, String) {
    let lines: Vec<&str> = canonical.split('\n').collect();
    assert_eq!(lines.len(), 8, "{canonical:?}");
    assert_eq!(lines[0], "PROTEA-HMAC-SHA256");
    assert_eq!(lines[3], NONCE);
    let mut query: Vec<String> =
        lines[6].split('&').filter(|p| !p.is_empty()).map(String::from).collect();
    query.sort();
    let owned = |i: usize| lines[i].to_owned();
    (owned(1), owned(2), owned(4), owned(5), query, owned(7))
}

/// Replaces the byte at `index` (mod the length) with a different visible ASCII byte;
/// an empty text gets one byte.
fn tamper(text: &str, index: usize, byte: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return char::from(0x21 + byte % 0x5e).to_string();
    }
    let at = index % bytes.len();
    let mut replacement = 0x21 + byte % 0x5e;
    if replacement == bytes[at] {
        replacement = if replacement == b'~' { b'!' } else { replacement + 1 };
    }
    bytes[at] = replacement;
    String::from_utf8(bytes).expect("ASCII in, ASCII out")
}

/// Changes one bit pattern of one byte of `body`; an empty body gets one byte.
fn flip(body: &[u8], index: usize, byte: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    match out.len() {
        0 => out.push(byte),
        len => out[index % len] ^= byte.max(1),
    }
    out
}

proptest! {
    #[test]
    fn canonical_query_is_stable_under_reordering(
        (original, shuffled) in
            params().prop_flat_map(|p| (Just(p.clone()), Just(p).prop_shuffle()))
    ) {
        let a = canonical_query(&original.join("&")).unwrap();
        let b = canonical_query(&shuffled.join("&")).unwrap();
        prop_assert_eq!(a, b);
    }

    /// The canonical request splits back into exactly the parts it was made from, so no
    /// two different requests share one.
    #[test]
    fn canonical_request_decodes_to_its_parts(
        (ts, key_id, method, path, query, body) in request()
    ) {
        let digest = body_digest(&body);
        let joined = query.join("&");
        let parts =
            RequestParts { method: &method, path: &path, query: &joined, body_sha256: &digest };
        let canonical = canonical_request(&scope(&key_id, ts), &parts).unwrap();
        let mut sorted = query.clone();
        sorted.sort();
        let expected = (ts.to_string(), key_id, method, path, sorted, hex(&digest));
        prop_assert_eq!(decode(&canonical), expected);
    }

    /// Over a tiny alphabet full of separators, two requests share a canonical string
    /// exactly when they are the same request up to the order of query parameters, and
    /// any part holding a newline is refused.
    #[test]
    fn canonical_requests_collide_only_for_equal_requests(
        a in ("[ab\n]{1,2}", "/[ab&=\n]{0,3}", "[ab&=\n]{0,4}", 0u64..3),
        b in ("[ab\n]{1,2}", "/[ab&=\n]{0,3}", "[ab&=\n]{0,4}", 0u64..3),
    ) {
        let digest = body_digest(b"");
        let canonical = |(key_id, path, query, ts): &(String, String, String, u64)| {
            let parts = RequestParts { method: "GET", path, query, body_sha256: &digest };
            canonical_request(&scope(key_id, *ts), &parts)
        };
        let normal = |(key_id, path, query, ts): &(String, String, String, u64)| {
            let mut params: Vec<&str> = query.split('&').collect();
            params.sort();
            (key_id.clone(), path.clone(), params.join("&"), *ts)
        };
        for request in [&a, &b] {
            if [&request.0, &request.1, &request.2].iter().any(|part| part.contains('\n')) {
                prop_assert!(canonical(request).is_err());
            }
        }
        if let (Ok(ca), Ok(cb)) = (canonical(&a), canonical(&b)) {
            prop_assert_eq!(ca == cb, normal(&a) == normal(&b));
        }
    }

    #[test]
    fn any_single_byte_tamper_fails(
        (ts, key_id, method, path, query, body) in request(),
        target in 0usize..8,
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let now = ts;
        let digest = body_digest(&body);
        let joined = query.join("&");
        let parts =
            RequestParts { method: &method, path: &path, query: &joined, body_sha256: &digest };
        let keys = ActiveKeys::single(key(7));
        let header = sign_request(keys.current(), &scope(&key_id, ts), &parts).unwrap();
        prop_assert_eq!(verify(&keys, &header, &parts, now, 300), Ok(()));

        let mut bad_header = header.clone();
        let bad_method = tamper(&method, index, byte);
        let bad_path = tamper(&path, index, byte);
        let bad_query = tamper(&joined, index, byte);
        let bad_digest = body_digest(&flip(&body, index, byte));
        let mut bad_parts = parts;
        match target {
            0 => bad_header.signature[index % 32] ^= byte.max(1),
            1 => bad_header.timestamp = ts ^ (1 << (index % 8)),
            2 => bad_header.key_id = tamper(&key_id, index, byte),
            3 => bad_parts.method = &bad_method,
            4 => bad_parts.path = &bad_path,
            5 => bad_parts.query = &bad_query,
            6 => bad_parts.body_sha256 = &bad_digest,
            _ => bad_header.nonce = tamper(NONCE, index, byte),
        }
        let result = verify(&keys, &bad_header, &bad_parts, now, 300);
        if [0, 1, 6].contains(&target) {
            // Within the window and well formed: only the tag can refuse these.
            prop_assert_eq!(result, Err(SignatureError::BadSignature));
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn either_active_key_verifies(
        a in any::<u8>(),
        b in any::<u8>(),
        c in any::<u8>(),
        signer in 0usize..3,
    ) {
        prop_assume!(a != b && b != c && a != c);
        let digest = body_digest(b"x");
        let parts =
            RequestParts { method: "POST", path: "/v1/transfers", query: "", body_sha256: &digest };
        let header = sign_request(&key([a, b, c][signer]), &scope(KEY_ID, NOW), &parts).unwrap();
        let rotating = ActiveKeys::rotating(key(a), key(b));
        let expected = if signer < 2 { Ok(()) } else { Err(SignatureError::BadSignature) };
        prop_assert_eq!(verify(&rotating, &header, &parts, NOW, 300), expected);
        let single = verify(&ActiveKeys::single(key(a)), &header, &parts, NOW, 300);
        prop_assert_eq!(single.is_ok(), signer == 0);
    }
}
