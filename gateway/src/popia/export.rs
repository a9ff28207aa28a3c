//! A data subject's access request (POPIA s.23): everything held about them, gathered
//! and written as JSON or CSV. The personal information in clear, what the inventory
//! says of each field, the consent history, the accounts they own and those accounts'
//! transfers, the audit records about them, and who received their data (the actors of
//! `pi.read` and `pi.export` records). Also the encoding of a correction's evidence for
//! the audit trail.
//!
//! Bounded: at most [`ACCOUNTS_MAX`] accounts, [`TRANSFERS_MAX`] transfers per account,
//! [`AUDIT_MAX`] audit records; an export that reaches a bound says so (`truncated`).
//! Nothing here logs what it gathers.

use http::Response;
use serde::Serialize;
use storage::audit::{AuditRecord, Outcome};
use storage::ledger::Key;
use storage::vault::Subject;

use crate::app::Core;
use crate::errors::{ApiError, Body, json_response};
use crate::popia::seal::{self, Correction, Values};
use crate::popia::subjects::{ConsentView, csv_response};

/// Most accounts an export lists.
pub const ACCOUNTS_MAX: usize = 1000;
/// Most transfers per account an export lists.
pub const TRANSFERS_MAX: usize = 1000;
/// Most audit records an export lists.
pub const AUDIT_MAX: usize = 1000;
/// The longest audit detail a correction keeps sealed values in; longer ones keep their
/// SHA-256 digests.
const DETAIL_BYTES_MAX: usize = storage::audit::DETAIL_BYTES_MAX;

/// JSON or CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `text/csv`: one row per item, columns `section,name,value,detail`.
    Csv,
}

impl Format {
    /// `?format=json` (the default) or `?format=csv`.
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        match query.unwrap_or("") {
            "" | "format=json" => Ok(Self::Json),
            "format=csv" => Ok(Self::Csv),
            _ => Err(ApiError::InvalidParam {
                param: "format",
                message: "format=json or format=csv",
            }),
        }
    }
}

/// What the inventory says of one field the subject holds.
#[derive(Serialize)]
struct FieldNote {
    field: String,
    purpose: String,
    lawful_basis: &'static str,
    retention_days: u32,
    cross_border: bool,
}

/// One audit record about the subject, without its links.
#[derive(Serialize)]
struct AuditView {
    seq: u64,
    at_ns: u64,
    actor: &'static str,
    actor_id: Option<u64>,
    role: Option<String>,
    action: String,
    purpose: Option<String>,
    outcome: String,
}

/// Who received the subject's data: one read or export.
#[derive(Serialize)]
struct Recipient {
    actor: &'static str,
    actor_id: Option<u64>,
    role: Option<String>,
    action: String,
    at_ns: u64,
}

/// Everything held about one subject.
#[derive(Serialize)]
pub struct Report {
    subject: String,
    created_at: u64,
    updated_at: u64,
    fields: Values,
    inventory: Vec<FieldNote>,
    consents: Vec<ConsentView>,
    accounts: Vec<serde_json::Value>,
    transfers: Vec<serde_json::Value>,
    audit: Vec<AuditView>,
    recipients: Vec<Recipient>,
    truncated: bool,
}

/// Gathers the report of a live subject.
pub async fn gather(core: &Core, subject: &Subject) -> Result<Report, ApiError> {
    let fields = seal::open(&core.app.keys.load(), subject)?;
    let inventory = field_notes(core, &fields);
    let consents = core.store.consent_history(subject.tenant, subject.id).await?;
    let accounts = core.store.accounts_of_subject(subject.tenant, subject.id, ACCOUNTS_MAX).await?;
    let mut truncated = accounts.len() == ACCOUNTS_MAX;
    let mut transfers = Vec::new();
    for account in &accounts {
        let key = Key::new(subject.tenant, account.id);
        let page = core.store.account_transfers(key, 0, TRANSFERS_MAX).await?.unwrap_or_default();
        truncated |= page.len() == TRANSFERS_MAX;
        transfers.extend(page.iter().map(|t| encoded(|out| crate::wire::write_transfer(out, t))));
    }
    let records = core.store.audit_records_about(subject.tenant, subject.id, 0, AUDIT_MAX).await?;
    truncated |= records.len() == AUDIT_MAX;
    Ok(Report {
        subject: String::from_utf8_lossy(&crate::wire::encode_uuid(subject.id)).into_owned(),
        created_at: subject.created_at_s,
        updated_at: subject.updated_at_s,
        fields,
        inventory,
        consents: consents.into_iter().map(ConsentView::from).collect(),
        accounts: accounts
            .iter()
            .map(|a| encoded(|out| crate::wire::write_account(out, a)))
            .collect(),
        transfers,
        recipients: records.iter().filter(|r| is_disclosure(r)).map(recipient).collect(),
        audit: records.iter().map(audit_view).collect(),
        truncated,
    })
}

fn field_notes(core: &Core, fields: &Values) -> Vec<FieldNote> {
    let inventory = &core.app.inventory;
    fields
        .keys()
        .filter_map(|name| inventory.field(name))
        .map(|field| FieldNote {
            field: field.name.clone(),
            purpose: field.purpose.clone(),
            lawful_basis: inventory.purpose(&field.purpose).map_or("", |p| p.lawful_basis.as_str()),
            retention_days: field.retention_days,
            cross_border: field.cross_border,
        })
        .collect()
}

/// A record of the ledger as the API writes it, as a JSON value.
fn encoded(write: impl FnOnce(&mut Vec<u8>)) -> serde_json::Value {
    let mut out = Vec::with_capacity(512);
    write(&mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

fn is_disclosure(record: &AuditRecord) -> bool {
    matches!(record.entry.action.as_str(), "pi.read" | "pi.export")
        && record.entry.outcome == Outcome::Success
}

fn recipient(record: &AuditRecord) -> Recipient {
    Recipient {
        actor: record.entry.actor_kind.as_str(),
        actor_id: record.entry.actor_id,
        role: record.entry.role.clone(),
        action: record.entry.action.clone(),
        at_ns: record.entry.at_ns,
    }
}

fn audit_view(record: &AuditRecord) -> AuditView {
    let entry = &record.entry;
    AuditView {
        seq: record.seq,
        at_ns: entry.at_ns,
        actor: entry.actor_kind.as_str(),
        actor_id: entry.actor_id,
        role: entry.role.clone(),
        action: entry.action.clone(),
        purpose: entry.purpose.clone(),
        outcome: match &entry.outcome {
            Outcome::Success => "success".into(),
            Outcome::Refused(code) => format!("refused:{code}"),
        },
    }
}

/// The answer in `format`.
pub fn respond(format: Format, report: &Report) -> Response<Body> {
    match format {
        Format::Json => {
            json_response(http::StatusCode::OK, serde_json::to_vec(report).unwrap_or_default())
        }
        Format::Csv => csv_response(csv(report), "subject-export.csv"),
    }
}

/// The report as CSV rows `section,name,value,detail`.
fn csv(report: &Report) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut row = |section: &str, name: &str, value: &str, detail: &str| {
        let _ = writer.write_record([section, name, value, detail]);
    };
    row("section", "name", "value", "detail");
    row("subject", "id", &report.subject, "");
    row("subject", "created_at", &report.created_at.to_string(), "");
    for (name, value) in &report.fields {
        row("field", name, value, "");
    }
    for note in &report.inventory {
        let detail = format!(
            "purpose={} basis={} retention_days={} cross_border={}",
            note.purpose, note.lawful_basis, note.retention_days, note.cross_border
        );
        row("inventory", &note.field, "", &detail);
    }
    for consent in &report.consents {
        let state = if consent.granted { "granted" } else { "withdrawn" };
        let detail =
            format!("version={} channel={} at={}", consent.version, consent.channel, consent.at);
        row("consent", &consent.purpose, state, &detail);
    }
    for account in &report.accounts {
        row("account", account["id"].as_str().unwrap_or(""), &account.to_string(), "");
    }
    for transfer in &report.transfers {
        row("transfer", transfer["id"].as_str().unwrap_or(""), &transfer.to_string(), "");
    }
    for record in &report.audit {
        let detail =
            format!("actor={} at_ns={} outcome={}", record.actor, record.at_ns, record.outcome);
        row("audit", &record.seq.to_string(), &record.action, &detail);
    }
    for recipient in &report.recipients {
        let who = format!(
            "{}:{}",
            recipient.actor,
            recipient.actor_id.map_or(String::new(), |id| id.to_string())
        );
        row("recipient", &who, &recipient.action, &recipient.at_ns.to_string());
    }
    if report.truncated {
        row("export", "truncated", "true", "a bound was reached; ask the Information Officer");
    }
    writer.into_inner().unwrap_or_default()
}

/// A correction's audit detail: version byte 1, the field name, then its sealed values
/// before and after (each a u32 big-endian length and the bytes) when they fit, else
/// version byte 2 and their SHA-256 digests. Sealed under the subject's data key, they
/// vanish with it.
pub fn correction_detail(correction: &Correction) -> Vec<u8> {
    let mut detail = Vec::with_capacity(16 + correction.before.len() + correction.after.len());
    let whole =
        1 + 4 + correction.field.len() + 8 + correction.before.len() + correction.after.len();
    let (version, before, after) = if whole <= DETAIL_BYTES_MAX {
        (1u8, correction.before.clone(), correction.after.clone())
    } else {
        let hash = |bytes: &[u8]| crypto::signature::body_digest(bytes).to_vec();
        (2u8, hash(&correction.before), hash(&correction.after))
    };
    detail.push(version);
    for part in [correction.field.as_bytes(), &before, &after] {
        detail.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        detail.extend_from_slice(part);
    }
    detail
}
