use crypto::token::{
    Claims, IssueError, TOKEN_LEN_MAX, TokenError, TokenSigner, TokenVerifier, random_token_id,
};
use data_encoding::BASE64URL_NOPAD;
use proptest::prelude::*;
use ring::signature::Ed25519KeyPair;

const NOW: u64 = 1_700_000_000;

fn keyed(kid: &str) -> (TokenSigner, Vec<u8>) {
    let der = TokenSigner::generate_pkcs8().expect("the OS generator works");
    (TokenSigner::from_pkcs8(kid, &der).expect("a fresh key parses"), der)
}

fn verifier_for(signers: &[&TokenSigner]) -> TokenVerifier {
    let mut verifier = TokenVerifier::new();
    for signer in signers {
        verifier.insert(signer.kid(), signer.public_key()).expect("a valid key");
    }
    verifier
}

fn claims() -> Claims {
    Claims {
        sub: "op_42".into(),
        role: "admin".into(),
        sid: "sess_1".into(),
        iat: NOW,
        exp: NOW + 900,
        jti: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn b64(text: &str) -> String {
    BASE64URL_NOPAD.encode(text.as_bytes())
}

/// A token with any header and payload, signed by the key in `der`.
fn forge(der: &[u8], header: &str, payload: &str) -> String {
    let pair = Ed25519KeyPair::from_pkcs8(der).expect("a fresh key parses");
    let signed = format!("{}.{}", b64(header), b64(payload));
    let signature = BASE64URL_NOPAD.encode(pair.sign(signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}

const PAYLOAD: &str =
    r#"{"sub":"op_42","role":"admin","sid":"sess_1","iat":1700000000,"exp":1700000900,"jti":"j"}"#;

#[test]
fn round_trip_with_the_exact_header() {
    let (signer, _) = keyed("k1");
    let token = signer.sign(&claims()).unwrap();
    assert_eq!(verifier_for(&[&signer]).verify(&token, NOW), Ok(claims()));
    let header = token.split('.').next().unwrap();
    assert_eq!(
        BASE64URL_NOPAD.decode(header.as_bytes()).unwrap(),
        br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#
    );
    assert!(!token.contains('='));
}

#[test]
fn a_forged_token_of_the_same_shape_verifies() {
    let (signer, der) = keyed("k1");
    let token = forge(&der, r#"{"typ":"JWT", "kid":"k1", "alg":"EdDSA"}"#, PAYLOAD);
    let expected = Claims { jti: "j".into(), ..claims() };
    assert_eq!(verifier_for(&[&signer]).verify(&token, NOW), Ok(expected));
}

#[test]
fn expiry_and_issue_time_are_checked() {
    let (signer, _) = keyed("k1");
    let verifier = verifier_for(&[&signer]);
    let token = signer.sign(&claims()).unwrap();
    assert!(verifier.verify(&token, NOW + 899).is_ok());
    assert_eq!(verifier.verify(&token, NOW + 900), Err(TokenError::Expired));
    assert!(verifier.verify(&token, NOW - 60).is_ok());
    assert_eq!(verifier.verify(&token, NOW - 61), Err(TokenError::IssuedInFuture));
}

#[test]
fn tampered_payload_header_or_signature_is_refused() {
    let (signer, _) = keyed("k1");
    let (other, _) = keyed("k2");
    let verifier = verifier_for(&[&signer, &other]);
    let token = signer.sign(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let admin = b64(&PAYLOAD.replace("admin", "auditor"));
    let cases = [
        (format!("{}.{admin}.{}", parts[0], parts[2]), TokenError::BadSignature),
        (
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"EdDSA","typ":"JWT","kid":"k2"}"#),
                parts[1],
                parts[2]
            ),
            TokenError::BadSignature,
        ),
        (
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"EdDSA","typ":"JWT","kid":"k1" }"#),
                parts[1],
                parts[2]
            ),
            TokenError::BadSignature,
        ),
        (format!("{}.{}.{}", parts[0], parts[1], &parts[2][..84]), TokenError::BadSignature),
        (format!("{}.{}.{}AA", parts[0], parts[1], parts[2]), TokenError::BadSignature),
        (format!("{}.{}.", parts[0], parts[1]), TokenError::BadSignature),
        (
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            TokenError::Malformed { part: "signature" },
        ),
    ];
    for (bad, expected) in cases {
        assert_eq!(verifier.verify(&bad, NOW), Err(expected), "{bad}");
    }
}

#[test]
fn only_eddsa_is_accepted() {
    let (signer, der) = keyed("k1");
    let verifier = verifier_for(&[&signer]);
    let payload = b64(PAYLOAD);
    let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#));
    assert_eq!(verifier.verify(&none, NOW), Err(TokenError::UnsupportedAlgorithm));
    for alg in ["none", "None", "eddsa", "EdDSA ", "HS256", "ES256", "RS256", "Ed25519", ""] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#);
        let token = forge(&der, &header, PAYLOAD);
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::UnsupportedAlgorithm), "{alg:?}");
    }
    // HS256 keyed with the public key, the classic algorithm confusion.
    let signed = format!("{}.{payload}", b64(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#));
    let mac = crypto::signature::sign(signer.public_key(), signed.as_bytes());
    let confused = format!("{signed}.{}", BASE64URL_NOPAD.encode(&mac));
    assert_eq!(verifier.verify(&confused, NOW), Err(TokenError::UnsupportedAlgorithm));
}

#[test]
fn headers_and_claims_of_another_shape_are_malformed() {
    let (signer, der) = keyed("k1");
    let verifier = verifier_for(&[&signer]);
    let header = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#;
    let bad_headers = [
        r#"{"alg":"EdDSA","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"JWS","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"k1","jku":"https://evil"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"k1","alg":"EdDSA"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":1}"#,
        r#"["EdDSA"]"#,
        "",
    ];
    for bad in bad_headers {
        let result = verifier.verify(&forge(&der, bad, PAYLOAD), NOW);
        assert_eq!(result, Err(TokenError::Malformed { part: "header" }), "{bad}");
    }
    let bad_payloads = [
        PAYLOAD.replace(r#","jti":"j""#, ""),
        PAYLOAD.replace(r#""jti":"j""#, r#""jti":"j","admin":1"#),
        PAYLOAD.replace(r#""jti":"j""#, r#""jti":"j","jti":"k""#),
        PAYLOAD.replace("1700000000", r#""1700000000""#),
        PAYLOAD.replace(r#""admin""#, r#"["admin"]"#),
        PAYLOAD.replace("1700000900", "1700000900.0"),
        PAYLOAD.replace("1700000900", "-1"),
        format!("{PAYLOAD} x"),
        "null".to_owned(),
    ];
    for bad in bad_payloads {
        let result = verifier.verify(&forge(&der, header, &bad), NOW);
        assert_eq!(result, Err(TokenError::Malformed { part: "claims" }), "{bad}");
    }
}

#[test]
fn malformed_and_oversized_tokens_are_refused() {
    let (signer, _) = keyed("k1");
    let verifier = verifier_for(&[&signer]);
    let token = signer.sign(&claims()).unwrap();
    let cases = [
        (String::new(), TokenError::Malformed { part: "token" }),
        ("a.b".to_owned(), TokenError::Malformed { part: "token" }),
        (format!("{token}.x"), TokenError::Malformed { part: "token" }),
        (format!("{token}.{}", "x".repeat(TOKEN_LEN_MAX)), TokenError::TooLarge),
        (format!("={token}"), TokenError::Malformed { part: "header" }),
        (format!(" {token}"), TokenError::Malformed { part: "header" }),
    ];
    for (bad, expected) in cases {
        assert_eq!(verifier.verify(&bad, NOW), Err(expected), "{bad}");
    }
}

#[test]
fn unknown_key_ids_are_refused() {
    let (signer, _) = keyed("k1");
    let (other, _) = keyed("k2");
    let token = signer.sign(&claims()).unwrap();
    assert_eq!(verifier_for(&[&other]).verify(&token, NOW), Err(TokenError::UnknownKey));
    assert_eq!(TokenVerifier::new().verify(&token, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn rotation_keeps_old_tokens_valid_while_their_key_is_present() {
    let (old, _) = keyed("2025-01");
    let (new, _) = keyed("2025-02");
    let mut verifier = verifier_for(&[&old, &new]);
    let old_token = old.sign(&claims()).unwrap();
    let new_token = new.sign(&claims()).unwrap();
    assert!(verifier.verify(&old_token, NOW).is_ok());
    assert!(verifier.verify(&new_token, NOW).is_ok());
    assert!(verifier.remove("2025-01"));
    assert!(!verifier.remove("2025-01"));
    assert_eq!(verifier.verify(&old_token, NOW), Err(TokenError::UnknownKey));
    assert!(verifier.verify(&new_token, NOW).is_ok());
    // Re-using a key id for another key replaces it.
    verifier.insert("2025-02", old.public_key()).unwrap();
    assert_eq!(verifier.verify(&new_token, NOW), Err(TokenError::BadSignature));
}

#[test]
fn keys_are_checked() {
    let (signer, der) = keyed("k1");
    assert_eq!(TokenSigner::from_pkcs8("k1", b"not a key").err(), Some(IssueError::KeyRejected));
    assert_eq!(
        TokenSigner::from_pkcs8("k1", &der[..der.len() - 1]).err(),
        Some(IssueError::KeyRejected)
    );
    for kid in ["", "k/1", "k 1", "k\"1", &"k".repeat(65)] {
        assert_eq!(
            TokenSigner::from_pkcs8(kid, &der).err(),
            Some(IssueError::KidInvalid),
            "{kid:?}"
        );
    }
    let mut verifier = TokenVerifier::new();
    assert_eq!(verifier.insert("k1", &signer.public_key()[1..]), Err(IssueError::PublicKeyInvalid));
    for i in 0..8 {
        verifier.insert(&format!("k{i}"), signer.public_key()).unwrap();
    }
    assert_eq!(verifier.insert("k8", signer.public_key()), Err(IssueError::TooManyKeys));
    assert!(verifier.insert("k7", signer.public_key()).is_ok(), "replacing is not adding");
    assert_eq!(format!("{signer:?}"), r#"TokenSigner { kid: "k1", .. }"#);
}

/// A PKCS#8 v1 document (no public key), as `openssl genpkey -algorithm ed25519` writes.
#[test]
fn pkcs8_v1_keys_are_accepted() {
    let prefix = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = prefix.to_vec();
    der.extend_from_slice(&[7u8; 32]);
    let signer = TokenSigner::from_pkcs8("v1", &der).unwrap();
    let token = signer.sign(&claims()).unwrap();
    assert_eq!(verifier_for(&[&signer]).verify(&token, NOW), Ok(claims()));
}

#[test]
fn claims_are_checked_before_signing() {
    let (signer, _) = keyed("k1");
    let cases = [
        (Claims { sub: String::new(), ..claims() }, "sub"),
        (Claims { role: "r".repeat(257), ..claims() }, "role"),
        (Claims { sid: String::new(), ..claims() }, "sid"),
        (Claims { jti: String::new(), ..claims() }, "jti"),
        (Claims { exp: NOW, ..claims() }, "exp"),
    ];
    for (bad, claim) in cases {
        assert_eq!(signer.sign(&bad), Err(IssueError::ClaimInvalid { claim }), "{claim}");
    }
}

#[test]
fn token_ids_are_random_hex() {
    let a = random_token_id().unwrap();
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_ne!(a, random_token_id().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_claim_strings_round_trip(
        sub in "\\PC{1,40}",
        role in ".{1,20}",
        sid in "[\\x00-\\x1f\"\\\\a-zé😀]{1,30}",
        iat in 0u64..u64::MAX / 2,
    ) {
        let (signer, _) = keyed("k1");
        let claims = Claims { sub, role, sid, iat, exp: iat + 1, jti: "j".into() };
        let token = signer.sign(&claims).unwrap();
        prop_assert_eq!(verifier_for(&[&signer]).verify(&token, iat), Ok(claims));
    }

    #[test]
    fn any_single_character_tamper_fails(
        index in any::<usize>(),
        replacement in "[A-Za-z0-9_.=-]",
    ) {
        let (signer, _) = keyed("k1");
        let token = signer.sign(&claims()).unwrap();
        let at = index % token.len();
        prop_assume!(token[at..=at] != replacement);
        let tampered = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
        prop_assert!(verifier_for(&[&signer]).verify(&tampered, NOW).is_err());
    }
}
