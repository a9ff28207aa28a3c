//! The scenarios of the security conformance suite (`security_conformance.rs` runs each on
//! both backends): API keys with rotation and revocation, operators with sign-in
//! accounting, operator sessions. Each takes a fresh fixture with two stores, `a` and
//! `b`, and uses both, so what one writes the other must see. Times are passed in, never
//! read.

use storage::StoreError;
use storage::operators::{FAILED_ATTEMPTS_MAX, NewOperator, Operator, Role, SignInRecorded};
use storage::sessions::{IDLE_TIMEOUT_S, PURGE_MAX, Session, Status, TOUCH_INTERVAL_S};
use storage::tenants::{ACTIVE_KEYS_MAX, ApiKeyInfo, NewApiKey, NewTenant, Tenant};
use storage::{CoreStore, ledger::TenantId};

use crate::security_conformance::Fixture;

/// A fixed "now", in Unix seconds.
const T0: u64 = 1_900_000_000;
/// A PHC string of the shape argon2 makes.
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn key(key_id: &str, created_at_s: u64) -> NewApiKey {
    NewApiKey {
        key_id: key_id.into(),
        secret_digest: [key_id.len() as u8; 32],
        sealed_secret: format!("sealed:{key_id}").into_bytes(),
        created_at_s,
    }
}

async fn tenant(store: &CoreStore, name: &str, key_id: &str) -> Tenant {
    store.create_tenant(NewTenant { name: name.into(), key: key(key_id, T0) }).await.unwrap()
}

/// Key ids of `tenant`'s active keys, sorted.
async fn active_ids(store: &CoreStore, tenant: TenantId) -> Vec<String> {
    let keys = store.api_keys().await.unwrap();
    let mut ids: Vec<String> =
        keys.into_iter().filter(|k| k.tenant == tenant).map(|k| k.key_id).collect();
    ids.sort();
    ids
}

fn info(key_id: &str, tenant: TenantId, created_at_s: u64, revoked: Option<u64>) -> ApiKeyInfo {
    ApiKeyInfo { key_id: key_id.into(), tenant, created_at_s, revoked_at_s: revoked }
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Invalid(_)))
}

pub(crate) async fn tenants_are_found_by_id_and_name(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme", "pk_acme").await;
    assert_eq!(b.tenant(acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(b.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(a.tenant(acme.id + 1000).await.unwrap(), None);
    assert_eq!(a.tenant_by_name("globex").await.unwrap(), None);
    let same_name = b.create_tenant(NewTenant { name: "acme".into(), key: key("pk_2", T0) });
    assert!(matches!(same_name.await, Err(StoreError::TenantExists(name)) if name == "acme"));
    let same_key = b.create_tenant(NewTenant { name: "globex".into(), key: key("pk_acme", T0) });
    assert!(matches!(same_key.await, Err(StoreError::KeyExists)));
    assert_eq!(a.tenant_by_name("globex").await.unwrap(), None, "the failed create wrote nothing");
    let bad_name = a.create_tenant(NewTenant { name: "Acme Corp".into(), key: key("pk_3", T0) });
    assert!(is_invalid(bad_name.await));
    let globex = tenant(b, "globex", "pk_globex").await;
    assert_ne!(globex.id, acme.id);
}

pub(crate) async fn keys_rotate_with_two_active_and_a_third_refused(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme", "pk_1").await;
    a.add_api_key(acme.id, key("pk_2", T0 + 10)).await.unwrap();
    assert_eq!(active_ids(b, acme.id).await, ["pk_1", "pk_2"]);
    let third = b.add_api_key(acme.id, key("pk_3", T0 + 20)).await;
    assert!(matches!(third, Err(StoreError::TooManyKeys)), "{third:?}");
    assert_eq!(active_ids(a, acme.id).await.len(), ACTIVE_KEYS_MAX);
    // What the key cache needs comes back as stored: digest and sealed secret.
    let keys = b.api_keys().await.unwrap();
    let second = keys.iter().find(|k| k.key_id == "pk_2").unwrap();
    assert_eq!((second.tenant, second.secret_digest), (acme.id, [4; 32]));
    assert_eq!(second.sealed_secret, b"sealed:pk_2");

    // Rotation: revoke the old key, then the third fits.
    assert!(b.revoke_api_key(acme.id, "pk_1", T0 + 30).await.unwrap());
    assert!(!a.revoke_api_key(acme.id, "pk_1", T0 + 31).await.unwrap(), "revoked already");
    a.add_api_key(acme.id, key("pk_3", T0 + 40)).await.unwrap();
    assert_eq!(active_ids(b, acme.id).await, ["pk_2", "pk_3"], "only active keys are listed");
    let infos = b.api_key_infos(acme.id).await.unwrap();
    let expected = [
        info("pk_1", acme.id, T0, Some(T0 + 30)),
        info("pk_2", acme.id, T0 + 10, None),
        info("pk_3", acme.id, T0 + 40, None),
    ];
    assert_eq!(infos, expected, "every key, revoked too, oldest first");
    // A revoked key id is never reused.
    assert!(a.revoke_api_key(acme.id, "pk_2", T0 + 50).await.unwrap());
    let reused = a.add_api_key(acme.id, key("pk_1", T0 + 60)).await;
    assert!(matches!(reused, Err(StoreError::KeyExists)), "{reused:?}");
    assert_eq!(active_ids(a, acme.id).await, ["pk_3"]);
}

pub(crate) async fn a_tenant_cannot_revoke_another_tenants_key(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme", "pk_acme").await;
    let globex = tenant(a, "globex", "pk_globex").await;
    assert!(!b.revoke_api_key(globex.id, "pk_acme", T0 + 1).await.unwrap());
    assert_eq!(
        active_ids(a, acme.id).await,
        ["pk_acme"],
        "another tenant's revoke changed nothing"
    );
    assert_eq!(b.api_key_infos(acme.id).await.unwrap(), [info("pk_acme", acme.id, T0, None)]);
    assert!(!a.revoke_api_key(acme.id, "pk_nobody", T0 + 1).await.unwrap());
    assert_eq!(b.api_key_infos(globex.id + 1000).await.unwrap(), []);

    let unknown = a.add_api_key(globex.id + 1000, key("pk_new", T0)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound("tenant"))), "{unknown:?}");
    let broken: [fn(&mut NewApiKey); 5] = [
        |k| k.sealed_secret.clear(),
        |k| k.sealed_secret = vec![0; 1025],
        |k| k.key_id = "pk with spaces".into(),
        |k| k.key_id.clear(),
        |k| k.created_at_s = u64::MAX,
    ];
    for breaks in broken {
        let mut bad = key("pk_new", T0);
        breaks(&mut bad);
        assert!(is_invalid(b.add_api_key(acme.id, bad).await));
    }
    let mut largest = key("pk_large", T0);
    largest.sealed_secret = vec![0xa5; 1024];
    b.add_api_key(acme.id, largest).await.unwrap();
    let stored = a.api_keys().await.unwrap();
    assert_eq!(stored.iter().find(|k| k.key_id == "pk_large").unwrap().sealed_secret, [0xa5; 1024]);
    assert!(is_invalid(a.revoke_api_key(acme.id, "pk_acme", u64::MAX).await));
}

pub(crate) async fn simultaneous_key_adds_never_exceed_two_active(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme", "pk_initial").await;
    for round in 0..3u64 {
        let add = |store: &'static str, n: u64| {
            let s = if store == "a" { a } else { b };
            s.add_api_key(acme.id, key(&format!("pk_r{round}_{n}"), T0 + round))
        };
        let results = tokio::join!(add("a", 1), add("b", 2), add("a", 3), add("b", 4), add("a", 5));
        let results = [results.0, results.1, results.2, results.3, results.4];
        let added = results.iter().filter(|r| r.is_ok()).count();
        let refused = results.iter().filter(|r| matches!(r, Err(StoreError::TooManyKeys))).count();
        assert_eq!((added, refused), (1, 4), "round {round}: {results:?}");
        assert_eq!(active_ids(b, acme.id).await.len(), ACTIVE_KEYS_MAX);
        // Make room for the next round: revoke every key but the newest.
        let mut infos = a.api_key_infos(acme.id).await.unwrap();
        let this_round = format!("pk_r{round}_");
        infos.retain(|k| k.revoked_at_s.is_none() && !k.key_id.starts_with(&this_round));
        for old in infos {
            assert!(a.revoke_api_key(acme.id, &old.key_id, T0 + round).await.unwrap());
        }
    }
}

fn new_operator(username: &str, role: Role) -> NewOperator {
    NewOperator {
        username: username.into(),
        role,
        password_phc: PHC.into(),
        totp_sealed: format!("sealed-totp:{username}").into_bytes(),
        created_at_s: T0,
    }
}

async fn operator(store: &CoreStore, username: &str) -> Operator {
    store.create_operator(new_operator(username, Role::Operator)).await.unwrap()
}

pub(crate) async fn operators_are_created_once_and_found(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let ada = a.create_operator(new_operator("ada.lovelace", Role::Admin)).await.unwrap();
    assert_eq!(
        (ada.username.as_str(), ada.role, ada.password_phc.as_str()),
        ("ada.lovelace", Role::Admin, PHC)
    );
    assert_eq!(ada.totp_sealed, b"sealed-totp:ada.lovelace");
    assert_eq!((ada.failed_attempts, ada.locked, ada.disabled), (0, false, false));
    assert_eq!((ada.totp_last_step, ada.created_at_s), (None, T0));
    let grace = b.create_operator(new_operator("grace_h-1", Role::InformationOfficer));
    let grace = grace.await.unwrap();
    assert!(grace.id > ada.id, "ids are assigned in order");
    let taken = b.create_operator(new_operator("ada.lovelace", Role::Auditor)).await;
    let error = taken.unwrap_err();
    assert!(matches!(error, StoreError::OperatorExists), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("lovelace"), "no username in errors");

    assert_eq!(b.operator(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(a.operator_by_username("grace_h-1").await.unwrap(), Some(grace.clone()));
    assert_eq!(a.operator(grace.id + 1000).await.unwrap(), None);
    assert_eq!(b.operator_by_username("nobody").await.unwrap(), None);
    assert_eq!(b.operator_by_username("Not A Username").await.unwrap(), None);
    assert_eq!(a.operators().await.unwrap(), [ada.clone(), grace]);
    let text = format!("{ada:?}");
    assert!(
        !text.contains("lovelace") && !text.contains("argon2") && !text.contains("sealed-totp")
    );

    let broken: [fn(&mut NewOperator); 7] = [
        |o| o.username = "ab".into(),
        |o| o.username = "Ada".into(),
        |o| o.password_phc = "plain password".into(),
        |o| o.password_phc = format!("${}", "x".repeat(512)),
        |o| o.totp_sealed.clear(),
        |o| o.totp_sealed = vec![1; 1025],
        |o| o.created_at_s = u64::MAX,
    ];
    for breaks in broken {
        let mut bad = new_operator("valid.name", Role::Auditor);
        breaks(&mut bad);
        assert!(is_invalid(a.create_operator(bad).await));
    }
    assert_eq!(b.operators().await.unwrap().len(), 2, "nothing invalid was stored");
}

pub(crate) async fn failures_lock_out_at_exactly_ten(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let op = operator(a, "ada").await;
    for n in 1..FAILED_ATTEMPTS_MAX {
        let store = if n % 2 == 0 { a } else { b };
        let updated = store.record_sign_in_failure(op.id).await.unwrap().unwrap();
        assert_eq!((updated.failed_attempts, updated.locked), (n, false), "failure {n}");
    }
    let tenth = a.record_sign_in_failure(op.id).await.unwrap().unwrap();
    assert_eq!((tenth.failed_attempts, tenth.locked), (FAILED_ATTEMPTS_MAX, true));
    let more = b.record_sign_in_failure(op.id).await.unwrap().unwrap();
    assert_eq!((more.failed_attempts, more.locked), (FAILED_ATTEMPTS_MAX, true));
    assert_eq!(b.record_sign_in_success(op.id, 1).await.unwrap(), SignInRecorded::Locked);
    assert_eq!(a.operator(op.id).await.unwrap().unwrap().totp_last_step, None);

    assert!(b.unlock_operator(op.id).await.unwrap());
    let unlocked = a.operator(op.id).await.unwrap().unwrap();
    assert_eq!((unlocked.failed_attempts, unlocked.locked), (0, false));
    assert_eq!(a.record_sign_in_success(op.id, 1).await.unwrap(), SignInRecorded::Recorded);
    assert_eq!(a.record_sign_in_failure(op.id + 1000).await.unwrap(), None);
    assert!(!b.unlock_operator(op.id + 1000).await.unwrap());
}

pub(crate) async fn success_resets_failures_and_a_step_is_used_once(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let op = operator(a, "ada").await;
    for _ in 0..3 {
        b.record_sign_in_failure(op.id).await.unwrap();
    }
    assert_eq!(a.record_sign_in_success(op.id, 100).await.unwrap(), SignInRecorded::Recorded);
    let after = b.operator(op.id).await.unwrap().unwrap();
    assert_eq!((after.failed_attempts, after.totp_last_step), (0, Some(100)));
    assert_eq!(b.record_sign_in_success(op.id, 100).await.unwrap(), SignInRecorded::CodeReused);
    assert_eq!(a.record_sign_in_success(op.id, 99).await.unwrap(), SignInRecorded::CodeReused);
    assert_eq!(b.record_sign_in_success(op.id, 101).await.unwrap(), SignInRecorded::Recorded);
    assert_eq!(a.operator(op.id).await.unwrap().unwrap().totp_last_step, Some(101));
    assert_eq!(a.record_sign_in_success(op.id + 1000, 5).await.unwrap(), SignInRecorded::NotFound);
    assert!(is_invalid(a.record_sign_in_success(op.id, u64::MAX).await));
    // A refused code leaves the failures alone (the gateway counts the failure itself).
    b.record_sign_in_failure(op.id).await.unwrap();
    assert_eq!(a.record_sign_in_success(op.id, 101).await.unwrap(), SignInRecorded::CodeReused);
    assert_eq!(b.operator(op.id).await.unwrap().unwrap().failed_attempts, 1);
}

pub(crate) async fn simultaneous_sign_ins_with_one_step_record_it_once(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let op = operator(a, "ada").await;
    for step in 1000..1010u64 {
        let results = tokio::join!(
            a.record_sign_in_success(op.id, step),
            b.record_sign_in_success(op.id, step),
            a.record_sign_in_success(op.id, step),
            b.record_sign_in_success(op.id, step),
            a.record_sign_in_success(op.id, step),
            b.record_sign_in_success(op.id, step),
        );
        let results = [results.0, results.1, results.2, results.3, results.4, results.5];
        let results: Vec<SignInRecorded> = results.into_iter().map(Result::unwrap).collect();
        let recorded = results.iter().filter(|r| **r == SignInRecorded::Recorded).count();
        let reused = results.iter().filter(|r| **r == SignInRecorded::CodeReused).count();
        assert_eq!((recorded, reused), (1, 5), "step {step}: {results:?}");
    }
    assert_eq!(b.operator(op.id).await.unwrap().unwrap().totp_last_step, Some(1009));
}

pub(crate) async fn disabled_operators_are_refused_and_passwords_replaced(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let op = operator(a, "ada").await;
    assert!(a.set_operator_disabled(op.id, true).await.unwrap());
    assert!(b.operator(op.id).await.unwrap().unwrap().disabled);
    assert_eq!(b.record_sign_in_success(op.id, 7).await.unwrap(), SignInRecorded::Disabled);
    for _ in 0..FAILED_ATTEMPTS_MAX {
        a.record_sign_in_failure(op.id).await.unwrap();
    }
    assert_eq!(b.record_sign_in_success(op.id, 7).await.unwrap(), SignInRecorded::Disabled);
    assert!(b.set_operator_disabled(op.id, false).await.unwrap());
    assert_eq!(a.record_sign_in_success(op.id, 7).await.unwrap(), SignInRecorded::Locked);
    assert!(a.unlock_operator(op.id).await.unwrap());
    assert_eq!(a.record_sign_in_success(op.id, 7).await.unwrap(), SignInRecorded::Recorded);

    let replaced = format!("{PHC}x");
    assert!(b.set_operator_password(op.id, replaced.clone()).await.unwrap());
    assert_eq!(a.operator(op.id).await.unwrap().unwrap().password_phc, replaced);
    assert!(is_invalid(a.set_operator_password(op.id, "not a phc".into()).await));
    assert!(!a.set_operator_password(op.id + 1000, PHC.into()).await.unwrap());
    assert!(!b.set_operator_disabled(op.id + 1000, true).await.unwrap());
}

fn sid(n: u32) -> String {
    format!("sid-{n:04}-0123456789abcdef")
}

pub(crate) async fn sessions_are_created_once_and_checked(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let session = Session::new(sid(1), "7", "admin", T0);
    a.create_session(&session).await.unwrap();
    assert_eq!(b.session(&session.id, T0 + 1).await.unwrap(), Some(session.clone()));
    let error = b.create_session(&Session::new(sid(1), "8", "admin", T0 + 5)).await.unwrap_err();
    assert!(matches!(error, StoreError::SessionExists), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&sid(1)), "no session id in errors");
    assert_eq!(a.session(&sid(1), T0 + 6).await.unwrap().unwrap().operator_id, "7", "kept");
    // A revoked id stays taken.
    assert!(a.revoke_session(&sid(1)).await.unwrap());
    let again = b.create_session(&Session::new(sid(1), "7", "admin", T0 + 7)).await;
    assert!(matches!(again, Err(StoreError::SessionExists)), "{again:?}");
    assert_eq!(a.session(&sid(2), T0).await.unwrap(), None);
    assert!(!b.revoke_session(&sid(2)).await.unwrap());

    for bad in ["short-s3cr3t", "has spaces in it but long enough", &"x".repeat(129), ""] {
        let error = a.session(bad, T0).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
        assert!(bad.is_empty() || !format!("{error} {error:?}").contains(bad));
        assert!(is_invalid(b.create_session(&Session::new(bad, "7", "admin", T0)).await));
        assert!(is_invalid(a.session_touch(bad, T0).await));
        assert!(is_invalid(b.revoke_session(bad).await));
    }
    let mut broken = vec![
        Session::new(sid(3), "", "admin", T0),
        Session::new(sid(3), "7", "", T0),
        Session::new(sid(3), "x".repeat(129), "admin", T0),
        Session::new(sid(3), "7", "admin", u64::MAX - 1),
    ];
    let mut revoked = Session::new(sid(3), "7", "admin", T0);
    revoked.revoked = true;
    broken.push(revoked);
    let mut backwards = Session::new(sid(3), "7", "admin", T0);
    backwards.expires_at_s = T0;
    broken.push(backwards);
    for bad in broken {
        assert!(is_invalid(a.create_session(&bad).await), "{bad:?}");
    }
    assert!(is_invalid(a.revoke_sessions_of("").await));
    assert_eq!(b.session(&sid(3), T0).await.unwrap(), None, "nothing invalid was stored");
}

pub(crate) async fn idle_sessions_expire_and_touch_extends_them(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let id = sid(1);
    a.create_session(&Session::new(&id, "7", "auditor", T0)).await.unwrap();
    assert!(b.session(&id, T0 + IDLE_TIMEOUT_S).await.unwrap().is_some(), "at the limit: live");
    assert_eq!(b.session(&id, T0 + IDLE_TIMEOUT_S + 1).await.unwrap(), None, "idle-expired");

    // Within the touch interval nothing is written; beyond it last_seen moves forward.
    let quiet = a.session_get_and_touch(&id, T0 + TOUCH_INTERVAL_S - 1).await.unwrap().unwrap();
    assert_eq!(quiet.last_seen_s, T0);
    assert_eq!(b.session(&id, T0 + TOUCH_INTERVAL_S - 1).await.unwrap().unwrap().last_seen_s, T0);
    let touched = a.session_get_and_touch(&id, T0 + 600).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_s, T0 + 600);
    let later = T0 + 600 + IDLE_TIMEOUT_S;
    assert_eq!(b.session(&id, later).await.unwrap().unwrap().last_seen_s, T0 + 600);
    assert_eq!(b.session(&id, later + 1).await.unwrap(), None);

    // An idle-expired session is not revived, by a touch or a get-and-touch.
    assert_eq!(a.session_touch(&id, later + 1).await.unwrap(), None);
    assert_eq!(b.session_get_and_touch(&id, later + 1).await.unwrap(), None);
    assert_eq!(a.session(&id, later).await.unwrap().unwrap().last_seen_s, T0 + 600);
    // last_seen never moves backwards.
    let back = b.session_touch(&id, T0 + 300).await.unwrap().unwrap();
    assert_eq!(back.last_seen_s, T0 + 600);
    assert_eq!(a.session_touch(&sid(2), T0).await.unwrap(), None, "no such session");
}

pub(crate) async fn sessions_end_at_their_absolute_expiry(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let mut session = Session::new(sid(1), "7", "information_officer", T0);
    session.expires_at_s = T0 + 100;
    a.create_session(&session).await.unwrap();
    assert!(b.session(&session.id, T0 + 60).await.unwrap().is_some());
    let touched = a.session_get_and_touch(&session.id, T0 + 99).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_s, T0 + 99);
    assert_eq!(b.session(&session.id, T0 + 100).await.unwrap(), None);
    assert_eq!(a.session_touch(&session.id, T0 + 100).await.unwrap(), None, "no touch past it");
    assert_eq!(b.session_get_and_touch(&session.id, T0 + 100).await.unwrap(), None);
    assert_eq!(session.status(T0 + 100), Status::Expired);
}

pub(crate) async fn sessions_are_revoked_one_by_one_or_all_of_an_operator(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let mine: Vec<String> = (1..=3).map(sid).collect();
    for id in &mine {
        a.create_session(&Session::new(id, "op-revoked", "operator", T0)).await.unwrap();
    }
    let other = sid(9);
    b.create_session(&Session::new(&other, "op-kept", "operator", T0)).await.unwrap();

    assert!(b.revoke_session(&mine[0]).await.unwrap());
    assert_eq!(a.session(&mine[0], T0 + 1).await.unwrap(), None, "revoked at once, elsewhere");
    assert_eq!(a.session_touch(&mine[0], T0 + 2).await.unwrap(), None, "a touch cannot revive");
    assert!(a.revoke_session(&mine[0]).await.unwrap(), "revoking again is harmless");
    assert!(a.session(&mine[1], T0 + 1).await.unwrap().is_some());

    assert_eq!(a.revoke_sessions_of("op-revoked").await.unwrap(), 3, "every stored session");
    for id in &mine {
        assert_eq!(b.session(id, T0 + 2).await.unwrap(), None);
    }
    assert!(b.session(&other, T0 + 2).await.unwrap().is_some(), "another operator's stays");
    assert_eq!(b.revoke_sessions_of("op-nobody").await.unwrap(), 0);
}

pub(crate) async fn dead_sessions_are_purged_when_sessions_are_created(fx: &mut impl Fixture) {
    let dead_count = PURGE_MAX as u32 + 44;
    for n in 0..dead_count {
        let mut dead = Session::new(sid(n), format!("op-{}", n % 3), "operator", T0);
        dead.expires_at_s = T0 + 10;
        fx.a().create_session(&dead).await.unwrap();
    }
    // Revoked but not expired: kept, so its id stays taken.
    let revoked = Session::new(sid(5000), "op-0", "admin", T0);
    fx.b().create_session(&revoked).await.unwrap();
    assert!(fx.b().revoke_session(&revoked.id).await.unwrap());
    let live = Session::new(sid(5001), "op-1", "admin", T0);
    fx.a().create_session(&live).await.unwrap();
    assert_eq!(fx.stored_sessions().await, dead_count as usize + 2);

    // Each create after the expiry deletes at most PURGE_MAX dead sessions.
    fx.b().create_session(&Session::new(sid(6000), "op-2", "admin", T0 + 20)).await.unwrap();
    assert_eq!(fx.stored_sessions().await, dead_count as usize + 3 - PURGE_MAX);
    fx.a().create_session(&Session::new(sid(6001), "op-2", "admin", T0 + 21)).await.unwrap();
    assert_eq!(fx.stored_sessions().await, 4, "the rest of the dead ones went next");

    assert!(fx.b().session(&live.id, T0 + 22).await.unwrap().is_some());
    let taken = fx.a().create_session(&Session::new(&revoked.id, "op-0", "admin", T0 + 23)).await;
    assert!(matches!(taken, Err(StoreError::SessionExists)), "{taken:?}");
    // A purged session is gone from its operator's sessions too.
    assert_eq!(fx.a().revoke_sessions_of("op-2").await.unwrap(), 2, "only the two new ones");
    // A dead id may be created again once purged (ids are random: this never matters).
    fx.b().create_session(&Session::new(sid(0), "op-0", "admin", T0 + 30)).await.unwrap();
}
