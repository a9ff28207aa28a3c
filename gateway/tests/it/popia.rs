//! The POPIA modules end to end (ADR 0008), each scenario once on the embedded store and
//! once on a fresh PostgreSQL database (`popia::embedded::NAME`, `popia::postgres::NAME`),
//! through the real binary and its HTTP API, with the store opened directly only where a
//! tamperer, an attacker with the files, or the passing of time would go around it:
//!
//! - [`vault_round_trip`]: a subject's declared fields read back equal; an undeclared field
//!   or an invalid email is refused naming `fields.<name>`; another tenant gets the 404 of
//!   a random id; look-ups by email (any case, padded) and phone find it, and follow a
//!   correction that sets and removes fields; the trail holds `pi.create`, `pi.read` and
//!   one `pi.correct` per corrected field about the subject, and a `pi.search` naming the
//!   field of each look-up, none with a value in clear.
//! - [`consent`]: direct marketing needs evidence; a grant allows the purpose, a withdrawal
//!   refuses it (`consent_withdrawn`), a new grant allows it again, and the history keeps
//!   every version; a purpose on another lawful basis takes no consent and is allowed
//!   (`lawful_basis`); no consent at all refuses (`no_consent`).
//! - [`audit_tampering_is_detected`]: after some activity the chain verifies intact with as
//!   many records as the export holds; on PostgreSQL the table refuses a plain UPDATE and
//!   DELETE; one record's action changed around the store (a superuser with the triggers
//!   disabled; the redb file rewritten while the gateway is stopped) makes verify, and the
//!   report, name that record's seq.
//! - [`key_rotation_rewraps_every_subject`]: a KEK version 2 made current in the keys
//!   document while the gateway runs: the re-wrap job moves every data key to it (the
//!   report lists one rotation, `remaining: 0`), every subject still reads the same, new
//!   subjects are created and read under version 2, and the store holds no key wrapped
//!   under version 1.
//! - [`erasure_leaves_no_plaintext_then_the_report`]: a subject carrying a unique marker
//!   is read, corrected, exported, given consent and an account with a transfer, then
//!   erased: 410 everywhere, not found by email, its account and transfer intact. Its
//!   wrapped key and a sealed value, present in the store's raw bytes before, are gone
//!   after (the redb file once compacted; `pg_dump --data-only` after `VACUUM FULL`), and
//!   the marker is in neither those bytes nor the gateway's whole log (run at `debug`).
//!   Then the report: access, correction and deletion requests completed with turnaround,
//!   consents per purpose, subjects live and erased, the chain intact, and 403 for the
//!   roles without access.
//! - [`retention_purges_expired_fields`]: two subjects' `device_fingerprint` aged past
//!   its 365 days through the store (no field of the inventory expires during a test, and
//!   the gateway has no clock to move): the job, every second, purges both values, erases
//!   the subject left without a field, keeps the fresh one, leaves `retention.purge` and
//!   `retention.erase` records, and its later runs purge nothing.
//! - [`breach_register`]: a breach recorded by the Information Officer, listed, its
//!   notifications recorded once each (`already_notified` the second time, never before
//!   detection), exported as JSON and CSV, audited and counted in the report.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::popia_site::*;
use crate::support::{self, Api, Operator, unix_now};

/// See the module doc.
async fn vault_round_trip(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let globex = site.tenant("globex");
    let auditor = site.operator("audra", "auditor");
    let api = site.start(&[]).await;

    let given = json!({
        "full_name": "Thandi Mokoena",
        "email": "Thandi.Mokoena@Example.co.za",
        "phone": "+27 82 555 0101",
        "date_of_birth": "1990-04-12",
        "city": "Durban",
        "country": "ZA",
    });
    let id = create_subject(&api, &acme, &given).await;
    assert_eq!(fields_of(&api, &acme, &id).await, given, "every value reads back equal");

    let refused = api.post_json("/v1/subjects", &acme, json!({"fields": {"shoe_size": "9"}})).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_field", Some("fields.shoe_size"));
    let bad_email = json!({"fields": {"full_name": "A B", "email": "not-an-email"}});
    let refused = api.post_json("/v1/subjects", &acme, bad_email).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_field", Some("fields.email"));
    assert!(!refused.1.to_string().contains("not-an-email"), "no value echoed: {}", refused.1);

    // Another tenant's subject is indistinguishable from one that does not exist.
    let random = support::uuid(u128::from_be_bytes(*b"no such subject!"));
    for path in ["", "/export", "/consents", "/purposes/direct_marketing"] {
        let theirs = api.get_json(&format!("/v1/subjects/{id}{path}"), &globex).await;
        let missing = api.get_json(&format!("/v1/subjects/{random}{path}"), &globex).await;
        assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{path}: {}", theirs.1);
        assert_eq!(theirs, missing, "{path}: another tenant's subject answers like a random id");
    }
    let erase =
        send(&api, &globex, Method::DELETE, &format!("/v1/subjects/{id}"), Value::Null).await;
    assert_error(&erase, StatusCode::NOT_FOUND, "subject_not_found", Some("id"));
    let email = "email=%20THANDI.MOKOENA%40example.CO.ZA%20";
    assert_eq!(look_up(&api, &globex, email).await, json!([]), "look-ups stay in the tenant");

    assert_eq!(look_up(&api, &acme, email).await, json!([id]), "any case, padded");
    assert_eq!(look_up(&api, &acme, "phone=%2B27825550101").await, json!([id]));
    assert_eq!(look_up(&api, &acme, "email=someone.else%40example.co.za").await, json!([]));

    let correction = json!({
        "set": {"city": "Cape Town", "postal_code": "8001", "email": "thandi@mokoena.example"},
        "remove": ["date_of_birth"],
    });
    let path = format!("/v1/subjects/{id}/corrections");
    let (status, corrected) = api.post_json(&path, &acme, correction).await;
    assert_eq!(status, StatusCode::OK, "{corrected}");
    let expected = json!({
        "full_name": "Thandi Mokoena",
        "email": "thandi@mokoena.example",
        "phone": "+27 82 555 0101",
        "city": "Cape Town",
        "postal_code": "8001",
        "country": "ZA",
    });
    assert_eq!(corrected["fields"], expected, "the correction answers the corrected subject");
    assert_eq!(fields_of(&api, &acme, &id).await, expected);
    assert_eq!(look_up(&api, &acme, email).await, json!([]), "the old email's index is gone");
    assert_eq!(look_up(&api, &acme, "email=THANDI%40mokoena.example").await, json!([id]));

    let token = api.operator_token(&auditor).await;
    let trail = audit_trail(&api, &token).await;
    let records = about(&trail, &id);
    let done = actions(&records);
    for action in ["pi.create", "pi.read", "pi.correct"] {
        assert!(done.iter().any(|a| a == action), "a {action} record about the subject: {done:?}");
    }
    assert_eq!(done[0], "pi.create", "{done:?}");
    // A look-up names the tenant and the field searched, never a subject or the value.
    let searches: Vec<&Value> = trail.iter().filter(|r| r["action"] == "pi.search").collect();
    let fields = ["email", "email", "phone", "email", "email", "email"];
    assert_eq!(searches.len(), fields.len(), "{searches:?}");
    for (search, field) in searches.iter().zip(fields) {
        let expected = (&Value::Null, &json!(hex(field.as_bytes())));
        assert_eq!((&search["subject"], &search["detail"]), expected, "{search}");
    }
    assert_ne!(searches[0]["tenant"], searches[1]["tenant"], "globex's, then acme's");
    assert!(searches[1..].iter().all(|s| s["tenant"] == searches[1]["tenant"]));
    let corrections: Vec<&&Value> =
        records.iter().filter(|r| r["action"] == "pi.correct").collect();
    assert_eq!(corrections.len(), 4, "one record per corrected field: {corrections:?}");
    let plaintexts = ["Durban", "Cape Town", "8001", "1990-04-12", "Thandi", "mokoena"];
    for record in &records {
        assert_eq!(record["actor"], "tenant", "{record}");
        assert_eq!(record["outcome"], "success", "{record}");
    }
    for (record, field) in corrections.iter().zip(["city", "email", "postal_code", "date_of_birth"])
    {
        let detail = record["detail"].as_str().expect("a hex detail");
        assert!(detail.contains(&hex(field.as_bytes())), "{field}: the detail names the field");
        for plain in plaintexts.iter().chain(&["thandi@mokoena.example"]) {
            let lower = plain.to_lowercase();
            for form in [plain.as_bytes(), lower.as_bytes()] {
                assert!(!detail.contains(&hex(form)), "{field}'s detail holds {plain:?} in clear");
            }
        }
    }
    let whole: String = trail.iter().map(Value::to_string).collect();
    for plain in plaintexts {
        // A value of hex digits only ("8001") turns up by chance in hashes, details and
        // times written as hex or decimal: only its hex form means something.
        if !plain.bytes().all(|b| b.is_ascii_hexdigit()) {
            assert!(!whole.contains(plain), "the trail holds {plain:?}");
        }
        assert!(!whole.contains(&hex(plain.as_bytes())), "the trail holds {plain:?} as hex");
    }
    site.close().await;
}

/// See the module doc.
async fn consent(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let auditor = site.operator("audra", "auditor");
    let api = site.start(&[]).await;
    let id = create_subject(&api, &acme, &json!({"marketing_email": "offers@example.com"})).await;
    let consents = format!("/v1/subjects/{id}/consents");
    let check = |purpose: &str| format!("/v1/subjects/{id}/purposes/{purpose}");

    let no_evidence =
        json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form"});
    let refused = api.post_json(&consents, &acme, no_evidence).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter", Some("evidence"));
    let blank = json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                       "evidence": "   "});
    let refused = api.post_json(&consents, &acme, blank).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter", Some("evidence"));
    let (status, body) = api.get_json(&check("direct_marketing"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["allowed"], &body["reason"]), (&json!(false), &json!("no_consent")));

    let grant = json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                       "evidence": "optin-2024-0001"});
    let (status, first) = api.post_json(&consents, &acme, grant.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!((&first["version"], &first["granted"]), (&json!(1), &json!(true)), "{first}");
    assert_eq!(first["evidence"], "optin-2024-0001", "{first}");
    let (status, body) = api.get_json(&check("direct_marketing"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"purpose": "direct_marketing", "allowed": true,
        "lawful_basis": "consent", "section": "s.11(1)(a)", "reason": "consent_granted"});
    assert_eq!(body, expected);

    let withdraw = json!({"purpose": "direct_marketing", "granted": false, "channel": "email"});
    let (status, second) = api.post_json(&consents, &acme, withdraw).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!((&second["version"], &second["granted"]), (&json!(2), &json!(false)), "{second}");
    let (status, body) = api.get_json(&check("direct_marketing"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["allowed"], &body["reason"]), (&json!(false), &json!("consent_withdrawn")));

    let (status, history) = api.get_json(&format!("{consents}?history=true"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["data"], json!([first, second]), "both versions, unchanged");
    let (status, current) = api.get_json(&consents, &acme).await;
    assert_eq!(status, StatusCode::OK, "{current}");
    assert_eq!(current["data"], json!([second]), "the current state is the last version");

    let (status, third) = api.post_json(&consents, &acme, grant).await;
    assert_eq!((status, &third["version"]), (StatusCode::CREATED, &json!(3)), "{third}");
    let (_, body) = api.get_json(&check("direct_marketing"), &acme).await;
    assert_eq!(body["allowed"], true, "granted again: {body}");

    // A purpose processed on another lawful basis takes no consent and needs none.
    let servicing = json!({"purpose": "account_servicing", "granted": true, "channel": "web_form",
                           "evidence": "terms-v3"});
    let refused = api.post_json(&consents, &acme, servicing).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter", Some("purpose"));
    let (status, body) = api.get_json(&check("account_servicing"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"purpose": "account_servicing", "allowed": true,
        "lawful_basis": "contract", "section": "s.11(1)(b)", "reason": "lawful_basis"});
    assert_eq!(body, expected);
    let unknown = json!({"purpose": "astrology", "granted": true, "channel": "web_form",
                         "evidence": "x"});
    let refused = api.post_json(&consents, &acme, unknown).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter", Some("purpose"));
    let (status, body) = api.get_json(&check("astrology"), &acme).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("purpose_not_found"))
    );

    let other = create_subject(&api, &acme, &json!({"full_name": "Sipho Dlamini"})).await;
    let path = format!("/v1/subjects/{other}/purposes/direct_marketing");
    let (status, body) = api.get_json(&path, &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["allowed"], &body["reason"]), (&json!(false), &json!("no_consent")));

    let token = api.operator_token(&auditor).await;
    let trail = audit_trail(&api, &token).await;
    let records = about(&trail, &id);
    let consent_records: Vec<(String, Value)> = records
        .iter()
        .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("consent.")))
        .map(|r| (r["action"].as_str().expect("an action").to_owned(), r["purpose"].clone()))
        .collect();
    let marketing = json!("direct_marketing");
    let expected = vec![
        ("consent.grant".to_owned(), marketing.clone()),
        ("consent.withdraw".to_owned(), marketing.clone()),
        ("consent.grant".to_owned(), marketing),
    ];
    assert_eq!(consent_records, expected, "each version recorded is audited, refusals are not");
    site.close().await;
}

/// See the module doc.
async fn audit_tampering_is_detected(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let auditor = site.operator("audra", "auditor");
    let officer = site.operator("iris", "information_officer");
    let api = site.start(&[]).await;
    let id = create_subject(&api, &acme, &json!({"full_name": "Lerato Khumalo"})).await;
    fields_of(&api, &acme, &id).await;
    let path = format!("/v1/subjects/{id}/corrections");
    let (status, body) = api.post_json(&path, &acme, json!({"set": {"city": "Polokwane"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit_token = api.operator_token(&auditor).await;
    let officer_token = api.operator_token(&officer).await;

    let (status, verified) =
        send(&api, &audit_token, Method::GET, "/v1/audit/verify", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], "intact", "{verified}");
    let trail = audit_trail(&api, &audit_token).await;
    let records = verified["records"].as_u64().expect("a record count");
    assert_eq!(trail.len() as u64, records + 1, "the export holds the chain and the verify");
    assert_eq!(trail[trail.len() - 1]["action"], "audit.verify");
    assert_eq!(trail[records as usize - 1]["hash"], verified["head"], "the head is the last hash");
    for pair in trail.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "each record links the one before");
    }
    let created = about(&trail, &id)[0];
    assert_eq!(created["action"], "pi.create", "{created}");
    let seq = created["seq"].as_u64().expect("a seq");

    if backend == Backend::Postgres {
        let client = site.superuser().await;
        for (statement, op) in [
            (format!("UPDATE audit_records SET action = 'pi.delete' WHERE seq = {seq}"), "UPDATE"),
            (format!("DELETE FROM audit_records WHERE seq = {seq}"), "DELETE"),
        ] {
            let error = client.batch_execute(&statement).await.expect_err("the trail refuses it");
            let message = error.as_db_error().expect("the server refused it").message().to_owned();
            assert_eq!(message, format!("audit_records is append-only: {op} refused"));
        }
    } else {
        site.stop();
    }
    tamper(&site, seq, "pi.create", "pi.delete").await;
    let api = match backend {
        Backend::Postgres => api,
        Backend::Embedded => site.start(&[]).await,
    };

    let (status, verified) =
        send(&api, &audit_token, Method::GET, "/v1/audit/verify", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], "broken", "{verified}");
    assert_eq!(verified["first_broken_seq"], seq, "the tampered record is named: {verified}");
    assert!(verified["reason"].is_string(), "{verified}");
    let tampered = &audit_trail(&api, &audit_token).await[seq as usize - 1];
    assert_eq!(tampered["action"], "pi.delete", "the export shows the stored (changed) record");
    let got = report(&api, &officer_token).await;
    assert_eq!(got["audit_chain"]["status"], "broken", "{got:#}");
    assert_eq!(got["audit_chain"]["first_broken_seq"], seq, "{got:#}");
    // The trail still takes records after the break (this export's ends with the report).
    let trail = audit_trail(&api, &audit_token).await;
    let after: Vec<&Value> = trail[seq as usize..].iter().collect();
    assert_eq!(actions(&after).last().map(String::as_str), Some("compliance.report"));
    let verifies: Vec<&Value> = trail.iter().filter(|r| r["action"] == "audit.verify").collect();
    assert_eq!(verifies.len(), 2, "{verifies:?}");
    assert_eq!(verifies[1]["refusal"], "chain_broken", "a broken verdict is audited as refused");
    site.close().await;
}

/// Adds KEK version 2 to the keys document and makes it current (written aside, then
/// renamed over it, so that a re-read never sees half a document).
fn rotate_kek(site: &Site) {
    let text = std::fs::read_to_string(&site.keys_file).expect("reading the keys document");
    let mut keys: Value = serde_json::from_str(&text).expect("a JSON keys document");
    assert_eq!(keys["kek"]["current_version"], 1, "{}", keys["kek"]["id"]);
    let kek = crypto::envelope::KeyRing::generate("protea-kek").expect("a key").1;
    keys["kek"]["versions"]["2"] = json!(crypto::envelope::key_to_base64(&kek));
    keys["kek"]["current_version"] = json!(2);
    let aside = site.keys_file.with_extension("json.new");
    write_private(&aside, &keys.to_string());
    std::fs::rename(&aside, &site.keys_file).expect("renaming the keys document");
}

/// See the module doc.
async fn key_rotation_rewraps_every_subject(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let officer = site.operator("iris", "information_officer");
    let flags = ["--keys-refresh-seconds", "1", "--rewrap-interval-seconds", "1"];
    let api = site.start(&flags).await;
    let token = api.operator_token(&officer).await;
    let mut subjects = Vec::new();
    for n in 0..5 {
        let fields = json!({"full_name": format!("Subject {n}"),
                            "email": format!("subject{n}@example.com")});
        subjects.push((create_subject(&api, &acme, &fields).await, fields));
    }
    let got = report(&api, &token).await;
    assert_eq!(got["key_rotations"], json!([]), "no rotation yet: {got:#}");

    rotate_kek(&site);
    let got = poll_report(&api, &token, "no key rotation to version 2 with none remaining", |r| {
        r["key_rotations"].as_array().is_some_and(|rotations| {
            rotations.iter().any(|r| r["to_version"] == 2 && r["remaining"] == 0)
        })
    })
    .await;
    let rotations = got["key_rotations"].as_array().expect("rotations");
    assert_eq!(rotations.len(), 1, "one run re-wrapped them all: {rotations:?}");
    let rotation = &rotations[0];
    let expected = (&json!("protea-kek"), &json!(1), &json!(2), &json!(5), &json!(0));
    let found = (
        &rotation["kek_id"],
        &rotation["from_version"],
        &rotation["to_version"],
        &rotation["rewrapped"],
        &rotation["remaining"],
    );
    assert_eq!(found, expected, "{rotation}");

    for (id, fields) in &subjects {
        assert_eq!(&fields_of(&api, &acme, id).await, fields, "{id} decrypts after the rotation");
    }
    let fields = json!({"full_name": "After Rotation", "phone": "+27 11 555 0199"});
    let after = create_subject(&api, &acme, &fields).await;
    assert_eq!(fields_of(&api, &acme, &after).await, fields);
    assert_eq!(look_up(&api, &acme, "email=SUBJECT3%40example.com").await, json!([subjects[3].0]));
    let trail = audit_trail(&api, &token).await;
    let rewraps: Vec<&Value> = trail.iter().filter(|r| r["action"] == "key.rewrap").collect();
    assert_eq!(rewraps.len(), 1, "{rewraps:?}");
    assert_eq!(rewraps[0]["actor"], "system");
    assert_eq!(rewraps[0]["detail"], hex(b"protea-kek:1->2:5"), "{}", rewraps[0]);

    site.stop();
    let store = site.open_store();
    let tenant = store.tenant_id("acme").await;
    let stale = store.core().subjects_wrapped_before(2, 100).await.expect("the rotation scan");
    assert!(stale.is_empty(), "{} data keys still under version 1", stale.len());
    for id in subjects.iter().map(|(id, _)| id).chain([&after]) {
        let subject = store.subject(tenant, id).await;
        let wrapped_by = crypto::envelope::sealed_by(&subject.wrapped_key).expect("an envelope");
        assert_eq!((subject.kek_version, wrapped_by), (2, ("protea-kek", 2)), "{id}");
    }
    store.close();
    site.close().await;
}

/// See the module doc: this and [`the_report_after_an_erasure`].
async fn erasure_leaves_no_plaintext_then_the_report(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let officer = site.operator("iris", "information_officer");
    let auditor = site.operator("audra", "auditor");
    let ops = site.operator("otto", "operator");
    let api = site.start(&["--log", "debug"]).await;
    let officer_token = api.operator_token(&officer).await;
    let tag = random_tag();
    let marker = format!("marker-{tag}");
    let email = format!("{marker}@example.com");
    let given = json!({"full_name": format!("Zanele {marker}"), "email": email,
                       "city": format!("Gqeberha {marker}")});
    let id = create_subject(&api, &acme, &given).await;
    let subject = uuid_of(&id);

    // The subject owns an account that takes part in a transfer.
    let owned =
        json!({"id": support::uuid(subject ^ 1), "ledger": 710, "code": 1, "subject_id": id});
    let (status, body) = api.post_json("/v1/accounts", &acme, owned).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other = json!({"id": support::uuid(subject ^ 2), "ledger": 710, "code": 1});
    let (status, body) = api.post_json("/v1/accounts", &acme, other).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let transfer = json!({
        "id": support::uuid(subject ^ 3),
        "debit_account_id": support::uuid(subject ^ 2),
        "credit_account_id": support::uuid(subject ^ 1),
        "amount": 250, "ledger": 710, "code": 1,
    });
    let (status, body) = api.post_json("/v1/transfers", &acme, transfer).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    assert_eq!(fields_of(&api, &acme, &id).await, given);
    let path = format!("/v1/subjects/{id}/corrections");
    let renamed = format!("Zanele Dube {marker}");
    let (status, body) = api.post_json(&path, &acme, json!({"set": {"full_name": renamed}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, export) = api.get_json(&format!("/v1/subjects/{id}/export"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["fields"]["full_name"], renamed, "{export}");
    assert_eq!(export["accounts"][0]["subject_id"], id, "the export lists the owned account");
    assert_eq!(export["transfers"].as_array().map(Vec::len), Some(1), "{export}");
    let reply = api
        .call(
            Method::GET,
            &format!("/v1/subjects/{id}/export?format=csv"),
            &[("authorization", &acme)],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let csv = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(csv.starts_with("section,name,value,detail\n"), "{csv}");
    assert!(csv.contains(&format!("field,email,{email},")), "{csv}");
    let consents = format!("/v1/subjects/{id}/consents");
    let grant = json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                       "evidence": "optin-7"});
    let (status, body) = api.post_json(&consents, &acme, grant.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A second subject, who withdraws, stays.
    let kept = create_subject(&api, &acme, &json!({"full_name": "Kept Subject"})).await;
    let kept_consents = format!("/v1/subjects/{kept}/consents");
    let (status, body) = api.post_json(&kept_consents, &acme, grant).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let withdraw = json!({"purpose": "direct_marketing", "granted": false, "channel": "phone"});
    let (status, body) = api.post_json(&kept_consents, &acme, withdraw).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // What the store keeps of the subject before the erasure, read as an attacker would.
    site.stop();
    let store = site.open_store();
    let tenant = store.tenant_id("acme").await;
    let stored = store.subject(tenant, &id).await;
    store.close();
    let wrapped_key = stored.wrapped_key.clone();
    let sealed_email =
        stored.fields.iter().find(|f| f.name == "email").expect("email").sealed.clone();
    let before = site.raw_bytes().await;
    assert!(holds(&before, &wrapped_key), "the search finds the wrapped key before the erasure");
    assert!(holds(&before, &sealed_email), "and the sealed email");
    assert!(!holds(&before, marker.as_bytes()), "a value is stored in clear");

    let api = site.start(&["--log", "debug"]).await;
    let (status, erased) =
        send(&api, &acme, Method::DELETE, &format!("/v1/subjects/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["id"], id, "{erased}");
    assert!(erased["erased_at"].as_u64().is_some_and(|at| at >= unix_now() - 60), "{erased}");
    let gone = api.get_json(&format!("/v1/subjects/{id}"), &acme).await;
    assert_error(&gone, StatusCode::GONE, "subject_erased", None);
    let gone = api.get_json(&format!("/v1/subjects/{id}/export"), &acme).await;
    assert_error(&gone, StatusCode::GONE, "subject_erased", None);
    let gone = api.post_json(&path, &acme, json!({"set": {"city": "Durban"}})).await;
    assert_error(&gone, StatusCode::GONE, "subject_erased", None);
    let gone = send(&api, &acme, Method::DELETE, &format!("/v1/subjects/{id}"), Value::Null).await;
    assert_error(&gone, StatusCode::GONE, "subject_erased", None);
    let query = format!("email={}", email.replace('@', "%40"));
    assert_eq!(look_up(&api, &acme, &query).await, json!([]), "the blind index went with it");

    let (status, account) =
        api.get_json(&format!("/v1/accounts/{}", support::uuid(subject ^ 1)), &acme).await;
    assert_eq!(status, StatusCode::OK, "the ledger keeps the account: {account}");
    assert_eq!(account["subject_id"], id, "and its pseudonymous owner: {account}");
    assert_eq!((&account["credits_posted"], &account["debits_posted"]), (&json!(250), &json!(0)));
    let (status, body) =
        api.get_json(&format!("/v1/transfers/{}", support::uuid(subject ^ 3)), &acme).await;
    assert_eq!((status, &body["amount"]), (StatusCode::OK, &json!(250)), "{body}");
    let path = format!("/v1/compliance/subjects/acme/{id}");
    let (status, view) = send(&api, &officer_token, Method::GET, &path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["erased_at"].is_u64(), "{view}");
    assert_eq!((&view["fields"], &view["field_names"]), (&Value::Null, &json!([])), "{view}");

    the_report_after_an_erasure(&api, &officer_token, (&auditor, &ops), (&id, &kept)).await;

    site.stop();
    let after = site.raw_bytes().await;
    assert!(!holds(&after, &wrapped_key), "the wrapped data key is still in the bytes");
    assert!(!holds(&after, &sealed_email), "the sealed email is still in the bytes");
    assert!(!holds(&after, marker.as_bytes()), "the marker is in the store's bytes");
    assert!(site.logs.contains("\"listening\""), "the logs were collected");
    assert!(!holds(site.logs.as_bytes(), marker.as_bytes()), "the marker is in the gateway's logs");
    site.close().await;
}

/// The report after [`erasure_leaves_no_plaintext_then_the_report`] erased `erased` and
/// kept `kept`: two access requests, one correction and one deletion, each completed with
/// its turnaround; direct marketing granted by one current consent and withdrawn by the
/// other; one subject live and one erased; the chain intact. An auditor and an operator
/// may not read it (403); an operator sees a subject's field names, never its values.
async fn the_report_after_an_erasure(
    api: &Api,
    officer_token: &str,
    (auditor, ops): (&Operator, &Operator),
    (erased, kept): (&str, &str),
) {
    let got = report(api, officer_token).await;
    let requests = got["requests"].as_array().expect("requests");
    // Two exports (JSON and CSV), one correction, one erasure.
    for (kind, count) in [("access", 2), ("correction", 1), ("deletion", 1)] {
        let figures = requests.iter().find(|r| r["kind"] == kind);
        let figures = figures.unwrap_or_else(|| panic!("no {kind} requests: {got:#}"));
        let counts = (&figures["count"], &figures["open"], &figures["completed"]);
        assert_eq!(counts, (&json!(count), &json!(0), &json!(count)), "{figures}");
        for turnaround in ["median_turnaround_s", "max_turnaround_s"] {
            let seconds = figures[turnaround].as_u64();
            assert!(seconds.is_some_and(|s| s <= 60), "{kind} {turnaround}: {figures}");
        }
    }
    let marketing = json!({"purpose": "direct_marketing", "granted": 1, "withdrawn": 1});
    assert_eq!(got["consents"], json!([marketing]), "{got:#}");
    assert_eq!((&got["subjects_live"], &got["subjects_erased"]), (&json!(1), &json!(1)));
    assert_eq!(got["audit_chain"]["status"], "intact", "{got:#}");
    assert!(got["audit_chain"]["records"].as_u64().is_some_and(|n| n > 10), "{got:#}");
    let (status, listed) =
        send(api, officer_token, Method::GET, "/v1/compliance/requests", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mut kinds: Vec<&str> = listed["data"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["subject"] == erased && r["outcome"] == "completed")
        .map(|r| r["kind"].as_str().expect("a kind"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["access", "access", "correction", "deletion"], "{listed}");

    let auditor_token = api.operator_token(auditor).await;
    let ops_token = api.operator_token(ops).await;
    for (token, path) in [
        (&auditor_token, "/v1/compliance/report"),
        (&auditor_token, "/v1/compliance/requests"),
        (&auditor_token, "/v1/compliance/breaches"),
        (&ops_token, "/v1/compliance/report"),
        (&ops_token, "/v1/audit/export"),
        (&ops_token, "/v1/audit/verify"),
    ] {
        let refused = send(api, token, Method::GET, path, Value::Null).await;
        assert_error(&refused, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let trail = audit_trail(api, officer_token).await;
    let refusals: Vec<(&Value, &Value)> = trail
        .iter()
        .filter(|r| r["action"] == "route.call")
        .map(|r| (&r["refusal"], &r["detail"]))
        .collect();
    let forbidden = json!("forbidden");
    let report_route = json!(hex(b"/v1/compliance/report"));
    assert_eq!(refusals.len(), 6, "each refusal is audited: {refusals:?}");
    assert!(refusals.iter().all(|(refusal, _)| **refusal == forbidden), "{refusals:?}");
    assert_eq!(refusals.iter().filter(|(_, route)| **route == report_route).count(), 2);
    let (status, body) =
        send(api, &auditor_token, Method::GET, "/v1/audit/verify", Value::Null).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("intact")), "{body}");
    let path = format!("/v1/compliance/subjects/acme/{kept}");
    let (status, view) = send(api, &ops_token, Method::GET, &path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!((&view["field_names"], &view["fields"]), (&json!(["full_name"]), &Value::Null));
    let (status, view) = send(api, officer_token, Method::GET, &path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["fields"], json!({"full_name": "Kept Subject"}), "the officer sees values");
}

/// See the module doc.
async fn retention_purges_expired_fields(backend: Backend) {
    let mut site = Site::new(backend).await;
    let acme = site.tenant("acme");
    let officer = site.operator("iris", "information_officer");
    let api = site.start(&[]).await;
    let both = json!({"full_name": "Partly Expired", "device_fingerprint": "fp-partly"});
    let partly = create_subject(&api, &acme, &both).await;
    let wholly = create_subject(&api, &acme, &json!({"device_fingerprint": "fp-wholly"})).await;
    let fresh = create_subject(&api, &acme, &json!({"device_fingerprint": "fp-fresh"})).await;

    // Set 400 days ago (its retention is 365 days): the stored value, re-set with its old
    // time through the store, as if the gateway had set it then.
    site.stop();
    let store = site.open_store();
    let tenant = store.tenant_id("acme").await;
    let long_ago = unix_now() - 400 * DAY_S;
    for id in [&partly, &wholly] {
        let subject = store.subject(tenant, id).await;
        let mut value =
            subject.fields.into_iter().find(|f| f.name == "device_fingerprint").expect("the field");
        value.updated_at_s = long_ago;
        let update = storage::vault::SubjectUpdate { set: vec![value], ..Default::default() };
        let changed =
            store.core().update_subject_fields(tenant, uuid_of(id), update, unix_now()).await;
        assert!(changed.expect("back-dating a field"), "{id} is live");
    }
    store.close();

    let api =
        site.start(&["--retention-interval-seconds", "1", "--retention-batch-max", "10"]).await;
    let token = api.operator_token(&officer).await;
    let total = |report: &Value, key: &str| -> u64 {
        let runs = report["retention_runs"].as_array().expect("retention runs");
        runs.iter().map(|run| run[key].as_u64().expect("a count")).sum()
    };
    let got = poll_report(&api, &token, "the expired values were not purged", |r| {
        total(r, "fields_purged") >= 2
    })
    .await;
    assert_eq!((total(&got, "fields_purged"), total(&got, "subjects_erased")), (2, 1), "{got:#}");
    let runs = got["retention_runs"].as_array().expect("runs");
    assert!(runs.iter().all(|r| r["outcome"] == "completed"), "{runs:?}");
    let runs = runs.len();

    assert_eq!(fields_of(&api, &acme, &partly).await, json!({"full_name": "Partly Expired"}));
    let gone = api.get_json(&format!("/v1/subjects/{wholly}"), &acme).await;
    assert_error(&gone, StatusCode::GONE, "subject_erased", None);
    assert_eq!(fields_of(&api, &acme, &fresh).await, json!({"device_fingerprint": "fp-fresh"}));

    let later = poll_report(&api, &token, "the job did not run twice more", |r| {
        r["retention_runs"].as_array().is_some_and(|all| all.len() >= runs + 2)
    })
    .await;
    assert_eq!(total(&later, "fields_purged"), 2, "later runs purge nothing more: {later:#}");
    assert_eq!((&later["subjects_live"], &later["subjects_erased"]), (&json!(2), &json!(1)));

    let trail = audit_trail(&api, &token).await;
    let by_system: Vec<(String, String, String)> = trail
        .iter()
        .filter(|r| r["actor"] == "system")
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or_default().to_owned();
            (text("action"), text("subject"), text("detail"))
        })
        .collect();
    let field = hex(b"device_fingerprint");
    let mut expected = vec![
        ("retention.purge".to_owned(), partly.clone(), field.clone()),
        ("retention.erase".to_owned(), wholly.clone(), field),
    ];
    expected.sort();
    let mut found = by_system;
    found.sort();
    assert_eq!(found, expected, "each purge and erasure is in the trail, by the system");
    site.close().await;
}

/// See the module doc.
async fn breach_register(backend: Backend) {
    let mut site = Site::new(backend).await;
    let _acme = site.tenant("acme");
    let officer = site.operator("iris", "information_officer");
    let ops = site.operator("otto", "operator");
    let api = site.start(&[]).await;
    let token = api.operator_token(&officer).await;
    let detected = unix_now() - 3600;
    let breach = json!({
        "detected_at": detected,
        "description": "A laptop holding an access-request export was stolen",
        "categories": ["contact_details", "identity_number"],
        "subjects_affected": 42,
        "tenant": "acme",
    });
    let (status, recorded) =
        send(&api, &token, Method::POST, "/v1/compliance/breaches", breach.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{recorded}");
    let id = recorded["id"].as_u64().expect("a breach id");
    assert_eq!(recorded["reported_by"], officer.id, "{recorded}");
    assert!(recorded["tenant"].is_u64(), "{recorded}");
    assert_eq!(recorded["regulator_notified_at"], Value::Null);
    let mut unknown_tenant = breach.clone();
    unknown_tenant["tenant"] = json!("initech");
    let refused = send(&api, &token, Method::POST, "/v1/compliance/breaches", unknown_tenant).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_parameter", Some("tenant"));

    let (status, listed) =
        send(&api, &token, Method::GET, "/v1/compliance/breaches", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"], json!([recorded]), "{listed}");

    let notify = format!("/v1/compliance/breaches/{id}/notifications");
    let now = unix_now();
    let (status, notified) =
        send(&api, &token, Method::POST, &notify, json!({"notified": "regulator", "at": now}))
            .await;
    assert_eq!(status, StatusCode::OK, "{notified}");
    assert_eq!(
        (&notified["regulator_notified_at"], &notified["subjects_notified_at"]),
        (&json!(now), &Value::Null)
    );
    let again =
        send(&api, &token, Method::POST, &notify, json!({"notified": "regulator", "at": now}))
            .await;
    assert_error(&again, StatusCode::CONFLICT, "already_notified", None);
    let early = json!({"notified": "subjects", "at": detected - 60});
    let refused = send(&api, &token, Method::POST, &notify, early).await;
    assert_eq!(
        refused.0,
        StatusCode::BAD_REQUEST,
        "never notified before detection: {}",
        refused.1
    );
    let (status, notified) =
        send(&api, &token, Method::POST, &notify, json!({"notified": "subjects", "at": now})).await;
    assert_eq!(status, StatusCode::OK, "{notified}");
    let missing = send(
        &api,
        &token,
        Method::POST,
        "/v1/compliance/breaches/999/notifications",
        json!({"notified": "regulator", "at": now}),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "breach_not_found", Some("id"));

    let export = format!("/v1/compliance/breaches/{id}/notification");
    let (status, json_export) =
        send(&api, &token, Method::GET, &format!("{export}?format=json"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{json_export}");
    assert_eq!(json_export, notified, "the notification is the breach as recorded");
    let reply = api
        .call(
            Method::GET,
            &format!("{export}?format=csv"),
            &[("authorization", &token)],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = String::from_utf8_lossy(&reply.body).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    let header = "breach_id,detected_at,description,categories,subjects_affected,tenant,\
                  regulator_notified_at,subjects_notified_at";
    let values = format!(
        "{id},{detected},A laptop holding an access-request export was stolen,\
         contact_details;identity_number,42,{},{now},{now}",
        recorded["tenant"]
    );
    assert_eq!(lines, [header, values.as_str()], "{csv}");
    let missing =
        send(&api, &token, Method::GET, "/v1/compliance/breaches/999/notification", Value::Null)
            .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "breach_not_found", Some("id"));

    let ops_token = api.operator_token(&ops).await;
    let refused = send(&api, &ops_token, Method::POST, "/v1/compliance/breaches", breach).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden", None);
    let refused = send(&api, &ops_token, Method::GET, "/v1/compliance/breaches", Value::Null).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden", None);

    let got = report(&api, &token).await;
    let figures = &got["breaches"];
    let counts = (
        &figures["recorded"],
        &figures["regulator_not_notified"],
        &figures["subjects_not_notified"],
    );
    assert_eq!(counts, (&json!(1), &json!(0), &json!(0)), "{figures}");
    assert_eq!(figures["recent"], json!([notified]), "{figures}");
    let trail = audit_trail(&api, &token).await;
    let breach_records: Vec<(String, String)> = trail
        .iter()
        .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("breach.")))
        .map(|r| {
            (
                r["action"].as_str().expect("an action").to_owned(),
                r["detail"].as_str().expect("hex").to_owned(),
            )
        })
        .collect();
    let detail = |text: String| hex(text.as_bytes());
    let expected = vec![
        ("breach.record".to_owned(), detail(id.to_string())),
        ("breach.list".to_owned(), String::new()),
        ("breach.notify".to_owned(), detail(format!("{id}:regulator"))),
        ("breach.notify".to_owned(), detail(format!("{id}:subjects"))),
        ("breach.export".to_owned(), detail(id.to_string())),
        ("breach.export".to_owned(), detail(id.to_string())),
    ];
    assert_eq!(breach_records, expected, "every change and read of the register is audited");
    site.close().await;
}

/// One `#[tokio::test]` per scenario and backend: `embedded::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Embedded).await;
            })+
        }

        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Postgres).await;
            })+
        }
    };
}

on_both_backends!(
    vault_round_trip,
    consent,
    audit_tampering_is_detected,
    key_rotation_rewraps_every_subject,
    erasure_leaves_no_plaintext_then_the_report,
    retention_purges_expired_fields,
    breach_register,
);
