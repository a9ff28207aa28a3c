//! The scenarios of the audit conformance suite (`audit_conformance.rs` runs each on both
//! backends): the hash-chained trail (appends, pages, the head, records about a subject,
//! verification and tampering), data-subject requests, retention runs, key rotations and
//! the breach register. Each takes a fresh fixture with two stores, `a` and `b`, and uses
//! both, so what one writes the other must see. Times are passed in, never read.

use crypto::chain::{Broken, GENESIS, link};
use storage::audit::{
    AUDIT_APPEND_MAX, ActorKind, AuditRecord, AuditVerification, Breach, DsarFilter, DsarKind,
    DsarStats, KeyRotation, NewAuditRecord, NewBreach, NewDsar, Notified, Outcome, PAGE_MAX,
    RetentionRun,
};
use storage::operators::{NewOperator, Role};
use storage::tenants::{NewApiKey, NewTenant, Tenant};
use storage::{CoreStore, StoreError};

use crate::audit_conformance::AuditFixture;

/// A fixed "now", in Unix seconds.
const T0: u64 = 1_900_000_000;
const T0_NS: u64 = T0 * 1_000_000_000;

/// The `n`th record of a scenario: fields vary with `n` so that records differ.
fn entry(n: u64) -> NewAuditRecord {
    let refused = n % 3 == 2;
    NewAuditRecord {
        at_ns: T0_NS + n,
        actor_kind: if n.is_multiple_of(2) { ActorKind::Operator } else { ActorKind::Tenant },
        actor_id: Some(n % 5 + 1),
        role: n.is_multiple_of(2).then(|| "information_officer".to_owned()),
        action: format!("pi.read.{n}"),
        tenant: Some(n % 2 + 1),
        subject: (!n.is_multiple_of(4)).then_some(u128::from(n % 3 + 1) << 100),
        purpose: (n % 4 == 1).then(|| "fraud_prevention".to_owned()),
        outcome: if refused {
            Outcome::Refused("consent_missing".into())
        } else {
            Outcome::Success
        },
        request_id: Some(format!("req_{n}")),
        origin: Some(if n.is_multiple_of(2) { "192.0.2.7".into() } else { "2001:db8::7".into() }),
        detail: vec![u8::try_from(n % 256).unwrap(); usize::try_from(n % 40).unwrap()],
    }
}

/// A record with none of the optional fields.
fn bare(n: u64) -> NewAuditRecord {
    NewAuditRecord {
        at_ns: T0_NS + n,
        actor_kind: ActorKind::System,
        actor_id: None,
        role: None,
        action: "retention.run".into(),
        tenant: None,
        subject: None,
        purpose: None,
        outcome: Outcome::Success,
        request_id: None,
        origin: None,
        detail: Vec::new(),
    }
}

/// Appends `n` records (`entry(1..=n)`) in one call; the stored trail after it.
pub(crate) async fn append_some(store: &CoreStore, n: u64) -> Vec<AuditRecord> {
    let seqs = store.append_audit((1..=n).map(entry).collect()).await.unwrap();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    store.audit_records(0, PAGE_MAX).await.unwrap()
}

/// `record` with another action and its stored hash kept (a changed record).
pub(crate) fn changed(record: &AuditRecord, action: &str) -> AuditRecord {
    let mut changed = record.clone();
    changed.entry.action = action.into();
    changed
}

/// `record` with another action and its hash recomputed (a forged record).
fn forged(record: &AuditRecord, action: &str) -> AuditRecord {
    let mut forged = changed(record, action);
    forged.hash = link(&forged.prev_hash, &forged.canonical_bytes());
    forged
}

fn intact(records: u64, head: [u8; 32]) -> AuditVerification {
    AuditVerification::Intact { records, head }
}

fn broken(seq: u64, reason: Broken) -> AuditVerification {
    AuditVerification::Broken { seq, reason }
}

/// Verifies with several batch sizes, which must agree; the verdict.
async fn verify(store: &CoreStore) -> AuditVerification {
    let verdict = store.verify_audit(1000).await.unwrap();
    for batch in [0, 1, 2, 3, 7] {
        assert_eq!(store.verify_audit(batch).await.unwrap(), verdict, "batch {batch}");
    }
    verdict
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Invalid(_)))
}

pub(crate) async fn an_empty_trail_verifies_and_has_no_head(fx: &mut impl AuditFixture) {
    let (a, b) = (fx.a(), fx.b());
    assert_eq!(a.audit_head().await.unwrap(), None);
    assert_eq!(b.audit_records(0, 10).await.unwrap(), []);
    assert_eq!(b.audit_records_about(1, 1, 0, 10).await.unwrap(), []);
    assert_eq!(verify(a).await, intact(0, GENESIS));
    assert_eq!(a.append_audit(Vec::new()).await.unwrap(), Vec::<u64>::new());
    assert_eq!(b.audit_head().await.unwrap(), None, "an empty append moves nothing");
}

pub(crate) async fn appends_chain_contiguously_across_batches(fx: &mut impl AuditFixture) {
    let (a, b) = (fx.a(), fx.b());
    let batches: [(u64, u64); 4] = [(1, 3), (4, 4), (5, 9), (10, 10)];
    for (index, (first, last)) in batches.into_iter().enumerate() {
        let store = if index % 2 == 0 { a } else { b };
        let entries = (first..=last).map(|n| if n == 10 { bare(n) } else { entry(n) });
        let seqs = store.append_audit(entries.collect()).await.unwrap();
        assert_eq!(seqs, (first..=last).collect::<Vec<_>>(), "batch {index}");
    }
    let records = b.audit_records(0, 100).await.unwrap();
    assert_eq!(records.len(), 10);
    let mut prev = GENESIS;
    for (n, record) in (1..).zip(&records) {
        let expected = if n == 10 { bare(n) } else { entry(n) };
        assert_eq!((record.seq, &record.entry), (n, &expected), "stored as given");
        assert_eq!(record.prev_hash, prev, "record {n} links to the one before");
        assert_eq!(record.hash, link(&prev, &record.canonical_bytes()));
        prev = record.hash;
    }
    assert_eq!(a.audit_head().await.unwrap(), Some((10, prev)));
    let page = a.audit_records(3, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(page, records[3..5]);
    assert_eq!(a.audit_records(10, 5).await.unwrap(), []);
    assert_eq!(a.audit_records(u64::MAX, 5).await.unwrap(), []);
    assert_eq!(a.audit_records(0, 0).await.unwrap(), []);
    assert_eq!(verify(a).await, intact(10, prev));
    assert_eq!(verify(b).await, intact(10, prev));
}

pub(crate) async fn a_batch_is_appended_whole_or_not_at_all(fx: &mut impl AuditFixture) {
    let (a, b) = (fx.a(), fx.b());
    let mut with_a_bad_one: Vec<NewAuditRecord> = (1..=5).map(entry).collect();
    with_a_bad_one[3].action = "PI READ".into();
    assert!(is_invalid(a.append_audit(with_a_bad_one).await));
    let too_many: Vec<NewAuditRecord> = (1..=AUDIT_APPEND_MAX as u64 + 1).map(entry).collect();
    assert!(is_invalid(b.append_audit(too_many).await));
    assert_eq!(a.audit_head().await.unwrap(), None, "nothing of a refused batch is written");

    let most: Vec<NewAuditRecord> = (1..=AUDIT_APPEND_MAX as u64).map(entry).collect();
    let seqs = b.append_audit(most).await.unwrap();
    assert_eq!(seqs, (1..=AUDIT_APPEND_MAX as u64).collect::<Vec<_>>());
    assert_eq!(a.append_audit(vec![bare(1001)]).await.unwrap(), [1001]);
    let page = a.audit_records(0, usize::MAX).await.unwrap();
    assert_eq!(page.len(), PAGE_MAX, "a page is cut to PAGE_MAX");
    let head = a.audit_head().await.unwrap().unwrap();
    assert_eq!(head.0, 1001);
    assert_eq!(verify(b).await, intact(1001, head.1));
}

pub(crate) async fn concurrent_appenders_never_fork_the_chain(fx: &mut impl AuditFixture) {
    const BATCHES: u64 = 50;
    const BATCH: u64 = 3;
    async fn appender(store: &CoreStore, offset: u64) -> Vec<Vec<u64>> {
        let mut all = Vec::new();
        for batch in 0..BATCHES {
            let first = offset + batch * BATCH;
            let entries = (first..first + BATCH).map(entry).collect();
            all.push(store.append_audit(entries).await.unwrap());
        }
        all
    }
    let (from_a, from_b) = tokio::join!(appender(fx.a(), 0), appender(fx.b(), 10_000));
    let mut seqs = Vec::new();
    for batch in from_a.iter().chain(&from_b) {
        let contiguous: Vec<u64> = (batch[0]..batch[0] + BATCH).collect();
        assert_eq!(batch, &contiguous, "a batch's seqs are contiguous");
        seqs.extend_from_slice(batch);
    }
    seqs.sort_unstable();
    let total = 2 * BATCHES * BATCH;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "every seq once, no gap");
    let head = fx.a().audit_head().await.unwrap().unwrap();
    assert_eq!(head.0, total);
    assert_eq!(verify(fx.b()).await, intact(total, head.1));
}

pub(crate) async fn records_about_a_subject_are_found_in_order(fx: &mut impl AuditFixture) {
    let (a, b) = (fx.a(), fx.b());
    let about = |tenant: u64, subject: Option<u128>, n: u64| NewAuditRecord {
        tenant: Some(tenant),
        subject,
        ..entry(n)
    };
    let entries = vec![
        about(1, Some(7), 1),
        about(1, Some(8), 2),
        about(2, Some(7), 3),
        about(1, None, 4),
        about(1, Some(7), 5),
    ];
    a.append_audit(entries).await.unwrap();
    b.append_audit(vec![about(1, Some(7), 6)]).await.unwrap();
    let seqs = |records: Vec<AuditRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(b.audit_records_about(1, 7, 0, 100).await.unwrap()), [1, 5, 6]);
    assert_eq!(seqs(a.audit_records_about(1, 7, 1, 1).await.unwrap()), [5], "paged");
    assert_eq!(seqs(a.audit_records_about(2, 7, 0, 100).await.unwrap()), [3], "per tenant");
    assert_eq!(seqs(a.audit_records_about(1, 8, 0, 100).await.unwrap()), [2]);
    assert!(a.audit_records_about(3, 7, 0, 100).await.unwrap().is_empty());
    assert!(a.audit_records_about(u64::MAX, 7, 0, 100).await.unwrap().is_empty());
    let all = a.audit_records(0, 100).await.unwrap();
    assert_eq!(b.audit_records_about(1, 7, 0, 100).await.unwrap()[1], all[4], "whole records");
}

pub(crate) async fn verify_names_a_changed_record(fx: &mut impl AuditFixture) {
    let records = append_some(fx.a(), 10).await;
    let head = records[9].hash;
    fx.overwrite(&changed(&records[3], "pi.erase")).await;
    assert_eq!(verify(fx.a()).await, broken(4, Broken::Hash { index: 3 }));
    assert_eq!(verify(fx.b()).await, broken(4, Broken::Hash { index: 3 }));
    // The change is what verification reports; every other record is as it was.
    let stored = fx.b().audit_records(0, 100).await.unwrap();
    assert_eq!(stored[3].entry.action, "pi.erase");
    assert_eq!([&stored[..3], &stored[4..]].concat(), [&records[..3], &records[4..]].concat());
    fx.overwrite(&records[3]).await;
    assert_eq!(verify(fx.a()).await, intact(10, head), "put back, the chain is whole");
    fx.overwrite(&changed(&records[0], "pi.erase")).await;
    assert_eq!(verify(fx.a()).await, broken(1, Broken::Hash { index: 0 }));
}

pub(crate) async fn verify_names_a_forged_record_by_the_next_link(fx: &mut impl AuditFixture) {
    let records = append_some(fx.a(), 10).await;
    fx.overwrite(&forged(&records[5], "pi.erase")).await;
    assert_eq!(verify(fx.b()).await, broken(7, Broken::Link { index: 6 }));
    fx.overwrite(&records[5]).await;
    assert_eq!(verify(fx.b()).await, intact(10, records[9].hash));
    // The last record has no next one: the head, which still names its old hash, breaks.
    fx.overwrite(&forged(&records[9], "pi.erase")).await;
    assert_eq!(verify(fx.a()).await, broken(10, Broken::Hash { index: 9 }));
    // A forged first record: its own hash is right, the second record's link is not.
    fx.overwrite(&records[9]).await;
    fx.overwrite(&forged(&records[0], "pi.erase")).await;
    assert_eq!(verify(fx.a()).await, broken(2, Broken::Link { index: 1 }));
}

pub(crate) async fn verify_names_a_removed_record(fx: &mut impl AuditFixture) {
    let records = append_some(fx.a(), 10).await;
    fx.remove(10).await;
    assert_eq!(verify(fx.a()).await, broken(10, Broken::Link { index: 9 }), "the head's");
    fx.remove(8).await;
    assert_eq!(verify(fx.b()).await, broken(8, Broken::Link { index: 7 }), "a gap");
    let left = fx.a().audit_records(0, 100).await.unwrap();
    assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7, 9]);
    assert_eq!(left[7], records[8]);
    fx.remove(1).await;
    assert_eq!(verify(fx.a()).await, broken(1, Broken::Link { index: 0 }));
}

async fn tenant(store: &CoreStore, name: &str) -> Tenant {
    let key = NewApiKey {
        key_id: format!("pk_{name}"),
        secret_digest: [1; 32],
        sealed_secret: b"sealed".to_vec(),
        created_at_s: T0,
    };
    store.create_tenant(NewTenant { name: name.into(), key }).await.unwrap()
}

fn dsar(tenant: u64, subject: u128, kind: DsarKind, received_at_s: u64) -> NewDsar {
    NewDsar { tenant, subject, kind, received_at_s }
}

pub(crate) async fn dsars_complete_once_and_are_counted(fx: &mut impl AuditFixture) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let unknown = b.create_dsar(dsar(acme.id + 100, 1, DsarKind::Access, T0)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound("tenant"))), "{unknown:?}");
    assert!(is_invalid(a.create_dsar(dsar(acme.id, 0, DsarKind::Access, T0)).await));
    assert!(is_invalid(a.create_dsar(dsar(acme.id, 1, DsarKind::Access, u64::MAX)).await));

    let requests = [
        (DsarKind::Access, T0, Some(100)),
        (DsarKind::Access, T0 + 10, Some(300)),
        (DsarKind::Access, T0 + 20, None),
        (DsarKind::Deletion, T0 + 30, Some(86_400)),
        (DsarKind::Access, T0 + 40, Some(200)),
        (DsarKind::Access, T0 + 50, Some(1000)),
        (DsarKind::Correction, T0 + 60, None),
    ];
    let mut created = Vec::new();
    for (n, (kind, received, _)) in (1u128..).zip(requests) {
        let store = if n.is_multiple_of(2) { a } else { b };
        let made = store.create_dsar(dsar(acme.id, n, kind, received)).await.unwrap();
        assert_eq!((made.subject, made.kind, made.received_at_s), (n, kind, received));
        assert_eq!((made.completed_at_s, made.outcome.as_deref()), (None, None));
        created.push(made);
    }
    assert!(created.windows(2).all(|w| w[0].id < w[1].id), "ids are assigned in order");
    for (made, (_, received, took)) in created.iter().zip(requests) {
        if let Some(took) = took {
            assert!(a.complete_dsar(made.id, received + took, "completed").await.unwrap());
        }
    }
    let first = &created[0];
    assert!(!b.complete_dsar(first.id, T0 + 5000, "completed").await.unwrap(), "once");
    assert!(!b.complete_dsar(first.id + 1000, T0, "completed").await.unwrap(), "unknown id");
    let open = &created[2];
    assert!(is_invalid(b.complete_dsar(open.id, T0, "completed").await), "before receipt");
    assert!(is_invalid(b.complete_dsar(open.id, T0 + 30, "Done!").await));

    let listed = b.dsars(DsarFilter::All, 100).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), ids_newest_first(&created));
    assert_eq!(listed.last().unwrap().completed_at_s, Some(T0 + 100));
    assert_eq!(listed.last().unwrap().outcome.as_deref(), Some("completed"));
    let open_ids: Vec<u64> =
        a.dsars(DsarFilter::Open, 100).await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(open_ids, [created[6].id, created[2].id], "open only, newest first");
    assert_eq!(a.dsars(DsarFilter::All, 2).await.unwrap().len(), 2);

    let stats = a.dsar_stats().await.unwrap();
    let expected = [
        // Access turnarounds 100, 300, 200, 1000: the median is (200 + 300) / 2.
        stats_of(DsarKind::Access, 5, 1, 4, Some(250), Some(1000)),
        stats_of(DsarKind::Correction, 1, 1, 0, None, None),
        stats_of(DsarKind::Deletion, 1, 0, 1, Some(86_400), Some(86_400)),
        stats_of(DsarKind::Objection, 0, 0, 0, None, None),
    ];
    assert_eq!(stats, expected);
    assert!(a.complete_dsar(open.id, T0 + 20 + 401, "refused_identity").await.unwrap());
    let access = b.dsar_stats().await.unwrap()[0];
    assert_eq!((access.open, access.median_turnaround_s), (0, Some(300)), "odd count: middle");
}

fn ids_newest_first(created: &[storage::audit::Dsar]) -> Vec<u64> {
    created.iter().rev().map(|d| d.id).collect()
}

fn stats_of(
    kind: DsarKind,
    count: u64,
    open: u64,
    completed: u64,
    median_turnaround_s: Option<u64>,
    max_turnaround_s: Option<u64>,
) -> DsarStats {
    DsarStats { kind, count, open, completed, median_turnaround_s, max_turnaround_s }
}

pub(crate) async fn retention_runs_and_key_rotations_are_listed_newest_first(
    fx: &mut impl AuditFixture,
) {
    let (a, b) = (fx.a(), fx.b());
    assert_eq!(a.retention_runs(10).await.unwrap(), []);
    assert_eq!(a.key_rotations(10).await.unwrap(), []);
    let run = |n: u64| RetentionRun {
        started_at_s: T0 + n * 3600,
        finished_at_s: T0 + n * 3600 + 12,
        fields_purged: n * 10,
        subjects_erased: n,
        outcome: if n == 2 { "stopped_at_batch_max".into() } else { "completed".into() },
    };
    let mut ids = Vec::new();
    for n in 1..=3u64 {
        let store = if n.is_multiple_of(2) { b } else { a };
        ids.push(store.record_retention_run(run(n)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(b.retention_runs(10).await.unwrap(), [run(3), run(2), run(1)]);
    assert_eq!(a.retention_runs(2).await.unwrap(), [run(3), run(2)]);
    assert!(is_invalid(
        a.record_retention_run(RetentionRun { finished_at_s: T0 - 1, ..run(0) }).await
    ));
    assert!(is_invalid(
        a.record_retention_run(RetentionRun { outcome: String::new(), ..run(1) }).await
    ));

    let rotation = |n: u32| KeyRotation {
        at_s: T0 + u64::from(n),
        kek_id: "kek-main".into(),
        from_version: n,
        to_version: n + 1,
        rewrapped: 500,
        remaining: u64::from(3 - n) * 100,
    };
    a.record_key_rotation(rotation(1)).await.unwrap();
    b.record_key_rotation(rotation(2)).await.unwrap();
    assert_eq!(a.key_rotations(10).await.unwrap(), [rotation(2), rotation(1)]);
    let same = KeyRotation { to_version: 1, ..rotation(1) };
    assert!(is_invalid(b.record_key_rotation(same).await));
    let bad_id = KeyRotation { kek_id: "kek main".into(), ..rotation(1) };
    assert!(is_invalid(b.record_key_rotation(bad_id).await));
    assert_eq!(b.key_rotations(10).await.unwrap().len(), 2, "refused runs are not recorded");
}

fn officer() -> NewOperator {
    NewOperator {
        username: "grace.h".into(),
        role: Role::InformationOfficer,
        password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        totp_sealed: b"sealed-totp".to_vec(),
        created_at_s: T0,
    }
}

fn new_breach(reported_by: u64, tenant: Option<u64>) -> NewBreach {
    NewBreach {
        detected_at_s: T0,
        reported_by,
        description: "backup bucket readable without credentials for 2 hours".into(),
        categories: vec!["contact_details".into(), "identity_number".into()],
        subjects_affected: 1200,
        tenant,
    }
}

pub(crate) async fn breaches_are_registered_and_notifications_recorded_once(
    fx: &mut impl AuditFixture,
) {
    let (a, b) = (fx.a(), fx.b());
    let acme = tenant(a, "acme").await;
    let officer = b.create_operator(officer()).await.unwrap();
    let nobody = a.create_breach(new_breach(officer.id + 100, None)).await;
    assert!(matches!(nobody, Err(StoreError::NotFound("operator"))), "{nobody:?}");
    let no_tenant = a.create_breach(new_breach(officer.id, Some(acme.id + 100))).await;
    assert!(matches!(no_tenant, Err(StoreError::NotFound("tenant"))), "{no_tenant:?}");
    let duplicated = NewBreach {
        categories: vec!["contact_details".into(), "contact_details".into()],
        ..new_breach(officer.id, None)
    };
    assert!(is_invalid(b.create_breach(duplicated).await));
    assert_eq!(a.breaches(10).await.unwrap(), [], "refused breaches are not recorded");

    let first = a.create_breach(new_breach(officer.id, Some(acme.id))).await.unwrap();
    let second = b.create_breach(new_breach(officer.id, None)).await.unwrap();
    assert!(second.id > first.id);
    assert_eq!(first.categories, ["contact_details", "identity_number"]);
    assert_eq!((first.regulator_notified_at_s, first.subjects_notified_at_s), (None, None));
    assert_eq!(b.breach(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(b.breach(second.id + 100).await.unwrap(), None);
    assert_eq!(b.breach(u64::MAX).await.unwrap(), None);
    assert_eq!(a.breaches(10).await.unwrap(), [second.clone(), first.clone()]);
    assert_eq!(a.breaches(1).await.unwrap(), std::slice::from_ref(&second));

    assert!(
        is_invalid(a.record_breach_notification(first.id, Notified::Regulator, T0 - 1).await),
        "before detection"
    );
    assert!(a.record_breach_notification(first.id, Notified::Regulator, T0 + 3600).await.unwrap());
    assert!(
        !b.record_breach_notification(first.id, Notified::Regulator, T0 + 7200).await.unwrap(),
        "once"
    );
    assert!(b.record_breach_notification(first.id, Notified::Subjects, T0 + 86_400).await.unwrap());
    assert!(
        !b.record_breach_notification(second.id + 100, Notified::Subjects, T0).await.unwrap(),
        "unknown id"
    );
    let notified = Breach {
        regulator_notified_at_s: Some(T0 + 3600),
        subjects_notified_at_s: Some(T0 + 86_400),
        ..first
    };
    assert_eq!(a.breach(notified.id).await.unwrap(), Some(notified));
    assert_eq!(b.breach(second.id).await.unwrap(), Some(second), "the other breach is untouched");
}

/// Records one data-subject request, breach, retention run and key rotation (with the
/// tenant and operator they need).
pub(crate) async fn one_of_each_register(store: &CoreStore) {
    let acme = tenant(store, "acme").await;
    store.create_dsar(dsar(acme.id, 1, DsarKind::Access, T0)).await.unwrap();
    let officer = store.create_operator(officer()).await.unwrap();
    store.create_breach(new_breach(officer.id, Some(acme.id))).await.unwrap();
    let run = RetentionRun {
        started_at_s: T0,
        finished_at_s: T0 + 1,
        fields_purged: 1,
        subjects_erased: 0,
        outcome: "completed".into(),
    };
    store.record_retention_run(run).await.unwrap();
    let rotation = KeyRotation {
        at_s: T0,
        kek_id: "kek".into(),
        from_version: 1,
        to_version: 2,
        rewrapped: 1,
        remaining: 0,
    };
    store.record_key_rotation(rotation).await.unwrap();
}
