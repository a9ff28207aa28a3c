//! Tenant and public route handlers: decode the body, hand events to this core's batcher
//! or read the store, and write the response into one buffer. The caller
//! ([`crate::request`]) has authenticated the tenant and read the body already.
//!
//! Handlers never map errors to statuses themselves (that is [`crate::errors`]) and
//! never log request bodies, secrets or personal information.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use storage::ledger::{
    Event, Key, NewAccount, NewTransfer, Outcome, Record, ResultCode, TenantId, split_open_chain,
};

use crate::app::Core;
use crate::errors::{ApiError, Body, json_response, result_status};
use crate::metrics::ResultLabels;
use crate::router::RouteId;
use crate::wire::{self, DecodeLimits, Decoded, WireError};

/// JSON nesting a valid body never exceeds (array, object, flags array) plus slack.
const DEPTH_MAX: usize = 8;
/// Largest page of an account's transfers.
const PAGE_LIMIT_MAX: usize = 1000;
/// Page size when `limit` is absent.
const PAGE_LIMIT_DEFAULT: usize = 100;

/// What the caller established before the handler runs: the tenant (zero on routes
/// that need no credentials) and the parsed `{id}` segment (zero where there is none).
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The authenticated tenant.
    pub tenant: TenantId,
    /// The path's id.
    pub id: u128,
}

/// Serves a public route (probes and metrics).
pub fn public(core: &Core, route: RouteId) -> Response<Body> {
    match route {
        RouteId::Readyz => readiness(core),
        RouteId::Metrics => metrics(core),
        _ => status_json(StatusCode::OK, "live"),
    }
}

/// Serves a tenant's route with its `body`, read already.
pub async fn tenant(
    core: &Core,
    route: RouteId,
    target: Target,
    parts: &Parts,
    body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    match route {
        RouteId::CreateAccounts => create::<NewAccount>(core, target.tenant, body).await,
        RouteId::CreateTransfers => create::<NewTransfer>(core, target.tenant, body).await,
        RouteId::GetAccount => get_account(core, target).await,
        RouteId::GetTransfer => get_transfer(core, target).await,
        RouteId::ListAccountTransfers => list_account_transfers(core, target, parts).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

fn status_json(status: StatusCode, word: &str) -> Response<Body> {
    json_response(status, format!("{{\"status\":\"{word}\"}}").into_bytes())
}

fn readiness(core: &Core) -> Response<Body> {
    if core.app.is_ready() {
        status_json(StatusCode::OK, "ready")
    } else {
        status_json(StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    }
}

fn metrics(core: &Core) -> Response<Body> {
    core.app.observe();
    let mut response = Response::new(Full::new(Bytes::from(core.app.metrics.encode())));
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn decode_limits() -> DecodeLimits {
    DecodeLimits { events_max: wire::EVENTS_MAX, depth_max: DEPTH_MAX }
}

/// What the two create routes differ in.
trait Creatable: Sized {
    /// `account` or `transfer`, for metrics.
    const KIND: &'static str;
    /// Decodes a body of these.
    fn decode(body: &mut [u8], limits: &DecodeLimits) -> Result<Decoded<Self>, WireError>;
    /// The client-chosen id.
    fn id(&self) -> u128;
    /// The ledger event creating it for `tenant`.
    fn event(self, tenant: TenantId) -> Event;
}

impl Creatable for NewAccount {
    const KIND: &'static str = "account";
    fn decode(body: &mut [u8], limits: &DecodeLimits) -> Result<Decoded<Self>, WireError> {
        wire::decode_accounts(body, limits)
    }
    fn id(&self) -> u128 {
        self.id
    }
    fn event(self, tenant: TenantId) -> Event {
        Event::CreateAccount(tenant, self)
    }
}

impl Creatable for NewTransfer {
    const KIND: &'static str = "transfer";
    fn decode(body: &mut [u8], limits: &DecodeLimits) -> Result<Decoded<Self>, WireError> {
        wire::decode_transfers(body, limits)
    }
    fn id(&self) -> u128 {
        self.id
    }
    fn event(self, tenant: TenantId) -> Event {
        Event::CreateTransfer(tenant, self)
    }
}

/// `POST /v1/accounts` and `POST /v1/transfers`: decode, commit, answer per event.
async fn create<T: Creatable>(
    core: &Core,
    tenant: TenantId,
    mut body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    let decoded = T::decode(&mut body, &decode_limits())?;
    let ids: Vec<u128> = decoded.as_slice().iter().map(T::id).collect();
    let one = matches!(decoded, Decoded::One(_));
    let events = decoded.into_vec().into_iter().map(|item| item.event(tenant)).collect();
    let outcomes = submit(core, events).await?;
    count_results(core, T::KIND, &outcomes);
    Ok(creation_response(one, &ids, &outcomes))
}

/// Submits a request's events to this core's batcher, except a linked chain left open at
/// the end of the request: that one is answered here (`linked_event_failed` for each
/// event, `linked_event_chain_open` for the last) and never submitted. The batcher and
/// the store's writer concatenate the events of concurrent requests into one batch, so
/// an open chain would otherwise continue into another request's events (possibly
/// another tenant's) and apply or fail with them.
async fn submit(core: &Core, mut events: Vec<Event>) -> Result<Vec<Outcome>, ApiError> {
    let open = split_open_chain(&mut events);
    let mut outcomes = if events.is_empty() { Vec::new() } else { core.submit(events).await? };
    outcomes.extend(open);
    Ok(outcomes)
}

/// Counts results per code, then touches each metric once.
fn count_results(core: &Core, event: &'static str, outcomes: &[Outcome]) {
    let mut counts = [0u64; 256];
    for outcome in outcomes {
        counts[outcome.code as usize] += 1;
    }
    for code in ResultCode::ALL {
        let count = counts[*code as usize];
        if count > 0 {
            let labels = ResultLabels { event, result: code.as_str() };
            core.app.metrics.ledger_results.get_or_create(&labels).inc_by(count);
        }
    }
}

fn creation_response(one: bool, ids: &[u128], outcomes: &[Outcome]) -> Response<Body> {
    if one && let (Some(id), Some(outcome)) = (ids.first(), outcomes.first()) {
        let mut body = Vec::with_capacity(512);
        write_single_outcome(&mut body, *id, outcome);
        return json_response(result_status(outcome.code), body);
    }
    let mut body = Vec::with_capacity(32 + outcomes.len() * 96);
    body.extend_from_slice(b"{\"results\":[");
    for (index, (id, outcome)) in ids.iter().zip(outcomes).enumerate() {
        if index > 0 {
            body.push(b',');
        }
        wire::write_result_item(&mut body, index, *id, outcome);
    }
    body.extend_from_slice(b"]}");
    json_response(StatusCode::OK, body)
}

fn write_single_outcome(out: &mut Vec<u8>, id: u128, outcome: &Outcome) {
    out.push(b'{');
    wire::write_result_fields(out, id, outcome);
    match &outcome.record {
        Some(Record::Account(account)) => {
            out.extend_from_slice(b",\"account\":");
            wire::write_account(out, account);
        }
        Some(Record::Transfer(transfer)) => {
            out.extend_from_slice(b",\"transfer\":");
            wire::write_transfer(out, transfer);
        }
        None => {}
    }
    out.push(b'}');
}

async fn get_account(core: &Core, target: Target) -> Result<Response<Body>, ApiError> {
    let key = Key::new(target.tenant, target.id);
    let account = core.store.account(key).await?.ok_or(ACCOUNT_NOT_FOUND)?;
    let mut body = Vec::with_capacity(512);
    wire::write_account(&mut body, &account);
    Ok(json_response(StatusCode::OK, body))
}

async fn get_transfer(core: &Core, target: Target) -> Result<Response<Body>, ApiError> {
    let key = Key::new(target.tenant, target.id);
    let transfer = core.store.transfer(key).await?.ok_or(ApiError::NotFound {
        code: "transfer_not_found",
        message: "no transfer with this id",
    })?;
    let mut body = Vec::with_capacity(512);
    wire::write_transfer(&mut body, &transfer);
    Ok(json_response(StatusCode::OK, body))
}

const ACCOUNT_NOT_FOUND: ApiError =
    ApiError::NotFound { code: "account_not_found", message: "no account with this id" };

/// The `limit` and `after` query parameters of a history page.
struct PageQuery {
    limit: usize,
    after: u64,
}

fn page_query(query: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut page = PageQuery { limit: PAGE_LIMIT_DEFAULT, after: 0 };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" => page.limit = parse_limit(value)?,
            "after" => {
                page.after = value.parse().map_err(|_| ApiError::InvalidParam {
                    param: "after",
                    message: "after must be the next_after value of the previous page",
                })?;
            }
            _ => {
                return Err(ApiError::InvalidParam {
                    param: "query",
                    message: "unknown query parameter; expected limit and after",
                });
            }
        }
    }
    Ok(page)
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let invalid = ApiError::InvalidParam {
        param: "limit",
        message: "limit must be an integer from 1 to 1000",
    };
    match value.parse::<usize>() {
        Ok(limit) if (1..=PAGE_LIMIT_MAX).contains(&limit) => Ok(limit),
        _ => Err(invalid),
    }
}

async fn list_account_transfers(
    core: &Core,
    target: Target,
    parts: &Parts,
) -> Result<Response<Body>, ApiError> {
    let page = page_query(parts.uri.query())?;
    let key = Key::new(target.tenant, target.id);
    let mut transfers = core
        .store
        .account_transfers(key, page.after, page.limit + 1)
        .await?
        .ok_or(ACCOUNT_NOT_FOUND)?;
    let has_more = transfers.len() > page.limit;
    transfers.truncate(page.limit);
    let mut body = Vec::with_capacity(64 + transfers.len() * 400);
    body.extend_from_slice(b"{\"data\":[");
    for (index, transfer) in transfers.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        wire::write_transfer(&mut body, transfer);
    }
    body.extend_from_slice(b"],\"has_more\":");
    body.extend_from_slice(if has_more { b"true" } else { b"false" });
    body.extend_from_slice(b",\"next_after\":");
    match transfers.last().filter(|_| has_more) {
        Some(last) => {
            body.push(b'"');
            wire::write_u64(&mut body, last.timestamp);
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    Ok(json_response(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_defaults_and_bounds() {
        let page = page_query(None).unwrap();
        assert_eq!((page.limit, page.after), (PAGE_LIMIT_DEFAULT, 0));
        let page = page_query(Some("limit=5&after=123")).unwrap();
        assert_eq!((page.limit, page.after), (5, 123));
        for bad in ["limit=0", "limit=1001", "limit=x", "after=-1", "cursor=3"] {
            assert!(page_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
