//! The Information Officer's and auditors' routes: verify and export the audit trail,
//! the compliance report (requests with turnaround, consents, retention runs, key
//! rotations, the chain's state, breaches), the data inventory, the requests register, a
//! subject as each role may see it, and the breach register with its notification
//! exports (POPIA s.22).
//!
//! [`crate::operator_auth`] has checked the role before anything here runs; every call
//! leaves an audit record, and a read of personal information (the Information Officer's
//! subject view) is durable before it is answered. Other roles see a subject's
//! metadata and field names, never values.

use serde::{Deserialize, Serialize};
use storage::audit::{AuditRecord, AuditVerification, DsarFilter, NewBreach, Notified, Outcome};
use storage::operators::Role;

use crate::admin_api::OperatorContext;
use crate::app::Core;
use crate::audit::AuditOutcome;
use crate::errors::{ApiError, Body, json_response};
use crate::popia::seal::{self, Values};
use crate::popia::subjects::csv_response;
use crate::request::unix_now_s;
use crate::router::{Matched, RouteId};
use http::{HeaderValue, Response, StatusCode, header};

/// Records a verification reads per batch.
const VERIFY_BATCH: usize = 1000;
/// Most records one export page holds.
const EXPORT_PAGE_MAX: usize = 1000;
/// Most entries of a register the report and listings show.
const LIST_MAX: usize = 100;

/// Serves an Information Officer's or auditor's route.
pub async fn handle(
    core: &Core,
    context: &OperatorContext<'_>,
    matched: Matched<'_>,
    query: Option<&str>,
    body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    match matched.route {
        RouteId::VerifyAudit => verify(core, context).await,
        RouteId::ExportAudit => export_audit(core, context, query).await,
        RouteId::ComplianceReport => report(core, context).await,
        RouteId::Inventory => Ok(inventory(core)),
        RouteId::ListRequests => requests(core, context, query).await,
        RouteId::OfficerSubject => subject(core, context, matched.id, matched.sub).await,
        RouteId::ListBreaches => breaches(core, context).await,
        RouteId::RecordBreach => record_breach(core, context, &body).await,
        RouteId::NotifyBreach => notify_breach(core, context, matched.id, &body).await,
        RouteId::BreachNotification => notification(core, context, matched.id, query).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain's state as the API shows it.
#[derive(Serialize)]
struct ChainState {
    status: &'static str,
    records: Option<u64>,
    head: Option<String>,
    first_broken_seq: Option<u64>,
    reason: Option<String>,
}

impl From<AuditVerification> for ChainState {
    fn from(verification: AuditVerification) -> Self {
        match verification {
            AuditVerification::Intact { records, head } => Self {
                status: "intact",
                records: Some(records),
                head: Some(hex(&head)),
                first_broken_seq: None,
                reason: None,
            },
            AuditVerification::Broken { seq, reason } => Self {
                status: "broken",
                records: None,
                head: None,
                first_broken_seq: Some(seq),
                reason: Some(reason.to_string()),
            },
        }
    }
}

async fn verify(core: &Core, context: &OperatorContext<'_>) -> Result<Response<Body>, ApiError> {
    let state = ChainState::from(core.store.verify_audit(VERIFY_BATCH).await?);
    let outcome = if state.status == "intact" {
        AuditOutcome::Success
    } else {
        AuditOutcome::Refused("chain_broken")
    };
    context.audit(core, "audit.verify", None, outcome).await?;
    Ok(json(StatusCode::OK, &state))
}

/// One record as an NDJSON line: every field, the detail and links in hex.
#[derive(Serialize)]
struct ExportedRecord<'a> {
    seq: u64,
    at_ns: u64,
    actor: &'static str,
    actor_id: Option<u64>,
    role: Option<&'a str>,
    action: &'a str,
    tenant: Option<u64>,
    subject: Option<String>,
    purpose: Option<&'a str>,
    outcome: &'a str,
    refusal: Option<&'a str>,
    request_id: Option<&'a str>,
    origin: Option<&'a str>,
    detail: String,
    prev_hash: String,
    hash: String,
}

fn exported(record: &AuditRecord) -> ExportedRecord<'_> {
    let entry = &record.entry;
    let (outcome, refusal) = match &entry.outcome {
        Outcome::Success => ("success", None),
        Outcome::Refused(code) => ("refused", Some(code.as_str())),
    };
    ExportedRecord {
        seq: record.seq,
        at_ns: entry.at_ns,
        actor: entry.actor_kind.as_str(),
        actor_id: entry.actor_id,
        role: entry.role.as_deref(),
        action: &entry.action,
        tenant: entry.tenant,
        subject: entry
            .subject
            .map(|s| String::from_utf8_lossy(&crate::wire::encode_uuid(s)).into_owned()),
        purpose: entry.purpose.as_deref(),
        outcome,
        refusal,
        request_id: entry.request_id.as_deref(),
        origin: entry.origin.as_deref(),
        detail: hex(&entry.detail),
        prev_hash: hex(&record.prev_hash),
        hash: hex(&record.hash),
    }
}

/// Appends `record` to `out` as one NDJSON line of the export: the one encoder of the
/// trail's export, which `gateway audit-archive` uses too (an archived object's bytes are
/// the export's bytes).
pub(crate) fn write_export_line(out: &mut Vec<u8>, record: &AuditRecord) {
    serde_json::to_writer(&mut *out, &exported(record)).unwrap_or_default();
    out.push(b'\n');
}

/// `?after=SEQ&limit=N`: a page of the trail in order.
fn page(query: Option<&str>) -> Result<(u64, usize), ApiError> {
    let (mut after, mut limit) = (0u64, EXPORT_PAGE_MAX);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let invalid =
            ApiError::InvalidParam { param: "query", message: "after=SEQ and limit=1..1000" };
        match pair.split_once('=') {
            Some(("after", value)) => after = value.parse().map_err(|_| invalid)?,
            Some(("limit", value)) => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=EXPORT_PAGE_MAX).contains(n))
                    .ok_or(invalid)?;
            }
            _ => return Err(invalid),
        }
    }
    Ok((after, limit))
}

/// `GET /v1/audit/export`: NDJSON, one record a line, in order; the next page starts
/// after the last line's `seq` (the `X-Next-After` header; absent at the end).
async fn export_audit(
    core: &Core,
    context: &OperatorContext<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let (after, limit) = page(query)?;
    let records = core.store.audit_records(after, limit).await?;
    context
        .audit(core, "audit.export", Some(format!("after={after}")), AuditOutcome::Success)
        .await?;
    let mut body = Vec::with_capacity(records.len() * 400);
    for record in &records {
        write_export_line(&mut body, record);
    }
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if let Some(last) = records.last().filter(|_| records.len() == limit) {
        headers.insert("x-next-after", HeaderValue::from(last.seq));
    }
    Ok(response)
}

#[derive(Serialize)]
struct RequestFigures {
    kind: &'static str,
    count: u64,
    open: u64,
    completed: u64,
    median_turnaround_s: Option<u64>,
    max_turnaround_s: Option<u64>,
}

#[derive(Serialize)]
struct ConsentFigures {
    purpose: String,
    granted: u64,
    withdrawn: u64,
}

#[derive(Serialize)]
struct RetentionView {
    started_at: u64,
    finished_at: u64,
    fields_purged: u64,
    subjects_erased: u64,
    outcome: String,
}

#[derive(Serialize)]
struct RotationView {
    at: u64,
    kek_id: String,
    from_version: u32,
    to_version: u32,
    rewrapped: u64,
    remaining: u64,
}

#[derive(Serialize)]
struct BreachFigures {
    recorded: usize,
    regulator_not_notified: usize,
    subjects_not_notified: usize,
    recent: Vec<BreachView>,
}

#[derive(Serialize)]
struct Report {
    generated_at: u64,
    requests: Vec<RequestFigures>,
    consents: Vec<ConsentFigures>,
    subjects_live: u64,
    subjects_erased: u64,
    retention_runs: Vec<RetentionView>,
    key_rotations: Vec<RotationView>,
    audit_chain: ChainState,
    breaches: BreachFigures,
}

async fn report(core: &Core, context: &OperatorContext<'_>) -> Result<Response<Body>, ApiError> {
    let store = &core.store;
    let requests = store.dsar_stats().await?.into_iter().map(|s| RequestFigures {
        kind: s.kind.as_str(),
        count: s.count,
        open: s.open,
        completed: s.completed,
        median_turnaround_s: s.median_turnaround_s,
        max_turnaround_s: s.max_turnaround_s,
    });
    let consents = store
        .consent_counts()
        .await?
        .into_iter()
        .map(|(purpose, granted, withdrawn)| ConsentFigures { purpose, granted, withdrawn });
    let subjects = store.subject_counts().await?;
    let retention_runs =
        store.retention_runs(LIST_MAX).await?.into_iter().map(|run| RetentionView {
            started_at: run.started_at_s,
            finished_at: run.finished_at_s,
            fields_purged: run.fields_purged,
            subjects_erased: run.subjects_erased,
            outcome: run.outcome,
        });
    let key_rotations = store.key_rotations(LIST_MAX).await?.into_iter().map(|r| RotationView {
        at: r.at_s,
        kek_id: r.kek_id,
        from_version: r.from_version,
        to_version: r.to_version,
        rewrapped: r.rewrapped,
        remaining: r.remaining,
    });
    let breaches = store.breaches(LIST_MAX).await?;
    let report = Report {
        generated_at: unix_now_s(),
        requests: requests.collect(),
        consents: consents.collect(),
        subjects_live: subjects.live,
        subjects_erased: subjects.erased,
        retention_runs: retention_runs.collect(),
        key_rotations: key_rotations.collect(),
        audit_chain: ChainState::from(store.verify_audit(VERIFY_BATCH).await?),
        breaches: BreachFigures {
            recorded: breaches.len(),
            regulator_not_notified: breaches
                .iter()
                .filter(|b| b.regulator_notified_at_s.is_none())
                .count(),
            subjects_not_notified: breaches
                .iter()
                .filter(|b| b.subjects_notified_at_s.is_none())
                .count(),
            recent: breaches.into_iter().map(BreachView::from).collect(),
        },
    };
    context.audit(core, "compliance.report", None, AuditOutcome::Success).await?;
    Ok(json(StatusCode::OK, &report))
}

#[derive(Serialize)]
struct InventoryView<'a> {
    purposes: Vec<PurposeView<'a>>,
    fields: Vec<FieldView<'a>>,
}

#[derive(Serialize)]
struct PurposeView<'a> {
    name: &'a str,
    lawful_basis: &'static str,
    section: &'static str,
    direct_marketing: bool,
    description: &'a str,
}

#[derive(Serialize)]
struct FieldView<'a> {
    name: &'a str,
    purpose: &'a str,
    retention_days: u32,
    cross_border: bool,
    blind_index: bool,
    max_len: usize,
}

/// `GET /v1/compliance/inventory`: the data inventory this gateway enforces.
fn inventory(core: &Core) -> Response<Body> {
    let inventory = &core.app.inventory;
    let view = InventoryView {
        purposes: inventory
            .purposes()
            .iter()
            .map(|p| PurposeView {
                name: &p.name,
                lawful_basis: p.lawful_basis.as_str(),
                section: p.lawful_basis.section(),
                direct_marketing: p.direct_marketing,
                description: &p.description,
            })
            .collect(),
        fields: inventory
            .fields()
            .iter()
            .map(|f| FieldView {
                name: &f.name,
                purpose: &f.purpose,
                retention_days: f.retention_days,
                cross_border: f.cross_border,
                blind_index: f.blind_index,
                max_len: f.max_len,
            })
            .collect(),
    };
    json(StatusCode::OK, &view)
}

#[derive(Serialize)]
struct RequestView {
    id: u64,
    tenant: u64,
    subject: String,
    kind: &'static str,
    received_at: u64,
    completed_at: Option<u64>,
    outcome: Option<String>,
}

#[derive(Serialize)]
struct List<T> {
    data: Vec<T>,
}

async fn requests(
    core: &Core,
    context: &OperatorContext<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let filter = match query.unwrap_or("") {
        "" => DsarFilter::All,
        "open=true" => DsarFilter::Open,
        _ => return Err(ApiError::InvalidParam { param: "query", message: "only open=true" }),
    };
    let data = core.store.dsars(filter, LIST_MAX).await?.into_iter().map(|d| RequestView {
        id: d.id,
        tenant: d.tenant,
        subject: String::from_utf8_lossy(&crate::wire::encode_uuid(d.subject)).into_owned(),
        kind: d.kind.as_str(),
        received_at: d.received_at_s,
        completed_at: d.completed_at_s,
        outcome: d.outcome,
    });
    context.audit(core, "compliance.requests", None, AuditOutcome::Success).await?;
    Ok(json(StatusCode::OK, &List { data: data.collect::<Vec<_>>() }))
}

#[derive(Serialize)]
struct OfficerSubjectView {
    id: String,
    tenant: String,
    created_at: u64,
    updated_at: u64,
    erased_at: Option<u64>,
    field_names: Vec<String>,
    fields: Option<Values>,
}

/// A subject as the caller's role may see it: values for the Information Officer (and
/// their read is audited first), names and times for everyone else.
async fn subject(
    core: &Core,
    context: &OperatorContext<'_>,
    tenant_name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let not_found =
        || ApiError::NotFound { code: "subject_not_found", message: "no subject with this id" };
    let tenant = core.store.tenant_by_name(tenant_name).await?.ok_or_else(not_found)?;
    let id = crate::wire::parse_uuid(id)
        .ok_or(ApiError::InvalidParam { param: "id", message: "a subject id is a UUID" })?;
    let subject = core.store.subject(tenant.id, id).await?.ok_or_else(not_found)?;
    let sees_values =
        context.operator.role == Role::InformationOfficer && subject.erased_at_s.is_none();
    let action = if sees_values { "pi.read" } else { "pi.metadata" };
    context.audit_subject(core, action, tenant.id, id).await?;
    let fields =
        if sees_values { Some(seal::open(&core.app.keys.load(), &subject)?) } else { None };
    let view = OfficerSubjectView {
        id: String::from_utf8_lossy(&crate::wire::encode_uuid(id)).into_owned(),
        tenant: tenant.name,
        created_at: subject.created_at_s,
        updated_at: subject.updated_at_s,
        erased_at: subject.erased_at_s,
        field_names: subject.fields.iter().map(|f| f.name.clone()).collect(),
        fields,
    };
    Ok(json(StatusCode::OK, &view))
}

/// A breach as the API shows it.
#[derive(Serialize)]
struct BreachView {
    id: u64,
    detected_at: u64,
    reported_by: u64,
    description: String,
    categories: Vec<String>,
    subjects_affected: u64,
    tenant: Option<u64>,
    regulator_notified_at: Option<u64>,
    subjects_notified_at: Option<u64>,
}

impl From<storage::audit::Breach> for BreachView {
    fn from(b: storage::audit::Breach) -> Self {
        Self {
            id: b.id,
            detected_at: b.detected_at_s,
            reported_by: b.reported_by,
            description: b.description,
            categories: b.categories,
            subjects_affected: b.subjects_affected,
            tenant: b.tenant,
            regulator_notified_at: b.regulator_notified_at_s,
            subjects_notified_at: b.subjects_notified_at_s,
        }
    }
}

async fn breaches(core: &Core, context: &OperatorContext<'_>) -> Result<Response<Body>, ApiError> {
    let data: Vec<BreachView> =
        core.store.breaches(LIST_MAX).await?.into_iter().map(BreachView::from).collect();
    context.audit(core, "breach.list", None, AuditOutcome::Success).await?;
    Ok(json(StatusCode::OK, &List { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreachBody {
    detected_at: u64,
    description: String,
    categories: Vec<String>,
    subjects_affected: u64,
    #[serde(default)]
    tenant: Option<String>,
}

async fn record_breach(
    core: &Core,
    context: &OperatorContext<'_>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let expected = "expected {\"detected_at\", \"description\", \"categories\", \"subjects_affected\", \"tenant\"}";
    let body: BreachBody = serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidParam { param: "body", message: expected })?;
    let tenant = match &body.tenant {
        Some(name) => Some(
            core.store
                .tenant_by_name(name)
                .await?
                .ok_or(ApiError::InvalidParam {
                    param: "tenant",
                    message: "no tenant with this name",
                })?
                .id,
        ),
        None => None,
    };
    let new = NewBreach {
        detected_at_s: body.detected_at,
        reported_by: context.operator.id,
        description: body.description,
        categories: body.categories,
        subjects_affected: body.subjects_affected,
        tenant,
    };
    let breach = core.store.create_breach(new).await?;
    context
        .audit(core, "breach.record", Some(breach.id.to_string()), AuditOutcome::Success)
        .await?;
    Ok(json(StatusCode::CREATED, &BreachView::from(breach)))
}

fn breach_id(segment: &str) -> Result<u64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::InvalidParam { param: "id", message: "a breach id is a number" })
}

const BREACH_NOT_FOUND: ApiError =
    ApiError::NotFound { code: "breach_not_found", message: "no breach with this id" };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyBody {
    notified: String,
    at: u64,
}

async fn notify_breach(
    core: &Core,
    context: &OperatorContext<'_>,
    id: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let id = breach_id(id)?;
    let body: NotifyBody = serde_json::from_slice(body).map_err(|_| ApiError::InvalidParam {
        param: "body",
        message: "expected {\"notified\": \"regulator\" | \"subjects\", \"at\": UNIX_SECONDS}",
    })?;
    let who = match body.notified.as_str() {
        "regulator" => Notified::Regulator,
        "subjects" => Notified::Subjects,
        _ => {
            return Err(ApiError::InvalidParam {
                param: "notified",
                message: "regulator or subjects",
            });
        }
    };
    core.store.breach(id).await?.ok_or(BREACH_NOT_FOUND)?;
    if !core.store.record_breach_notification(id, who, body.at).await? {
        return Err(ApiError::Conflict {
            code: "already_notified",
            message: "this notification is recorded already",
        });
    }
    let target = Some(format!("{id}:{}", body.notified));
    context.audit(core, "breach.notify", target, AuditOutcome::Success).await?;
    let breach = core.store.breach(id).await?.ok_or(BREACH_NOT_FOUND)?;
    Ok(json(StatusCode::OK, &BreachView::from(breach)))
}

/// The notification of a breach (s.22(4)-(5)): what happened, when it was detected,
/// which data categories, how many subjects, the tenant (by id) and when the Regulator
/// and the subjects were notified, as JSON or CSV.
async fn notification(
    core: &Core,
    context: &OperatorContext<'_>,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let id = breach_id(id)?;
    let format = crate::popia::export::Format::from_query(query)?;
    let breach = core.store.breach(id).await?.ok_or(BREACH_NOT_FOUND)?;
    context.audit(core, "breach.export", Some(id.to_string()), AuditOutcome::Success).await?;
    let view = BreachView::from(breach);
    Ok(match format {
        crate::popia::export::Format::Json => json(StatusCode::OK, &view),
        crate::popia::export::Format::Csv => {
            csv_response(breach_csv(&view), "breach-notification.csv")
        }
    })
}

fn breach_csv(view: &BreachView) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let optional = |value: Option<u64>| value.map_or(String::new(), |v| v.to_string());
    let _ = writer.write_record([
        "breach_id",
        "detected_at",
        "description",
        "categories",
        "subjects_affected",
        "tenant",
        "regulator_notified_at",
        "subjects_notified_at",
    ]);
    let _ = writer.write_record([
        view.id.to_string(),
        view.detected_at.to_string(),
        view.description.clone(),
        view.categories.join(";"),
        view.subjects_affected.to_string(),
        optional(view.tenant),
        optional(view.regulator_notified_at),
        optional(view.subjects_notified_at),
    ]);
    writer.into_inner().unwrap_or_default()
}
