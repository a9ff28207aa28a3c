//! The tenant-facing vault routes (`/v1/subjects...`): create, read, look up, correct,
//! erase and export a data subject's personal information, and record and check
//! consent. A tenant reaches only its own subjects; another tenant's id answers 404 like a
//! missing one.
//!
//! Every read or change of personal information is audited, and a read's record is
//! durable before the answer leaves (an audit failure answers 503 and shows nothing). A
//! correction's before and after values go to the trail sealed under the subject's data
//! key, so they vanish with it; an erasure crypto-shreds the subject. Access, correction
//! and deletion are tracked as data-subject requests for the report's turnaround. Nothing
//! here logs a value; errors name the field.

use std::net::IpAddr;

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use storage::audit::{DsarKind, NewDsar};
use storage::ledger::TenantId;
use storage::vault::Subject;
use storage::vault::consent::{Consent, NewConsent};

use crate::app::Core;
use crate::audit::{Actor, AuditOutcome, Event};
use crate::errors::{ApiError, Body, json_response};
use crate::popia::export;
use crate::popia::inventory::{Inventory, LawfulBasis};
use crate::popia::seal::{self, SealError, Values};
use crate::request::unix_now_s;
use crate::router::RouteId;

/// Most subjects one look-up returns.
const FOUND_MAX: usize = 100;

/// A vault request: who asks, about which subject, and where from.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The route.
    pub route: RouteId,
    /// The tenant.
    pub tenant: TenantId,
    /// The subject (zero on routes without one).
    pub subject: u128,
    /// The second path parameter (`{purpose}`).
    pub sub: &'a str,
    /// The request's id.
    pub request_id: &'a str,
    /// The client's address.
    pub origin: IpAddr,
}

impl Call<'_> {
    fn event(&self, action: &'static str, outcome: AuditOutcome) -> Event<'_> {
        let mut event = Event::new(Actor::Tenant(self.tenant), action, outcome);
        event.tenant = Some(self.tenant);
        event.subject = (self.subject != 0).then_some(self.subject);
        event.request_id = Some(self.request_id);
        event.origin = Some(self.origin);
        event
    }
}

/// Serves a vault route.
pub async fn handle(
    core: &Core,
    call: Call<'_>,
    parts: &Parts,
    body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    match call.route {
        RouteId::CreateSubject => create(core, call, &body).await,
        RouteId::FindSubjects => find(core, call, parts.uri.query()).await,
        RouteId::GetSubject => read(core, call).await,
        RouteId::EraseSubject => erase(core, call).await,
        RouteId::CorrectSubject => correct(core, call, &body).await,
        RouteId::ExportSubject => export_subject(core, call, parts.uri.query()).await,
        RouteId::ListConsents => list_consents(core, call, parts.uri.query()).await,
        RouteId::RecordConsent => record_consent(core, call, &body).await,
        RouteId::CheckPurpose => check_purpose(core, call).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// The client-facing form of a sealing error: 400 naming the field, or 503/500.
impl From<SealError> for ApiError {
    fn from(error: SealError) -> Self {
        match error {
            SealError::UnknownField(field) => ApiError::InvalidField {
                param: format!("fields.{field}"),
                message: "not a field of the data inventory (GET /v1/compliance/inventory)".into(),
            },
            SealError::InvalidValue { field, error } => ApiError::InvalidField {
                param: format!("fields.{field}"),
                message: error.to_string(),
            },
            SealError::NoFields => ApiError::InvalidField {
                param: "fields".into(),
                message: "a subject needs at least one field".into(),
            },
            SealError::NoBlindIndexKey | SealError::Crypto(_) => ApiError::Vault(error),
        }
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], expected: &'static str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidParam { param: "body", message: expected })
}

fn uuid(id: u128) -> String {
    String::from_utf8_lossy(&crate::wire::encode_uuid(id)).into_owned()
}

const SUBJECT_NOT_FOUND: ApiError =
    ApiError::NotFound { code: "subject_not_found", message: "no subject with this id" };

/// The tenant's live subject, or 404 (missing, another tenant's) or 410 (erased).
async fn live_subject(core: &Core, call: &Call<'_>) -> Result<Subject, ApiError> {
    let subject = core.store.subject(call.tenant, call.subject).await?.ok_or(SUBJECT_NOT_FOUND)?;
    if subject.erased_at_s.is_some() {
        return Err(ApiError::Gone { code: "subject_erased", message: "this subject was erased" });
    }
    Ok(subject)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    fields: Values,
}

#[derive(Serialize)]
struct Created {
    id: String,
    fields: Vec<String>,
    created_at: u64,
}

async fn create(core: &Core, call: Call<'_>, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = parse(body, "expected {\"fields\": {\"name\": \"value\", ...}}")?;
    let now = unix_now_s();
    let id = seal::new_subject_id()?;
    let keys = core.app.keys.load();
    let (new, indexes) =
        seal::new_subject(&keys, &core.app.inventory, call.tenant, id, &body.fields, now)?;
    let call = Call { subject: id, ..call };
    core.store.create_subject(new, indexes).await?;
    core.app.audit.record(call.event("pi.create", AuditOutcome::Success)).await?;
    let fields = body.fields.into_keys().collect();
    Ok(json(StatusCode::CREATED, &Created { id: uuid(id), fields, created_at: now }))
}

#[derive(Serialize)]
struct SubjectView {
    id: String,
    fields: Values,
    created_at: u64,
    updated_at: u64,
}

async fn read(core: &Core, call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let subject = live_subject(core, &call).await?;
    core.app.audit.record(call.event("pi.read", AuditOutcome::Success)).await?;
    let fields = seal::open(&core.app.keys.load(), &subject)?;
    let view = SubjectView {
        id: uuid(subject.id),
        fields,
        created_at: subject.created_at_s,
        updated_at: subject.updated_at_s,
    };
    Ok(json(StatusCode::OK, &view))
}

#[derive(Serialize)]
struct Found {
    data: Vec<String>,
}

/// `GET /v1/subjects?email=...` (or another indexed field): the subjects holding that
/// value, by blind index.
async fn find(
    core: &Core,
    call: Call<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let invalid = ApiError::InvalidParam {
        param: "query",
        message: "one indexed field and its value, e.g. ?email=name@example.com",
    };
    let (name, value) = single_query_pair(query).ok_or(invalid)?;
    let inventory = &core.app.inventory;
    let field =
        inventory.field(&name).filter(|field| field.blind_index).ok_or(ApiError::InvalidParam {
            param: "query",
            message: "not an indexed field of the data inventory (email, phone, national_id)",
        })?;
    let index = seal::blind_index(core.app.keys.load().blind_index.as_ref(), field, &value)?;
    let found = core.store.subjects_by_index(call.tenant, &field.name, index, FOUND_MAX).await?;
    let mut event = call.event("pi.search", AuditOutcome::Success);
    event.detail = field.name.clone().into_bytes();
    core.app.audit.record(event).await?;
    Ok(json(StatusCode::OK, &Found { data: found.into_iter().map(uuid).collect() }))
}

/// The one `name=value` pair of a query, percent-decoded.
fn single_query_pair(query: Option<&str>) -> Option<(String, String)> {
    let (name, value) = query?.split_once('=')?;
    if name.is_empty() || value.contains('&') || name.contains('&') {
        return None;
    }
    Some((name.to_owned(), percent_decode(value)?))
}

/// `%XX` and `+` decoding of a query value; `None` when it is not UTF-8 or malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionBody {
    #[serde(default)]
    set: Values,
    #[serde(default)]
    remove: Vec<String>,
}

async fn correct(core: &Core, call: Call<'_>, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let body: CorrectionBody = parse(body, "expected {\"set\": {...}, \"remove\": [...]}")?;
    if body.set.is_empty() && body.remove.is_empty() {
        return Err(ApiError::InvalidParam { param: "body", message: "nothing to correct" });
    }
    let subject = live_subject(core, &call).await?;
    let now = unix_now_s();
    let keys = core.app.keys.load();
    let (update, corrections) =
        seal::correction(&keys, &core.app.inventory, &subject, &body.set, &body.remove, now)?;
    if !core.store.update_subject_fields(call.tenant, call.subject, update, now).await? {
        return Err(SUBJECT_NOT_FOUND);
    }
    for correction in &corrections {
        let mut event = call.event("pi.correct", AuditOutcome::Success);
        event.detail = export::correction_detail(correction);
        core.app.audit.record(event).await?;
    }
    complete_request(core, &call, DsarKind::Correction, now).await?;
    read(core, call).await
}

#[derive(Serialize)]
struct Erased {
    id: String,
    erased_at: u64,
}

async fn erase(core: &Core, call: Call<'_>) -> Result<Response<Body>, ApiError> {
    live_subject(core, &call).await?;
    let now = unix_now_s();
    if !core.store.erase_subject(call.tenant, call.subject, now).await? {
        return Err(SUBJECT_NOT_FOUND);
    }
    core.app.audit.record(call.event("pi.erase", AuditOutcome::Success)).await?;
    complete_request(core, &call, DsarKind::Deletion, now).await?;
    Ok(json(StatusCode::OK, &Erased { id: uuid(call.subject), erased_at: now }))
}

/// Records a data-subject request received and completed now.
async fn complete_request(
    core: &Core,
    call: &Call<'_>,
    kind: DsarKind,
    now: u64,
) -> Result<(), ApiError> {
    let new = NewDsar { tenant: call.tenant, subject: call.subject, kind, received_at_s: now };
    let dsar = core.store.create_dsar(new).await?;
    core.store.complete_dsar(dsar.id, now, "completed").await?;
    Ok(())
}

async fn export_subject(
    core: &Core,
    call: Call<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let format = export::Format::from_query(query)?;
    let subject = live_subject(core, &call).await?;
    core.app.audit.record(call.event("pi.export", AuditOutcome::Success)).await?;
    let now = unix_now_s();
    let report = export::gather(core, &subject).await?;
    complete_request(core, &call, DsarKind::Access, now).await?;
    Ok(export::respond(format, &report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    purpose: String,
    granted: bool,
    channel: String,
    #[serde(default)]
    evidence: String,
}

/// A consent record as the API shows it.
#[derive(Serialize)]
pub struct ConsentView {
    /// The purpose.
    pub purpose: String,
    /// Its version.
    pub version: u32,
    /// Granted or withdrawn.
    pub granted: bool,
    /// How it was given.
    pub channel: String,
    /// The evidence reference.
    pub evidence: String,
    /// When, in Unix seconds.
    pub at: u64,
}

impl From<Consent> for ConsentView {
    fn from(consent: Consent) -> Self {
        Self {
            purpose: consent.purpose,
            version: consent.version,
            granted: consent.granted,
            channel: consent.channel,
            evidence: consent.evidence,
            at: consent.at_s,
        }
    }
}

async fn record_consent(
    core: &Core,
    call: Call<'_>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let body: ConsentBody =
        parse(body, "expected {\"purpose\", \"granted\", \"channel\", \"evidence\"}")?;
    check_consent(&core.app.inventory, &body)?;
    live_subject(core, &call).await?;
    let new = NewConsent {
        tenant: call.tenant,
        subject: call.subject,
        purpose: body.purpose.clone(),
        granted: body.granted,
        channel: body.channel,
        evidence: body.evidence,
        at_s: unix_now_s(),
    };
    let consent = core.store.append_consent(new).await?;
    let action = if consent.granted { "consent.grant" } else { "consent.withdraw" };
    let mut event = call.event(action, AuditOutcome::Success);
    event.purpose = Some(&body.purpose);
    core.app.audit.record(event).await?;
    Ok(json(StatusCode::CREATED, &ConsentView::from(consent)))
}

/// Consent is recorded only for purposes processed on consent; a direct-marketing grant
/// needs evidence of the explicit opt-in (s.69).
fn check_consent(inventory: &Inventory, body: &ConsentBody) -> Result<(), ApiError> {
    let purpose = inventory.purpose(&body.purpose).ok_or(ApiError::InvalidParam {
        param: "purpose",
        message: "not a purpose of the data inventory (GET /v1/compliance/inventory)",
    })?;
    if purpose.lawful_basis != LawfulBasis::Consent {
        return Err(ApiError::InvalidParam {
            param: "purpose",
            message: "this purpose is processed on another lawful basis, not consent",
        });
    }
    if purpose.direct_marketing && body.granted && body.evidence.trim().is_empty() {
        return Err(ApiError::InvalidParam {
            param: "evidence",
            message: "direct marketing needs an explicit opt-in: give its evidence (s.69)",
        });
    }
    Ok(())
}

#[derive(Serialize)]
struct ConsentList {
    data: Vec<ConsentView>,
}

async fn list_consents(
    core: &Core,
    call: Call<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let history = match query.unwrap_or("") {
        "" => false,
        "history=true" => true,
        _ => return Err(ApiError::InvalidParam { param: "query", message: "only history=true" }),
    };
    core.store.subject(call.tenant, call.subject).await?.ok_or(SUBJECT_NOT_FOUND)?;
    let consents = if history {
        core.store.consent_history(call.tenant, call.subject).await?
    } else {
        core.store.current_consents(call.tenant, call.subject).await?
    };
    Ok(json(
        StatusCode::OK,
        &ConsentList { data: consents.into_iter().map(ConsentView::from).collect() },
    ))
}

#[derive(Serialize)]
struct PurposeCheck<'a> {
    purpose: &'a str,
    allowed: bool,
    lawful_basis: &'static str,
    section: &'static str,
    reason: &'static str,
}

/// Whether the subject's data may be processed for a purpose now: on consent only while
/// the latest consent grants it (none, or a withdrawal, refuses); on any other basis yes.
async fn check_purpose(core: &Core, call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let purpose = core.app.inventory.purpose(call.sub).ok_or(ApiError::NotFound {
        code: "purpose_not_found",
        message: "no purpose with this name in the data inventory",
    })?;
    live_subject(core, &call).await?;
    let basis = purpose.lawful_basis;
    let (allowed, reason) = if basis == LawfulBasis::Consent {
        let current = core.store.current_consents(call.tenant, call.subject).await?;
        match current.iter().find(|c| c.purpose == purpose.name) {
            Some(consent) if consent.granted => (true, "consent_granted"),
            Some(_) => (false, "consent_withdrawn"),
            None => (false, "no_consent"),
        }
    } else {
        (true, "lawful_basis")
    };
    let check = PurposeCheck {
        purpose: &purpose.name,
        allowed,
        lawful_basis: basis.as_str(),
        section: basis.section(),
        reason,
    };
    Ok(json(StatusCode::OK, &check))
}

/// The `Content-Type` of CSV answers.
pub fn csv_response(body: Vec<u8>, filename: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_up_queries_are_one_decoded_pair() {
        let pair = single_query_pair(Some("email=Thandi%40Example.co.za"));
        assert_eq!(pair, Some(("email".into(), "Thandi@Example.co.za".into())));
        assert_eq!(
            single_query_pair(Some("phone=%2B27+82")),
            Some(("phone".into(), "+27 82".into()))
        );
        for bad in [None, Some(""), Some("email"), Some("=x"), Some("a=1&b=2"), Some("a=%zz")] {
            assert_eq!(single_query_pair(bad), None, "{bad:?}");
        }
    }
}
