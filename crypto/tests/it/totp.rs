use crypto::totp::{Algorithm, CodeRejected, Params, TotpError, TotpSecret};

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn rfc_secret(algorithm: Algorithm) -> TotpSecret {
    let seed = match algorithm {
        Algorithm::Sha1 => SEED_SHA1,
        Algorithm::Sha256 => SEED_SHA256,
        Algorithm::Sha512 => SEED_SHA512,
    };
    let params = Params::new(algorithm, 8, 30).expect("RFC parameters are in range");
    TotpSecret::from_bytes(seed, params).expect("RFC seeds are 20 to 64 bytes")
}

fn default_secret() -> TotpSecret {
    TotpSecret::from_bytes(SEED_SHA1, Params::DEFAULT).expect("a 20-byte seed")
}

fn code(secret: &TotpSecret, unix_seconds: u64) -> String {
    format!("{:06}", secret.code_at(unix_seconds))
}

/// RFC 6238 Appendix B: every vector, with each mode's own seed and 8 digits.
#[test]
fn rfc6238_appendix_b_vectors() {
    use Algorithm::{Sha1, Sha256, Sha512};
    let vectors = [
        (59, "94287082", Sha1),
        (59, "46119246", Sha256),
        (59, "90693936", Sha512),
        (1_111_111_109, "07081804", Sha1),
        (1_111_111_109, "68084774", Sha256),
        (1_111_111_109, "25091201", Sha512),
        (1_111_111_111, "14050471", Sha1),
        (1_111_111_111, "67062674", Sha256),
        (1_111_111_111, "99943326", Sha512),
        (1_234_567_890, "89005924", Sha1),
        (1_234_567_890, "91819424", Sha256),
        (1_234_567_890, "93441116", Sha512),
        (2_000_000_000, "69279037", Sha1),
        (2_000_000_000, "90698825", Sha256),
        (2_000_000_000, "38618901", Sha512),
        (20_000_000_000, "65353130", Sha1),
        (20_000_000_000, "77737706", Sha256),
        (20_000_000_000, "47863826", Sha512),
    ];
    for (time, expected, algorithm) in vectors {
        let secret = rfc_secret(algorithm);
        assert_eq!(format!("{:08}", secret.code_at(time)), expected, "{algorithm:?} at {time}");
        assert_eq!(
            secret.verify(expected, time, 0, None),
            Ok(time / 30),
            "{algorithm:?} at {time}"
        );
    }
}

#[test]
fn default_parameters_are_what_authenticator_apps_use() {
    let secret = TotpSecret::generate().unwrap();
    assert_eq!(secret.params(), Params::DEFAULT);
    assert_eq!((Params::DEFAULT.digits(), Params::DEFAULT.period_seconds()), (6, 30));
    // 6-digit SHA-1 codes are the RFC's 8-digit codes mod 10^6.
    assert_eq!(default_secret().code_at(59), 287_082);
}

#[test]
fn generated_secrets_are_20_random_bytes_in_base32() {
    let a = TotpSecret::generate().unwrap();
    let b = TotpSecret::generate().unwrap();
    let text = a.to_base32();
    assert_eq!(text.len(), 32);
    assert!(text.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
    assert_ne!(text, b.to_base32());
    let back = TotpSecret::from_base32(&text, Params::DEFAULT).unwrap();
    assert_eq!(back.code_at(NOW), a.code_at(NOW));
}

const NOW: u64 = 1_700_000_000;

#[test]
fn enrolment_uri_is_exact() {
    let uri = default_secret().otpauth_uri("ops+1@example.com").unwrap();
    let expected = "otpauth://totp/Protea:ops%2B1%40example.com\
?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Protea&algorithm=SHA1&digits=6&period=30";
    assert_eq!(uri, expected);
    let uri = rfc_secret(Algorithm::Sha512).otpauth_uri("Zoë Ops").unwrap();
    assert!(uri.starts_with("otpauth://totp/Protea:Zo%C3%AB%20Ops?secret="), "{uri}");
    assert!(uri.ends_with("&issuer=Protea&algorithm=SHA512&digits=8&period=30"), "{uri}");
}

#[test]
fn enrolment_refuses_bad_account_names() {
    let secret = default_secret();
    for account in [String::new(), "a:b".into(), "a\nb".into(), "\u{7f}".into(), "a".repeat(129)] {
        assert_eq!(secret.otpauth_uri(&account), Err(TotpError::AccountInvalid), "{account:?}");
    }
    assert!(secret.otpauth_uri(&"a".repeat(128)).is_ok());
}

#[test]
fn secrets_and_parameters_are_bounded() {
    assert_eq!(
        TotpSecret::from_bytes(&[1; 15], Params::DEFAULT).err(),
        Some(TotpError::SecretInvalid)
    );
    assert_eq!(
        TotpSecret::from_bytes(&[1; 65], Params::DEFAULT).err(),
        Some(TotpError::SecretInvalid)
    );
    assert!(TotpSecret::from_bytes(&[1; 16], Params::DEFAULT).is_ok());
    assert!(TotpSecret::from_bytes(&[1; 64], Params::DEFAULT).is_ok());
    let text = default_secret().to_base32();
    for bad in [text.to_lowercase(), format!("{text}===="), format!("{text}1"), "!".into()] {
        assert_eq!(
            TotpSecret::from_base32(&bad, Params::DEFAULT).err(),
            Some(TotpError::SecretInvalid),
            "{bad}"
        );
    }
    for (digits, period) in [(5, 30), (9, 30), (6, 0), (6, 301)] {
        assert_eq!(Params::new(Algorithm::Sha1, digits, period), Err(TotpError::ParamsInvalid));
    }
}

#[test]
fn skew_accepts_neighbouring_steps_only() {
    let secret = default_secret();
    let step = NOW / 30;
    for offset in [-1i64, 0, 1] {
        let then = NOW.checked_add_signed(offset * 30).unwrap();
        assert_eq!(
            secret.verify(&code(&secret, then), NOW, 1, None),
            Ok(step.checked_add_signed(offset).unwrap())
        );
    }
    for offset in [-2i64, 2] {
        let then = NOW.checked_add_signed(offset * 30).unwrap();
        assert_eq!(secret.verify(&code(&secret, then), NOW, 1, None), Err(CodeRejected::Mismatch));
    }
    let previous = code(&secret, NOW - 30);
    assert_eq!(secret.verify(&previous, NOW, 0, None), Err(CodeRejected::Mismatch));
    assert_eq!(secret.verify(&code(&secret, 0), 0, 1, None), Ok(0));
}

#[test]
fn a_code_is_accepted_once() {
    let secret = default_secret();
    let step = NOW / 30;
    let now_code = code(&secret, NOW);
    assert_eq!(secret.verify(&now_code, NOW, 1, None), Ok(step));
    assert_eq!(secret.verify(&now_code, NOW + 5, 1, Some(step)), Err(CodeRejected::Reused));
    let earlier = code(&secret, NOW - 30);
    assert_eq!(secret.verify(&earlier, NOW, 1, Some(step)), Err(CodeRejected::Reused));
    let next = code(&secret, NOW + 30);
    assert_eq!(secret.verify(&next, NOW + 30, 1, Some(step)), Ok(step + 1));
    assert_eq!(secret.verify(&next, NOW, 1, Some(step)), Ok(step + 1));
}

#[test]
fn malformed_codes_are_refused() {
    let secret = default_secret();
    let good = code(&secret, NOW);
    let cases = [
        String::new(),
        good[..5].to_owned(),
        format!("{good}0"),
        format!(" {good}"),
        format!("{good}\n"),
        format!("+{}", &good[1..]),
        "12a456".to_owned(),
        "１２３４５６".to_owned(),
        format!("{:08}", rfc_secret(Algorithm::Sha1).code_at(NOW)),
    ];
    for case in cases {
        assert_eq!(secret.verify(&case, NOW, 1, None), Err(CodeRejected::Malformed), "{case:?}");
    }
}

#[test]
fn debug_never_shows_the_secret() {
    let secret = TotpSecret::generate().unwrap();
    let shown = format!("{secret:?}");
    assert!(!shown.contains(&secret.to_base32()), "{shown}");
    assert!(shown.starts_with("TotpSecret { params:"), "{shown}");
}
