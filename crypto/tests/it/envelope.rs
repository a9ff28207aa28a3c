use crypto::envelope::{
    AAD_LEN_MAX, EnvelopeError, FORMAT_VERSION, KEY_ID_LEN_MAX, KEY_LEN, KeyBytes, KeyRing,
    NONCE_LEN, PLAINTEXT_LEN_MAX, TAG_LEN, VERSIONS_MAX, key_from_base64, key_to_base64, sealed_by,
};
use proptest::prelude::*;

const KEK: &str = "protea-kek";
const AAD: &[u8] = b"api_key:pk_0123456789abcdef";
const SECRET: &[u8] = b"4f1c4f1c4f1c4f1c4f1c4f1c4f1c4f1c";

fn ring(current: u32, versions: &[u32]) -> KeyRing {
    let keys = versions.iter().map(|&version| (version, key(version))).collect();
    KeyRing::new(KEK, current, keys).expect("a valid ring")
}

/// A distinct key per version.
fn key(version: u32) -> KeyBytes {
    let mut key = [0u8; KEY_LEN];
    for (byte, index) in key.iter_mut().zip(0u32..) {
        *byte = (version.wrapping_mul(31).wrapping_add(index) % 251) as u8;
    }
    key
}

/// The length of the header and nonce for `KEK`: everything before the ciphertext.
fn prefix_len() -> usize {
    2 + KEK.len() + 4 + NONCE_LEN
}

#[test]
fn round_trip_in_the_documented_layout() {
    let ring = ring(3, &[3]);
    for plaintext in [&b""[..], b"x", SECRET, &[0xa5; PLAINTEXT_LEN_MAX]] {
        let sealed = ring.seal(plaintext, AAD).unwrap();
        assert_eq!(sealed.len(), prefix_len() + plaintext.len() + TAG_LEN);
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_eq!(usize::from(sealed[1]), KEK.len());
        assert_eq!(&sealed[2..2 + KEK.len()], KEK.as_bytes());
        assert_eq!(sealed[2 + KEK.len()..6 + KEK.len()], [0, 0, 0, 3]);
        assert_eq!(sealed_by(&sealed), Ok((KEK, 3)));
        assert_eq!(ring.open(&sealed, AAD).unwrap(), plaintext);
    }
}

#[test]
fn the_plaintext_is_not_in_the_sealed_value() {
    let sealed = ring(1, &[1]).seal(SECRET, AAD).unwrap();
    assert!(!sealed.windows(8).any(|window| SECRET.windows(8).any(|s| s == window)));
}

#[test]
fn another_aad_does_not_open() {
    let ring = ring(1, &[1]);
    let sealed = ring.seal(SECRET, AAD).unwrap();
    for other in [&b""[..], b"api_key:pk_0123456789abcdee", b"api_key:pk_0123456789abcdef\0"] {
        assert_eq!(ring.open(&sealed, other), Err(EnvelopeError::DecryptFailed), "{other:?}");
    }
    let unbound = ring.seal(SECRET, b"").unwrap();
    assert_eq!(ring.open(&unbound, AAD), Err(EnvelopeError::DecryptFailed));
    assert_eq!(ring.open(&unbound, b"").unwrap(), SECRET);
}

#[test]
fn truncation_at_every_length_fails() {
    let ring = ring(1, &[1]);
    let sealed = ring.seal(SECRET, AAD).unwrap();
    for len in 0..sealed.len() {
        let cut = &sealed[..len];
        let result = ring.open(cut, AAD);
        assert!(result.is_err(), "{len}");
        if len < prefix_len() + TAG_LEN {
            assert_eq!(result, Err(EnvelopeError::Truncated), "{len}");
            assert_eq!(sealed_by(cut), Err(EnvelopeError::Truncated), "{len}");
        } else {
            assert_eq!(result, Err(EnvelopeError::DecryptFailed), "{len}");
        }
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(ring.open(&longer, AAD), Err(EnvelopeError::DecryptFailed));
}

#[test]
fn rotation_opens_old_values_and_reseal_moves_them_to_the_current_version() {
    let sealed_v1 = ring(1, &[1]).seal(SECRET, AAD).unwrap();
    assert_eq!(sealed_by(&sealed_v1), Ok((KEK, 1)));

    let rotating = ring(2, &[1, 2]);
    assert_eq!(rotating.open(&sealed_v1, AAD).unwrap(), SECRET);
    let sealed_v2 = rotating.reseal(&sealed_v1, AAD).unwrap();
    assert_eq!(sealed_by(&sealed_v2), Ok((KEK, 2)));
    assert_eq!(rotating.open(&sealed_v2, AAD).unwrap(), SECRET);
    assert_eq!(rotating.reseal(&sealed_v1, b"another record"), Err(EnvelopeError::DecryptFailed));

    let rotated = ring(2, &[2]);
    assert_eq!(rotated.open(&sealed_v2, AAD).unwrap(), SECRET);
    let unknown = Err(EnvelopeError::UnknownVersion { version: 1 });
    assert_eq!(rotated.open(&sealed_v1, AAD), unknown);
    assert_eq!(rotated.reseal(&sealed_v1, AAD), unknown);
}

#[test]
fn a_ring_without_the_sealing_version_names_it() {
    let sealed = ring(7, &[7]).seal(SECRET, AAD).unwrap();
    let result = ring(8, &[6, 8]).open(&sealed, AAD);
    assert_eq!(result, Err(EnvelopeError::UnknownVersion { version: 7 }));
    assert_eq!(
        result.unwrap_err().to_string(),
        "the sealed value's KEK version 7 is not in the key ring"
    );
}

#[test]
fn the_same_version_number_with_other_key_bytes_does_not_open() {
    let sealed = ring(1, &[1]).seal(SECRET, AAD).unwrap();
    let impostor = KeyRing::new(KEK, 1, vec![(1, key(2))]).unwrap();
    assert_eq!(impostor.open(&sealed, AAD), Err(EnvelopeError::DecryptFailed));
}

/// With the same key bytes under two versions and two ids, only the GCM additional data
/// tells them apart: a rewritten header must not open.
#[test]
fn the_header_is_authenticated() {
    let twins = KeyRing::new(KEK, 2, vec![(1, key(1)), (2, key(1))]).unwrap();
    let sealed = twins.seal(SECRET, AAD).unwrap();
    let mut relabelled = sealed.clone();
    relabelled[2 + KEK.len() + 3] = 1;
    assert_eq!(sealed_by(&relabelled), Ok((KEK, 1)));
    assert_eq!(twins.open(&relabelled, AAD), Err(EnvelopeError::DecryptFailed));

    let renamed_ring = KeyRing::new("protea-kez", 2, vec![(2, key(1))]).unwrap();
    let mut renamed = sealed;
    renamed[2 + KEK.len() - 1] = b'z';
    assert_eq!(sealed_by(&renamed), Ok(("protea-kez", 2)));
    assert_eq!(renamed_ring.open(&renamed, AAD), Err(EnvelopeError::DecryptFailed));
}

#[test]
fn another_kek_id_is_refused() {
    let sealed = ring(1, &[1]).seal(SECRET, AAD).unwrap();
    for id in ["protea-kek2", "protea-keK", "other"] {
        let other = KeyRing::new(id, 1, vec![(1, key(1))]).unwrap();
        assert_eq!(other.open(&sealed, AAD), Err(EnvelopeError::WrongKeyId), "{id}");
        assert_eq!(other.reseal(&sealed, AAD), Err(EnvelopeError::WrongKeyId), "{id}");
    }
}

#[test]
fn nonces_differ_between_seals() {
    let ring = ring(1, &[1]);
    let a = ring.seal(SECRET, AAD).unwrap();
    let b = ring.seal(SECRET, AAD).unwrap();
    let nonce = |sealed: &[u8]| sealed[prefix_len() - NONCE_LEN..prefix_len()].to_vec();
    assert_ne!(nonce(&a), nonce(&b));
    assert_ne!(a[prefix_len()..], b[prefix_len()..]);
    assert_eq!(ring.open(&a, AAD).unwrap(), ring.open(&b, AAD).unwrap());
}

#[test]
fn sizes_are_bounded() {
    let ring = ring(1, &[1]);
    let largest = vec![1u8; PLAINTEXT_LEN_MAX];
    let sealed = ring.seal(&largest, AAD).unwrap();
    assert_eq!(ring.open(&sealed, AAD).unwrap(), largest);
    let too_large = vec![1u8; PLAINTEXT_LEN_MAX + 1];
    assert_eq!(ring.seal(&too_large, AAD), Err(EnvelopeError::PlaintextTooLong));

    let mut overlong = sealed;
    overlong.push(0);
    assert_eq!(ring.open(&overlong, AAD), Err(EnvelopeError::PlaintextTooLong));
    assert_eq!(sealed_by(&overlong), Err(EnvelopeError::PlaintextTooLong));

    let aad = vec![b'a'; AAD_LEN_MAX];
    let sealed = ring.seal(SECRET, &aad).unwrap();
    assert_eq!(ring.open(&sealed, &aad).unwrap(), SECRET);
    let aad = vec![b'a'; AAD_LEN_MAX + 1];
    assert_eq!(ring.seal(SECRET, &aad), Err(EnvelopeError::AadTooLong));
    assert_eq!(ring.open(&sealed, &aad), Err(EnvelopeError::AadTooLong));
}

#[test]
fn unknown_formats_are_refused() {
    let ring = ring(1, &[1]);
    let sealed = ring.seal(SECRET, AAD).unwrap();
    for format in [0u8, 2, 0xff] {
        let mut other = sealed.clone();
        other[0] = format;
        assert_eq!(ring.open(&other, AAD), Err(EnvelopeError::UnknownFormat), "{format}");
        assert_eq!(sealed_by(&other), Err(EnvelopeError::UnknownFormat), "{format}");
    }
}

#[test]
fn rings_refuse_bad_ids_and_version_sets() {
    let one = || vec![(1, key(1))];
    let long = "k".repeat(KEY_ID_LEN_MAX + 1);
    for id in ["", "k k", "k/1", "k:1", "kék", "k\n", long.as_str()] {
        assert_eq!(KeyRing::new(id, 1, one()).err(), Some(EnvelopeError::KeyIdInvalid), "{id:?}");
        assert_eq!(KeyRing::generate(id).err(), Some(EnvelopeError::KeyIdInvalid), "{id:?}");
    }
    for id in ["k", "kek_2024.v1-A", &"k".repeat(KEY_ID_LEN_MAX)] {
        assert_eq!(KeyRing::new(id, 1, one()).unwrap().id(), id);
    }
    let err = |current: u32, versions: &[u32]| {
        let keys = versions.iter().map(|&version| (version, key(version))).collect();
        KeyRing::new(KEK, current, keys).err()
    };
    assert_eq!(err(1, &[]), Some(EnvelopeError::NoVersions));
    assert_eq!(err(0, &[0]), Some(EnvelopeError::VersionInvalid));
    assert_eq!(err(1, &[1, 0]), Some(EnvelopeError::VersionInvalid));
    assert_eq!(err(1, &[1, 2, 1]), Some(EnvelopeError::VersionDuplicate));
    assert_eq!(err(3, &[1, 2]), Some(EnvelopeError::CurrentVersionMissing));
    assert_eq!(err(0, &[1, 2]), Some(EnvelopeError::CurrentVersionMissing));
    let most: Vec<u32> = (1..=VERSIONS_MAX as u32).collect();
    assert_eq!(err(1, &most), None);
    let too_many: Vec<u32> = (1..=VERSIONS_MAX as u32 + 1).collect();
    assert_eq!(err(1, &too_many), Some(EnvelopeError::TooManyVersions));
}

#[test]
fn accessors_report_the_ring() {
    let ring = ring(4, &[9, 2, 4, u32::MAX]);
    assert_eq!(ring.id(), KEK);
    assert_eq!(ring.current_version(), 4);
    assert_eq!(ring.versions(), [2, 4, 9, u32::MAX]);
    assert_eq!(sealed_by(&ring.seal(b"", b"").unwrap()), Ok((KEK, 4)));
}

#[test]
fn generated_rings_are_fresh_and_rebuild_from_their_key() {
    let (ring, key) = KeyRing::generate(KEK).unwrap();
    let (_, other) = KeyRing::generate(KEK).unwrap();
    assert_ne!(key, other);
    assert_eq!((ring.current_version(), ring.versions()), (1, vec![1]));
    let sealed = ring.seal(SECRET, AAD).unwrap();
    let stored = key_to_base64(&key);
    let rebuilt = KeyRing::new(KEK, 1, vec![(1, key_from_base64(&stored).unwrap())]).unwrap();
    assert_eq!(rebuilt.open(&sealed, AAD).unwrap(), SECRET);
}

#[test]
fn keys_are_padded_standard_base64_of_32_bytes() {
    let zeros = "A".repeat(43) + "=";
    assert_eq!(key_to_base64(&[0; 32]), zeros);
    assert_eq!(key_from_base64(&zeros), Ok([0; 32]));
    let all_ones = "/".repeat(42) + "8=";
    assert_eq!(key_to_base64(&[0xff; 32]), all_ones);
    assert_eq!(key_from_base64(&all_ones), Ok([0xff; 32]));
    let bad = [
        String::new(),
        "A".repeat(43),               // no padding
        "A".repeat(42) + "==",        // 31 bytes
        "A".repeat(44),               // 33 bytes
        "A".repeat(48),               // 36 bytes
        "A".repeat(42) + "B=",        // non-canonical trailing bits
        "_".repeat(42) + "8=",        // the URL-safe alphabet
        "A".repeat(43) + "=\n",       // a trailing newline
        " ".to_owned() + &zeros[1..], // a space
        "A".repeat(41) + "é=",        // not ASCII, but 44 bytes
    ];
    for text in bad {
        assert_eq!(key_from_base64(&text), Err(EnvelopeError::KeyInvalid), "{text:?}");
    }
}

#[test]
fn debug_shows_the_id_and_versions_but_no_key() {
    let ring = KeyRing::new(KEK, 2, vec![(2, [0xa5; 32]), (1, [0x5a; 32])]).unwrap();
    let shown = format!("{ring:?}");
    assert_eq!(shown, r#"KeyRing { id: "protea-kek", current_version: 2, versions: [1, 2], .. }"#);
    assert_eq!(format!("{ring:#?}").matches("165").count(), 0);
}

#[test]
fn error_codes_are_fixed_labels() {
    let errors = [
        EnvelopeError::KeyIdInvalid,
        EnvelopeError::VersionInvalid,
        EnvelopeError::VersionDuplicate,
        EnvelopeError::NoVersions,
        EnvelopeError::TooManyVersions,
        EnvelopeError::CurrentVersionMissing,
        EnvelopeError::KeyInvalid,
        EnvelopeError::Random,
        EnvelopeError::PlaintextTooLong,
        EnvelopeError::AadTooLong,
        EnvelopeError::Truncated,
        EnvelopeError::UnknownFormat,
        EnvelopeError::HeaderInvalid,
        EnvelopeError::WrongKeyId,
        EnvelopeError::UnknownVersion { version: 3 },
        EnvelopeError::DecryptFailed,
    ];
    let codes: Vec<&str> = errors.iter().map(EnvelopeError::code).collect();
    assert_eq!(
        codes,
        [
            "key_id_invalid",
            "version_invalid",
            "version_duplicate",
            "no_versions",
            "too_many_versions",
            "current_version_missing",
            "key_invalid",
            "random",
            "plaintext_too_long",
            "aad_too_long",
            "truncated",
            "unknown_format",
            "header_invalid",
            "wrong_key_id",
            "unknown_version",
            "decrypt_failed",
        ]
    );
}

proptest! {
    #[test]
    fn any_plaintext_and_aad_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..256),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let ring = ring(5, &[1, 5]);
        let sealed = ring.seal(&plaintext, &aad).unwrap();
        prop_assert_eq!(ring.open(&sealed, &aad).unwrap(), plaintext);
    }

    /// Every byte is covered: the header by its parser and the tag, the nonce,
    /// ciphertext and tag by GCM, which reports them all as one error.
    #[test]
    fn any_single_byte_tamper_fails(
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        index in any::<usize>(),
        mask in 1u8..,
    ) {
        let ring = ring(2, &[1, 2, 3]);
        let sealed = ring.seal(&plaintext, AAD).unwrap();
        let mut tampered = sealed.clone();
        let at = index % sealed.len();
        tampered[at] ^= mask;
        let result = ring.open(&tampered, AAD);
        prop_assert!(result.is_err(), "byte {} ^ {:#04x} opened", at, mask);
        if at >= prefix_len() - NONCE_LEN {
            prop_assert_eq!(result, Err(EnvelopeError::DecryptFailed));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let ring = ring(1, &[1]);
        prop_assert!(ring.open(&bytes, AAD).is_err());
        let _ = sealed_by(&bytes);
    }

    /// Values that parse but were never sealed: a valid header for this ring, then noise.
    #[test]
    fn forged_bodies_never_open(body in proptest::collection::vec(any::<u8>(), 0..96)) {
        let ring = ring(1, &[1]);
        let mut forged = ring.seal(b"", b"").unwrap();
        forged.truncate(prefix_len());
        forged.extend_from_slice(&body);
        let expected =
            if body.len() < TAG_LEN { EnvelopeError::Truncated } else { EnvelopeError::DecryptFailed };
        prop_assert_eq!(ring.open(&forged, AAD), Err(expected));
    }
}
