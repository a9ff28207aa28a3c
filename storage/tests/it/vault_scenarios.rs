//! The scenarios of the vault conformance suite (`vault_conformance.rs` runs each on both
//! backends): subjects and their blind indexes, updates, erasure, the retention and
//! KEK-rotation queries, consent, accounts by owner, and the erasure dump. Each takes a
//! fresh fixture with two stores, `a` and `b`, and uses both, so what one writes the other
//! must see. Times are passed in, never read; sealed values and wrapped keys are made-up
//! bytes (storage never opens them).

use storage::ledger::{Account, Event, NewTransfer, TenantId, TransferFlags};
use storage::tenants::{NewApiKey, NewTenant};
use storage::vault::consent::{CONSENTS_PER_SUBJECT_MAX, Consent, NewConsent};
use storage::vault::{
    BlindIndex, FIELDS_MAX, FieldValue, IndexEntry, NewSubject, ROWS_MAX, Subject, SubjectCounts,
    SubjectUpdate,
};
use storage::{CoreStore, StoreError};

use crate::ledger_support::Acct;
use crate::vault_conformance::Fixture;

/// A fixed "now", in Unix seconds.
const T0: u64 = 1_900_000_000;

/// Creates a tenant named `name` (with a key of its own) and returns its id.
pub(crate) async fn tenant(store: &CoreStore, name: &str) -> TenantId {
    let key = NewApiKey {
        key_id: format!("pk_{name}"),
        secret_digest: [1; 32],
        sealed_secret: vec![2; 40],
        created_at_s: T0,
    };
    store.create_tenant(NewTenant { name: name.into(), key }).await.unwrap().id
}

fn value(name: &str, sealed: &[u8], updated_at_s: u64) -> FieldValue {
    FieldValue { name: name.into(), sealed: sealed.to_vec(), updated_at_s }
}

/// Subject `id` of `tenant` made at `T0` with KEK version 1 and `fields` set at `T0`.
pub(crate) fn subject_with(tenant: TenantId, id: u128, fields: &[(&str, &[u8])]) -> NewSubject {
    NewSubject {
        tenant,
        id,
        wrapped_key: format!("wrapped-key-of-{id}").into_bytes(),
        kek_version: 1,
        fields: fields.iter().map(|(name, sealed)| value(name, sealed, T0)).collect(),
        created_at_s: T0,
    }
}

fn index(byte: u8) -> BlindIndex {
    [byte; 16]
}

fn entry(field: &str, byte: u8) -> IndexEntry {
    IndexEntry { field: field.into(), index: index(byte) }
}

/// Account `id` of `tenant` owned by `subject` (0: no owner), created through the ledger.
pub(crate) fn owned_account(tenant: TenantId, id: u128, subject: u128) -> Event {
    let Event::CreateAccount(tenant, mut new) = Acct::new(id, 1).tenant(tenant).ev() else {
        unreachable!("Acct builds account events")
    };
    new.subject_id = subject;
    Event::CreateAccount(tenant, new)
}

fn transfer(tenant: TenantId, id: u128, debit: u128, credit: u128, amount: u64) -> Event {
    let new = NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        user_data: 0,
        ledger: 1,
        code: 1,
        flags: TransferFlags::empty(),
        timeout_seconds: 0,
    };
    Event::CreateTransfer(tenant, new)
}

async fn submit_ok(store: &CoreStore, events: Vec<Event>) {
    let outcomes = store.submit(events).await.unwrap().outcomes;
    assert!(outcomes.iter().all(|o| o.code.is_success()), "{outcomes:?}");
}

async fn read(store: &CoreStore, tenant: TenantId, id: u128) -> Subject {
    store.subject(tenant, id).await.unwrap().expect("the subject is stored")
}

fn names(subject: &Subject) -> Vec<&str> {
    subject.fields.iter().map(|v| v.name.as_str()).collect()
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Invalid(_)))
}

async fn by_index(store: &CoreStore, tenant: TenantId, field: &str, byte: u8) -> Vec<u128> {
    store.subjects_by_index(tenant, field, index(byte), 100).await.unwrap()
}

pub(crate) async fn subjects_are_created_once_and_read_back(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(a, "globex").await;
    let mut new = subject_with(acme, 0x1234, &[("phone", b"s-phone"), ("email", b"s-email")]);
    new.fields.push(value("id_number", b"s-id", T0 + 1));
    new.fields.push(value("address_line_1", &[0xee; 8192], T0 + 2));
    a.create_subject(new.clone(), vec![entry("email", 1), entry("phone", 2)]).await.unwrap();

    let stored = read(b, acme, 0x1234).await;
    assert_eq!(names(&stored), ["address_line_1", "email", "id_number", "phone"], "byte order");
    assert_eq!((stored.tenant, stored.id, stored.kek_version), (acme, 0x1234, 1));
    assert_eq!(stored.wrapped_key, b"wrapped-key-of-4660");
    assert_eq!((stored.created_at_s, stored.updated_at_s, stored.erased_at_s), (T0, T0, None));
    assert_eq!(stored.fields[0], value("address_line_1", &[0xee; 8192], T0 + 2));
    assert_eq!(stored.fields[1], value("email", b"s-email", T0));
    let text = format!("{stored:?}");
    assert!(!text.contains("s-email") && !text.contains("wrapped-key") && !text.contains("238"));

    // An id is taken once per tenant, even with other content; another tenant may use it.
    let again = b.create_subject(subject_with(acme, 0x1234, &[("email", b"x")]), vec![]).await;
    let error = again.unwrap_err();
    assert!(matches!(error, StoreError::SubjectExists), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("4660"), "no subject id in errors");
    assert_eq!(read(a, acme, 0x1234).await, stored, "the refused create changed nothing");
    b.create_subject(subject_with(globex, 0x1234, &[("email", b"g")]), vec![entry("email", 1)])
        .await
        .unwrap();
    assert_eq!(read(a, globex, 0x1234).await.fields, [value("email", b"g", T0)]);
    assert_eq!(by_index(a, acme, "email", 1).await, [0x1234]);
    assert_eq!(by_index(b, globex, "email", 1).await, [0x1234]);
    assert_eq!(a.subject(acme, 0x9999).await.unwrap(), None);
    assert_eq!(b.subject(globex + 100, 0x1234).await.unwrap(), None);

    let unknown = a.create_subject(subject_with(globex + 100, 1, &[]), vec![]).await;
    assert!(matches!(unknown, Err(StoreError::NotFound("tenant"))), "{unknown:?}");
    let counts = b.subject_counts().await.unwrap();
    assert_eq!(counts, SubjectCounts { live: 2, erased: 0 });
}

pub(crate) async fn subject_rules_are_enforced_and_nothing_invalid_is_stored(
    fx: &mut impl Fixture,
) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let broken: [fn(&mut NewSubject); 7] = [
        |s| s.id = 0,
        |s| s.wrapped_key.clear(),
        |s| s.wrapped_key = vec![1; 1025],
        |s| s.fields[0].sealed.clear(),
        |s| s.fields[0].sealed = vec![1; 8193],
        |s| s.fields[0].name = "E-mail".into(),
        |s| s.fields = (0..=FIELDS_MAX).map(|n| value(&format!("f{n}"), b"v", T0)).collect(),
    ];
    for breaks in broken {
        let mut bad = subject_with(acme, 5, &[("email", b"v")]);
        breaks(&mut bad);
        assert!(is_invalid(a.create_subject(bad, vec![]).await));
    }
    let orphan_index = subject_with(acme, 5, &[("email", b"v")]);
    assert!(is_invalid(b.create_subject(orphan_index, vec![entry("phone", 1)]).await));
    assert_eq!(b.subject(acme, 5).await.unwrap(), None, "nothing invalid was stored");
    assert_eq!(a.subject_counts().await.unwrap(), SubjectCounts::default());
    let widest = (0..FIELDS_MAX).map(|n| value(&format!("f{n:02}"), b"v", T0)).collect();
    let full = NewSubject { fields: widest, ..subject_with(acme, 6, &[]) };
    b.create_subject(full, vec![]).await.unwrap();
    assert_eq!(read(a, acme, 6).await.fields.len(), FIELDS_MAX);
    assert!(is_invalid(a.subjects_by_index(acme, "email", index(1), ROWS_MAX + 1).await));
    assert!(is_invalid(a.accounts_of_subject(acme, 6, ROWS_MAX + 1).await));
    assert!(is_invalid(b.subjects_wrapped_before(2, ROWS_MAX + 1).await));
}

pub(crate) async fn updates_replace_values_and_the_indexes_of_what_they_touch(
    fx: &mut impl Fixture,
) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let fields: [(&str, &[u8]); 3] =
        [("email", b"old-mail"), ("phone", b"ph"), ("id_number", b"i")];
    let indexes = vec![entry("email", 1), entry("phone", 2), entry("id_number", 3)];
    a.create_subject(subject_with(acme, 9, &fields), indexes).await.unwrap();

    let update = SubjectUpdate {
        set: vec![value("email", b"new-mail", T0 + 60), value("nickname", b"nn", T0 + 60)],
        remove: vec!["phone".into()],
        indexes_set: vec![entry("email", 11)],
        indexes_removed_fields: vec!["id_number".into()],
    };
    assert!(b.update_subject_fields(acme, 9, update, T0 + 61).await.unwrap());
    let stored = read(a, acme, 9).await;
    assert_eq!(names(&stored), ["email", "id_number", "nickname"]);
    assert_eq!(stored.fields[0], value("email", b"new-mail", T0 + 60));
    assert_eq!(stored.fields[1], value("id_number", b"i", T0), "untouched");
    assert_eq!((stored.created_at_s, stored.updated_at_s), (T0, T0 + 61));
    assert_eq!(by_index(a, acme, "email", 1).await, [0u128; 0], "the old value's index went");
    assert_eq!(by_index(b, acme, "email", 11).await, [9]);
    assert_eq!(by_index(a, acme, "phone", 2).await, [0u128; 0], "a removed value's index went");
    assert_eq!(by_index(b, acme, "id_number", 3).await, [0u128; 0], "dropped, value kept");

    // A value set without a new index loses its old one: an index never outlives its value.
    let reindex = SubjectUpdate { indexes_set: vec![entry("id_number", 4)], ..Default::default() };
    assert!(a.update_subject_fields(acme, 9, reindex, T0 + 70).await.unwrap());
    assert_eq!(by_index(b, acme, "id_number", 4).await, [9]);
    let reset =
        SubjectUpdate { set: vec![value("id_number", b"j", T0 + 80)], ..Default::default() };
    assert!(b.update_subject_fields(acme, 9, reset, T0 + 80).await.unwrap());
    assert_eq!(by_index(a, acme, "id_number", 4).await, [0u128; 0]);
    assert_eq!(read(a, acme, 9).await.fields[1], value("id_number", b"j", T0 + 80));

    let nobody = SubjectUpdate { set: vec![value("email", b"x", T0)], ..Default::default() };
    assert!(!a.update_subject_fields(acme, 10, nobody.clone(), T0 + 90).await.unwrap());
    assert!(!b.update_subject_fields(acme + 1, 9, nobody, T0 + 90).await.unwrap());
    assert_eq!(a.subject(acme, 10).await.unwrap(), None, "an update creates nothing");
}

pub(crate) async fn updates_are_atomic_and_bounded(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    a.create_subject(subject_with(acme, 9, &[("email", b"e")]), vec![entry("email", 1)])
        .await
        .unwrap();
    let before = read(b, acme, 9).await;

    // An index on a field the subject will not hold refuses the whole update.
    let orphan = SubjectUpdate {
        set: vec![value("email", b"changed", T0 + 5)],
        remove: vec![],
        indexes_set: vec![entry("email", 2), entry("phone", 3)],
        indexes_removed_fields: vec![],
    };
    assert!(is_invalid(b.update_subject_fields(acme, 9, orphan, T0 + 5).await));
    let removed_then_indexed = SubjectUpdate {
        remove: vec!["email".into()],
        indexes_set: vec![entry("email", 2)],
        ..Default::default()
    };
    assert!(is_invalid(a.update_subject_fields(acme, 9, removed_then_indexed, T0 + 5).await));
    assert_eq!(read(a, acme, 9).await, before, "refused updates changed nothing");
    assert_eq!(by_index(b, acme, "email", 1).await, [9], "nor the indexes");

    // At most FIELDS_MAX values after the change.
    let many = |from: usize, count: usize| -> Vec<FieldValue> {
        (from..from + count).map(|n| value(&format!("f{n:02}"), b"v", T0)).collect()
    };
    let fill = SubjectUpdate { set: many(0, FIELDS_MAX - 1), ..Default::default() };
    assert!(a.update_subject_fields(acme, 9, fill, T0 + 6).await.unwrap());
    let over = SubjectUpdate { set: many(FIELDS_MAX - 1, 1), ..Default::default() };
    assert!(is_invalid(b.update_subject_fields(acme, 9, over.clone(), T0 + 7).await));
    assert_eq!(read(a, acme, 9).await.fields.len(), FIELDS_MAX);
    let swap = SubjectUpdate { remove: vec!["f00".into()], ..over };
    assert!(b.update_subject_fields(acme, 9, swap, T0 + 8).await.unwrap());
    assert_eq!(read(a, acme, 9).await.fields.len(), FIELDS_MAX);

    let set_and_removed = SubjectUpdate {
        set: vec![value("email", b"x", T0)],
        remove: vec!["email".into()],
        ..Default::default()
    };
    assert!(is_invalid(a.update_subject_fields(acme, 9, set_and_removed, T0 + 9).await));
    let late = SubjectUpdate::default();
    assert!(is_invalid(b.update_subject_fields(acme, 9, late, u64::MAX).await));
}

pub(crate) async fn blind_indexes_find_every_subject_sharing_a_value(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(b, "globex").await;
    for id in [30u128, 10, 20] {
        let subject = subject_with(acme, id, &[("email", b"shared"), ("phone", b"p")]);
        a.create_subject(subject, vec![entry("email", 7), entry("phone", id as u8)]).await.unwrap();
    }
    let other = subject_with(globex, 40, &[("email", b"shared")]);
    b.create_subject(other, vec![entry("email", 7)]).await.unwrap();

    assert_eq!(by_index(b, acme, "email", 7).await, [10, 20, 30], "in id order");
    assert_eq!(a.subjects_by_index(acme, "email", index(7), 2).await.unwrap(), [10, 20]);
    assert_eq!(a.subjects_by_index(acme, "email", index(7), 0).await.unwrap(), [0u128; 0]);
    assert_eq!(by_index(a, globex, "email", 7).await, [40], "tenants are apart");
    assert_eq!(by_index(b, acme, "phone", 7).await, [0u128; 0], "indexes are per field");
    assert_eq!(by_index(a, acme, "phone", 20).await, [20]);
    assert_eq!(by_index(b, acme, "email", 8).await, [0u128; 0]);
    assert_eq!(by_index(a, acme, "Not A Field", 7).await, [0u128; 0]);

    assert!(b.erase_subject(acme, 20, T0 + 10).await.unwrap());
    assert_eq!(by_index(a, acme, "email", 7).await, [10, 30]);
    assert_eq!(by_index(b, acme, "phone", 20).await, [0u128; 0]);
}

pub(crate) async fn erasure_shreds_keys_values_and_indexes_once(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let fields: [(&str, &[u8]); 2] = [("email", b"e"), ("phone", b"p")];
    a.create_subject(subject_with(acme, 1, &fields), vec![entry("email", 1)]).await.unwrap();
    a.create_subject(subject_with(acme, 2, &fields), vec![entry("email", 1)]).await.unwrap();
    let kept = read(b, acme, 2).await;

    assert!(b.erase_subject(acme, 1, T0 + 100).await.unwrap());
    assert!(!a.erase_subject(acme, 1, T0 + 200).await.unwrap(), "erasing twice is false");
    assert!(!a.erase_subject(acme, 3, T0 + 200).await.unwrap(), "no such subject");
    let tombstone = read(a, acme, 1).await;
    let expected = Subject {
        tenant: acme,
        id: 1,
        wrapped_key: vec![],
        kek_version: 0,
        fields: vec![],
        created_at_s: T0,
        updated_at_s: T0 + 100,
        erased_at_s: Some(T0 + 100),
    };
    assert_eq!(tombstone, expected);
    assert_eq!(read(b, acme, 2).await, kept, "another subject is untouched");
    assert_eq!(by_index(a, acme, "email", 1).await, [2]);

    let update = SubjectUpdate { set: vec![value("email", b"back", T0)], ..Default::default() };
    assert!(!b.update_subject_fields(acme, 1, update, T0 + 300).await.unwrap());
    let old_key = b"wrapped-key-of-1";
    assert!(!a.rewrap_subject_key(acme, 1, old_key, b"new".to_vec(), 2).await.unwrap());
    assert!(!a.rewrap_subject_key(acme, 1, &[], b"new".to_vec(), 2).await.unwrap());
    let wrapped = b.subjects_wrapped_before(9, 100).await.unwrap();
    assert_eq!(wrapped, [(acme, 2, b"wrapped-key-of-2".to_vec())], "erased keys are gone");
    let expired = a.expired_fields(&[("email".into(), T0 + 1)], 100).await.unwrap();
    assert_eq!(expired, [(acme, 2, "email".to_owned())], "erased values are gone");
    assert_eq!(read(b, acme, 1).await, expected, "the refused changes changed nothing");
    let again = a.create_subject(subject_with(acme, 1, &fields), vec![]).await;
    assert!(matches!(again, Err(StoreError::SubjectExists)), "a tombstone keeps its id");
    assert_eq!(b.subject_counts().await.unwrap(), SubjectCounts { live: 1, erased: 1 });
    assert!(is_invalid(b.erase_subject(acme, 2, u64::MAX).await));
}

pub(crate) async fn expired_fields_follow_each_fields_cutoff_and_the_limit(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(a, "globex").await;
    // (tenant, subject, email set at, phone set at)
    for (tenant, id, email_at, phone_at) in
        [(acme, 1, T0 + 10, T0 + 5), (acme, 2, T0 + 30, T0 + 50), (globex, 1, T0 + 10, T0 + 40)]
    {
        let mut subject = subject_with(tenant, id, &[]);
        subject.fields = vec![value("email", b"e", email_at), value("phone", b"p", phone_at)];
        subject.fields.push(value("nickname", b"n", T0));
        b.create_subject(subject, vec![]).await.unwrap();
    }
    let cutoffs = [("phone".to_owned(), T0 + 50), ("email".to_owned(), T0 + 30)];
    let expired = a.expired_fields(&cutoffs, 100).await.unwrap();
    let expected =
        [(acme, 1, "email"), (globex, 1, "email"), (acme, 1, "phone"), (globex, 1, "phone")];
    let expected: Vec<(TenantId, u128, String)> =
        expected.iter().map(|(t, s, f)| (*t, *s, (*f).to_owned())).collect();
    assert_eq!(expired, expected, "by field, then age, tenant, subject; strictly before");
    assert_eq!(b.expired_fields(&cutoffs, 3).await.unwrap(), expected[..3]);
    assert_eq!(b.expired_fields(&cutoffs, 0).await.unwrap(), []);
    let unknown = [("address".to_owned(), T0 + 1000)];
    assert_eq!(a.expired_fields(&unknown, 10).await.unwrap(), []);
    assert_eq!(a.expired_fields(&[], 10).await.unwrap(), []);

    // Setting a value again restarts its clock; removing it takes it off the list.
    let renewed = SubjectUpdate { set: vec![value("email", b"e2", T0 + 40)], ..Default::default() };
    assert!(b.update_subject_fields(acme, 1, renewed, T0 + 40).await.unwrap());
    let purged = SubjectUpdate { remove: vec!["phone".into()], ..Default::default() };
    assert!(a.update_subject_fields(globex, 1, purged, T0 + 40).await.unwrap());
    let expired = b.expired_fields(&cutoffs, 100).await.unwrap();
    assert_eq!(expired, [expected[1].clone(), expected[2].clone()]);

    let twice = [("email".to_owned(), T0), ("email".to_owned(), T0 + 1)];
    assert!(is_invalid(a.expired_fields(&twice, 10).await));
    assert!(is_invalid(a.expired_fields(&[("E".to_owned(), T0)], 10).await));
    assert!(is_invalid(b.expired_fields(&cutoffs, ROWS_MAX + 1).await));
}

pub(crate) async fn keys_are_rewrapped_by_compare_and_set(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(a, "globex").await;
    for (tenant, id, version) in [(globex, 1, 1), (acme, 2, 2), (acme, 1, 1), (acme, 3, 3)] {
        let subject = NewSubject { kek_version: version, ..subject_with(tenant, id, &[]) };
        b.create_subject(subject, vec![]).await.unwrap();
    }
    let key = |id: u128| format!("wrapped-key-of-{id}").into_bytes();
    let before = a.subjects_wrapped_before(3, 100).await.unwrap();
    assert_eq!(before, [(acme, 1, key(1)), (globex, 1, key(1)), (acme, 2, key(2))]);
    assert_eq!(b.subjects_wrapped_before(3, 2).await.unwrap(), before[..2]);
    assert_eq!(b.subjects_wrapped_before(1, 100).await.unwrap(), []);

    let stale = b"wrapped-by-someone-else";
    assert!(!a.rewrap_subject_key(acme, 1, stale, b"v3-acme-1".to_vec(), 3).await.unwrap());
    assert_eq!(read(b, acme, 1).await.wrapped_key, key(1), "a stale compare changes nothing");
    assert!(b.rewrap_subject_key(acme, 1, &key(1), b"v3-acme-1".to_vec(), 3).await.unwrap());
    let rewrapped = read(a, acme, 1).await;
    assert_eq!((rewrapped.wrapped_key.as_slice(), rewrapped.kek_version), (&b"v3-acme-1"[..], 3));
    assert!(!a.rewrap_subject_key(acme, 1, &key(1), b"again".to_vec(), 3).await.unwrap());
    let after = b.subjects_wrapped_before(3, 100).await.unwrap();
    assert_eq!(after, [(globex, 1, key(1)), (acme, 2, key(2))]);
    assert!(is_invalid(a.rewrap_subject_key(acme, 2, &key(2), vec![], 3).await));

    // Two rotations racing on one subject: exactly one wins.
    let old = key(2);
    let (first, second) = tokio::join!(
        a.rewrap_subject_key(acme, 2, &old, b"from-a".to_vec(), 3),
        b.rewrap_subject_key(acme, 2, &old, b"from-b".to_vec(), 3),
    );
    assert_eq!([first.unwrap(), second.unwrap()].iter().filter(|won| **won).count(), 1);
    assert_eq!(a.subjects_wrapped_before(3, 100).await.unwrap(), [(globex, 1, key(1))]);
    assert_eq!(read(b, acme, 3).await.kek_version, 3, "already current: never listed");
}

fn consent(tenant: TenantId, subject: u128, purpose: &str, granted: bool, at_s: u64) -> NewConsent {
    NewConsent {
        tenant,
        subject,
        purpose: purpose.into(),
        granted,
        channel: "web_form".into(),
        evidence: format!("doc-{at_s}"),
        at_s,
    }
}

fn versions(consents: &[Consent]) -> Vec<(&str, u32, bool)> {
    consents.iter().map(|c| (c.purpose.as_str(), c.version, c.granted)).collect()
}

pub(crate) async fn consent_versions_count_up_per_purpose(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    for id in [1, 2] {
        a.create_subject(subject_with(acme, id, &[("email", b"e")]), vec![]).await.unwrap();
    }
    let first = a.append_consent(consent(acme, 1, "marketing", true, T0 + 10)).await.unwrap();
    assert_eq!(first, consent(acme, 1, "marketing", true, T0 + 10).into_stored(1));
    b.append_consent(consent(acme, 1, "analytics", true, T0 + 20)).await.unwrap();
    let withdrawn = b.append_consent(consent(acme, 1, "marketing", false, T0 + 30)).await;
    assert_eq!(withdrawn.unwrap().version, 2);
    a.append_consent(consent(acme, 1, "marketing", true, T0 + 15)).await.unwrap();
    a.append_consent(consent(acme, 2, "marketing", true, T0 + 40)).await.unwrap();
    b.append_consent(consent(acme, 2, "analytics", false, T0 + 41)).await.unwrap();

    let history = b.consent_history(acme, 1).await.unwrap();
    let expected = [
        ("marketing", 1, true),
        ("marketing", 3, true),
        ("analytics", 1, true),
        ("marketing", 2, false),
    ];
    assert_eq!(versions(&history), expected, "by time, then purpose and version");
    assert_eq!(history[1].evidence, "doc-1900000015");
    assert_eq!(history[1].channel, "web_form");
    let current = a.current_consents(acme, 1).await.unwrap();
    assert_eq!(versions(&current), [("analytics", 1, true), ("marketing", 3, true)]);
    assert_eq!(current[1].at_s, T0 + 15, "the highest version, whatever its time");
    assert_eq!(a.consent_history(acme, 3).await.unwrap(), []);
    assert_eq!(b.current_consents(acme + 1, 1).await.unwrap(), []);
    let counts = b.consent_counts().await.unwrap();
    let expected = [("analytics".to_owned(), 1, 1), ("marketing".to_owned(), 2, 0)];
    assert_eq!(counts, expected, "current states only");

    let broken: [fn(&mut NewConsent); 5] = [
        |c| c.purpose = "Marketing".into(),
        |c| c.channel = String::new(),
        |c| c.evidence = "x".repeat(257),
        |c| c.evidence = "tab\there".into(),
        |c| c.at_s = u64::MAX,
    ];
    for breaks in broken {
        let mut bad = consent(acme, 1, "marketing", true, T0);
        breaks(&mut bad);
        assert!(is_invalid(a.append_consent(bad).await));
    }
    assert_eq!(b.consent_history(acme, 1).await.unwrap().len(), 4, "nothing invalid stored");
}

/// The stored record a `NewConsent` becomes (the store's own conversion is crate-private).
trait IntoStored {
    fn into_stored(self, version: u32) -> Consent;
}

impl IntoStored for NewConsent {
    fn into_stored(self, version: u32) -> Consent {
        let NewConsent { tenant, subject, purpose, granted, channel, evidence, at_s } = self;
        Consent { tenant, subject, purpose, version, granted, channel, evidence, at_s }
    }
}

pub(crate) async fn consent_needs_a_live_subject_and_survives_erasure(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(a, "globex").await;
    a.create_subject(subject_with(acme, 1, &[("email", b"e")]), vec![]).await.unwrap();
    let unknown = b.append_consent(consent(acme, 2, "marketing", true, T0)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound("subject"))), "{unknown:?}");
    let elsewhere = b.append_consent(consent(globex, 1, "marketing", true, T0)).await;
    assert!(matches!(elsewhere, Err(StoreError::NotFound("subject"))), "{elsewhere:?}");

    a.append_consent(consent(acme, 1, "marketing", true, T0)).await.unwrap();
    b.append_consent(consent(acme, 1, "marketing", false, T0 + 1)).await.unwrap();
    let before = a.consent_history(acme, 1).await.unwrap();
    assert!(b.erase_subject(acme, 1, T0 + 2).await.unwrap());
    let erased = a.append_consent(consent(acme, 1, "marketing", true, T0 + 3)).await;
    assert!(matches!(erased, Err(StoreError::NotFound("subject"))), "{erased:?}");
    assert_eq!(b.consent_history(acme, 1).await.unwrap(), before, "history survives erasure");
    assert_eq!(versions(&a.current_consents(acme, 1).await.unwrap()), [("marketing", 2, false)]);
    let counts = b.consent_counts().await.unwrap();
    assert_eq!(counts, [("marketing".to_owned(), 0, 1)], "an erased subject's last state counts");

    // A subject's history is bounded, but a granted purpose can always be withdrawn.
    a.create_subject(subject_with(acme, 5, &[]), vec![]).await.unwrap();
    for n in 0..CONSENTS_PER_SUBJECT_MAX {
        let store = if n % 2 == 0 { a } else { b };
        let purpose = format!("p{}", n % 3);
        store.append_consent(consent(acme, 5, &purpose, n % 5 != 0, T0 + n as u64)).await.unwrap();
    }
    let later = T0 + 5000;
    for (purpose, granted) in [("p0", true), ("p9", true), ("p9", false)] {
        let refused = b.append_consent(consent(acme, 5, purpose, granted, later)).await;
        assert!(is_invalid(refused), "{purpose} {granted}");
    }
    let withdrawn = a.append_consent(consent(acme, 5, "p0", false, later)).await.unwrap();
    assert!(!withdrawn.granted);
    let twice = b.append_consent(consent(acme, 5, "p0", false, later + 1)).await;
    assert!(is_invalid(twice), "withdrawn already");
    assert_eq!(b.consent_history(acme, 5).await.unwrap().len(), CONSENTS_PER_SUBJECT_MAX + 1);
}

pub(crate) async fn simultaneous_consent_appends_get_distinct_versions(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    a.create_subject(subject_with(acme, 1, &[]), vec![]).await.unwrap();
    for round in 0..3u64 {
        let append = |store: &'static str, purpose: &'static str, n: u64| {
            let s = if store == "a" { a } else { b };
            s.append_consent(consent(acme, 1, purpose, n.is_multiple_of(2), T0 + round * 10 + n))
        };
        let results = tokio::join!(
            append("a", "marketing", 1),
            append("b", "marketing", 2),
            append("a", "marketing", 3),
            append("b", "marketing", 4),
            append("a", "analytics", 5),
            append("b", "analytics", 6),
        );
        let results = [results.0, results.1, results.2, results.3, results.4, results.5];
        let mut marketing: Vec<u32> =
            results[..4].iter().map(|r| r.as_ref().unwrap().version).collect();
        let mut analytics: Vec<u32> =
            results[4..].iter().map(|r| r.as_ref().unwrap().version).collect();
        marketing.sort_unstable();
        analytics.sort_unstable();
        let base = u32::try_from(round).unwrap();
        assert_eq!(marketing, (1..=4).map(|v| base * 4 + v).collect::<Vec<_>>(), "round {round}");
        assert_eq!(analytics, [base * 2 + 1, base * 2 + 2], "round {round}");
    }
    let history = b.consent_history(acme, 1).await.unwrap();
    assert_eq!(history.len(), 18);
    let current = a.current_consents(acme, 1).await.unwrap();
    assert_eq!(versions(&current).iter().map(|v| v.1).collect::<Vec<_>>(), [6, 12]);
}

fn account_ids(accounts: &[Account]) -> Vec<u128> {
    accounts.iter().map(|a| a.id).collect()
}

pub(crate) async fn accounts_are_found_by_owner(fx: &mut impl Fixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let globex = tenant(a, "globex").await;
    let owner = 0xab_cdef_u128 << 64;
    a.create_subject(subject_with(acme, owner, &[("email", b"e")]), vec![]).await.unwrap();
    submit_ok(a, vec![owned_account(acme, 30, owner), owned_account(acme, 5, 0)]).await;
    submit_ok(b, vec![owned_account(acme, 10, owner), owned_account(acme, 20, 77)]).await;
    submit_ok(a, vec![owned_account(globex, 40, owner), owned_account(acme, 11, owner)]).await;

    let owned = b.accounts_of_subject(acme, owner, 100).await.unwrap();
    assert_eq!(account_ids(&owned), [10, 11, 30], "in id order, this tenant's only");
    assert!(owned.iter().all(|account| account.subject_id == owner));
    assert_eq!(account_ids(&a.accounts_of_subject(acme, owner, 2).await.unwrap()), [10, 11]);
    assert_eq!(account_ids(&a.accounts_of_subject(globex, owner, 100).await.unwrap()), [40]);
    assert_eq!(account_ids(&b.accounts_of_subject(acme, 77, 100).await.unwrap()), [20]);
    assert_eq!(a.accounts_of_subject(acme, 0, 100).await.unwrap(), [], "no owner is no one");
    assert_eq!(b.accounts_of_subject(acme, 78, 100).await.unwrap(), []);

    // Balances move, the owner index does not: each account once, with its new balance.
    submit_ok(b, vec![transfer(acme, 900, 10, 30, 250), transfer(acme, 901, 5, 10, 100)]).await;
    let owned = a.accounts_of_subject(acme, owner, 100).await.unwrap();
    assert_eq!(account_ids(&owned), [10, 11, 30]);
    assert_eq!((owned[0].debits_posted, owned[0].credits_posted), (250, 100));
    assert_eq!(owned[2].credits_posted, 250);
    // An existing account re-sent is `exists`: nothing indexed twice.
    let outcomes = a.submit(vec![owned_account(acme, 10, owner)]).await.unwrap().outcomes;
    assert_eq!(outcomes[0].code.as_str(), "exists");
    // Erasure keeps the ledger: the accounts are still the subject's.
    assert!(b.erase_subject(acme, owner, T0).await.unwrap());
    assert_eq!(account_ids(&a.accounts_of_subject(acme, owner, 100).await.unwrap()), [10, 11, 30]);
}

/// Inside a sealed value and a wrapped key: what must not survive an erasure.
const MARKER: &[u8] = b"MARKER-ERASE-ME-12345";
/// A blind index (16 bytes) that must not survive either.
const INDEX_MARKER: BlindIndex = *b"IDX-ERASE-ME-16B";
/// Inside a subject that stays: proves the dump holds the vault's bytes.
const KEPT: &[u8] = b"MARKER-KEEP-ME-67890";

fn with_marker(marker: &[u8], prefix: &[u8]) -> Vec<u8> {
    [prefix, marker, b"-opaque-tail"].concat()
}

pub(crate) async fn erased_values_leave_no_byte_behind(fx: &mut impl Fixture) {
    let acme = tenant(fx.a(), "acme").await;
    let mut doomed = subject_with(acme, 0xdead, &[]);
    doomed.wrapped_key = with_marker(MARKER, b"\x01kek-1\x00");
    doomed.fields = vec![
        value("email", &with_marker(MARKER, b"\x01sk-dead\x00"), T0),
        value("address", &[vec![0x42; 5000], with_marker(MARKER, b"")].concat(), T0),
    ];
    let indexes = vec![IndexEntry { field: "email".into(), index: INDEX_MARKER }];
    fx.a().create_subject(doomed, indexes).await.unwrap();
    let mut kept = subject_with(acme, 0xbeef, &[]);
    kept.fields = vec![value("email", &with_marker(KEPT, b"\x01"), T0)];
    fx.b().create_subject(kept, vec![entry("email", 9)]).await.unwrap();
    fx.b().append_consent(consent(acme, 0xdead, "marketing", true, T0)).await.unwrap();
    let changed = SubjectUpdate {
        set: vec![value("phone", &with_marker(MARKER, b"p"), T0 + 1)],
        ..Default::default()
    };
    assert!(fx.a().update_subject_fields(acme, 0xdead, changed, T0 + 1).await.unwrap());
    for marker in [MARKER, &INDEX_MARKER, KEPT] {
        assert!(fx.keeps_bytes(marker).await, "before erasure the raw bytes hold the values");
    }

    assert!(fx.b().erase_subject(acme, 0xdead, T0 + 2).await.unwrap());
    assert!(!fx.keeps_bytes(MARKER).await, "no byte of an erased value or key remains");
    assert!(!fx.keeps_bytes(&INDEX_MARKER).await, "nor of its blind index");
    assert!(fx.keeps_bytes(KEPT).await, "another subject's values remain");
    let tombstone = fx.a().subject(acme, 0xdead).await.unwrap().unwrap();
    assert_eq!(tombstone.erased_at_s, Some(T0 + 2));
    assert_eq!(fx.b().consent_history(acme, 0xdead).await.unwrap().len(), 1);
}
