use crypto::password::{PasswordError, hash_password, verify_password};

#[test]
fn hash_round_trips_with_owasp_parameters() {
    let password = "correct horse battery";
    let phc = hash_password(password).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert_eq!(verify_password(password, &phc), Ok(true));
    assert_eq!(verify_password("correct horse batterY", &phc), Ok(false));
    assert_eq!(verify_password("", &phc), Ok(false));
    assert_eq!(verify_password(&"x".repeat(1025), &phc), Ok(false));
    assert_ne!(hash_password(password).unwrap(), phc, "a fresh salt every time");
}

#[test]
fn length_counts_characters_not_bytes() {
    assert_eq!(hash_password("short pass1").err(), Some(PasswordError::TooShort));
    assert_eq!(hash_password(&"é".repeat(11)).err(), Some(PasswordError::TooShort), "22 bytes");
    assert_eq!(hash_password(&"😀".repeat(11)).err(), Some(PasswordError::TooShort), "44 bytes");
    let twelve = "😀é".repeat(6);
    let phc = hash_password(&twelve).unwrap();
    assert_eq!(verify_password(&twelve, &phc), Ok(true));
}

#[test]
fn length_has_a_maximum_in_bytes() {
    assert_eq!(hash_password(&"x".repeat(1025)).err(), Some(PasswordError::TooLong));
    assert_eq!(hash_password(&"é".repeat(513)).err(), Some(PasswordError::TooLong), "1026 bytes");
    assert!(hash_password(&"x".repeat(1024)).is_ok());
}

#[test]
fn malformed_stored_hashes_are_errors_not_mismatches() {
    let phc = hash_password("correct horse battery").unwrap();
    let (prefix, output) = phc.rsplit_once('$').unwrap();
    let (_, salt) = prefix.rsplit_once('$').unwrap();
    let cases = [
        String::new(),
        "not a hash".to_owned(),
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_owned(),
        phc.replacen("$argon2id$", "$argon2i$", 1),
        phc.replacen("$argon2id$", "$scrypt$", 1),
        phc.replacen("v=19", "v=16", 1),
        phc.replacen("m=19456", "m=4194304", 1),
        phc.replacen("t=2", "t=17", 1),
        phc.replacen("p=1", "p=9", 1),
        phc.replacen("p=1", "p=1,x=1", 1),
        prefix.to_owned(),
        format!("{prefix}$"),
        format!("{prefix}$!!!!"),
        format!("$argon2id$v=19$m=19456,t=2,p=1$${output}"),
        format!("$argon2id$v=19$m=19456,t=2,p=1$%%%%$${output}"),
        format!("$argon2id$v=19$m=19456,t=2,p=1$x$${output}"),
        format!("{phc}$extra"),
        format!("$argon2id$v=19$m=19456,t=2,p=1${salt}"),
    ];
    for case in cases {
        let result = verify_password("correct horse battery", &case);
        assert_eq!(result, Err(PasswordError::MalformedHash), "{case:?}");
    }
}
