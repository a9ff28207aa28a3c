//! The administrative API: tenants and their keys (create, list, rotate, revoke) and
//! operators (create with TOTP enrolment, list, unlock, disable, enable, revoke
//! sessions). [`crate::operator_auth`] has authenticated the operator and checked their
//! role before anything here runs; every action here, reads included, leaves an audit
//! record.
//!
//! A tenant's new secret and an operator's TOTP secret appear in exactly one response,
//! the one that creates them; they are stored only sealed (and the API secret also as a
//! digest). Nothing here logs a secret, a password or a username. Off the hot path:
//! these handlers use serde_json.

use std::net::IpAddr;

use crypto::totp::TotpSecret;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use storage::StoreError;
use storage::operators::{NewOperator, Operator, Role};
use storage::tenants::{NewApiKey, NewTenant, Tenant};

use crate::app::Core;
use crate::audit::{Actor, AuditOutcome, Event};
use crate::auth::secret_aad;
use crate::errors::{ApiError, Body, json_response};
use crate::operator_auth::{SignedInOperator, totp_aad};
use crate::request::unix_now_s;
use crate::router::{Matched, RouteId};

/// The operator calling, and where from.
#[derive(Clone, Copy, Debug)]
pub struct OperatorContext<'a> {
    /// Who, in which role.
    pub operator: SignedInOperator,
    /// The request's id.
    pub request_id: &'a str,
    /// The client's address.
    pub origin: IpAddr,
}

impl OperatorContext<'_> {
    /// The audit actor.
    pub fn actor(&self) -> Actor {
        Actor::Operator { id: self.operator.id, role: self.operator.role.as_str() }
    }

    /// Records `action` on a tenant's data subject (a read of their personal information,
    /// or of its metadata), durably.
    pub async fn audit_subject(
        &self,
        core: &Core,
        action: &'static str,
        tenant: u64,
        subject: u128,
    ) -> Result<(), ApiError> {
        let mut event = Event::new(self.actor(), action, AuditOutcome::Success);
        event.request_id = Some(self.request_id);
        event.origin = Some(self.origin);
        event.tenant = Some(tenant);
        event.subject = Some(subject);
        core.app.audit.record(event).await?;
        Ok(())
    }

    /// Records `action` on `target` (a tenant name, key id or operator id) with
    /// `outcome`, durably.
    pub async fn audit(
        &self,
        core: &Core,
        action: &'static str,
        target: Option<String>,
        outcome: AuditOutcome,
    ) -> Result<(), ApiError> {
        let mut event = Event::new(self.actor(), action, outcome);
        event.request_id = Some(self.request_id);
        event.origin = Some(self.origin);
        event.detail = target.map(String::into_bytes).unwrap_or_default();
        core.app.audit.record(event).await?;
        Ok(())
    }
}

/// Serves an administrative route.
pub async fn handle(
    core: &Core,
    context: &OperatorContext<'_>,
    matched: Matched<'_>,
    query: Option<&str>,
    body: Vec<u8>,
) -> Result<Response<Body>, ApiError> {
    if matched.route.is_compliance() {
        return crate::popia::officer::handle(core, context, matched, query, body).await;
    }
    match matched.route {
        RouteId::ListTenants => {
            context.audit(core, "tenant.list", None, AuditOutcome::Success).await?;
            list_tenants(core).await
        }
        RouteId::CreateTenant => create_tenant(core, context, &body).await,
        RouteId::ListTenantKeys => list_keys(core, context, matched.id).await,
        RouteId::CreateTenantKey => create_key(core, context, matched.id).await,
        RouteId::RevokeTenantKey => revoke_key(core, context, matched.id, matched.sub).await,
        RouteId::ListOperators => {
            context.audit(core, "operator.list", None, AuditOutcome::Success).await?;
            list_operators(core).await
        }
        RouteId::CreateOperator => create_operator(core, context, &body).await,
        RouteId::UnlockOperator => unlock_operator(core, context, matched.id).await,
        RouteId::DisableOperator => set_disabled(core, context, matched.id, true).await,
        RouteId::EnableOperator => set_disabled(core, context, matched.id, false).await,
        RouteId::RevokeOperatorSessions => revoke_sessions(core, context, matched.id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// 204 with no body.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn parse_body<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    expected: &'static str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidParam { param: "body", message: expected })
}

#[derive(Serialize)]
struct TenantView {
    id: u64,
    name: String,
}

impl From<Tenant> for TenantView {
    fn from(tenant: Tenant) -> Self {
        Self { id: tenant.id, name: tenant.name }
    }
}

#[derive(Serialize)]
struct List<T> {
    data: Vec<T>,
}

async fn list_tenants(core: &Core) -> Result<Response<Body>, ApiError> {
    let data = core.store.tenants().await?.into_iter().map(TenantView::from).collect();
    Ok(json(StatusCode::OK, &List::<TenantView> { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenantBody {
    name: String,
}

/// A new key: its id and secret (shown once).
#[derive(Serialize)]
struct KeyCreated {
    key_id: String,
    secret: String,
}

#[derive(Serialize)]
struct TenantCreated {
    tenant: TenantView,
    key: KeyCreated,
}

/// A new API key, its secret sealed with the key-encryption key.
pub fn new_api_key(core: &Core) -> Result<(NewApiKey, String), ApiError> {
    let key = crypto::api_key::generate().map_err(|_| ApiError::SecurityBusy)?;
    let sealed = core
        .app
        .keys
        .load()
        .kek
        .seal(key.secret.as_bytes(), &secret_aad(&key.key_id))
        .map_err(|_| ApiError::SecurityBusy)?;
    let new = NewApiKey {
        key_id: key.key_id,
        secret_digest: key.digest,
        sealed_secret: sealed,
        created_at_s: unix_now_s(),
    };
    Ok((new, key.secret))
}

async fn create_tenant(
    core: &Core,
    context: &OperatorContext<'_>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let body: CreateTenantBody = parse_body(body, "expected {\"name\"}")?;
    if !storage::tenants::valid_tenant_name(&body.name) {
        return Err(ApiError::InvalidParam {
            param: "name",
            message: "1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        });
    }
    let (key, secret) = new_api_key(core)?;
    let key_id = key.key_id.clone();
    let created = core.store.create_tenant(NewTenant { name: body.name.clone(), key }).await;
    let tenant = audited(core, context, "tenant.create", Some(body.name), created).await?;
    reload_credentials(core).await;
    let body = TenantCreated { tenant: tenant.into(), key: KeyCreated { key_id, secret } };
    Ok(json(StatusCode::CREATED, &body))
}

/// Audits `result` of `action` and passes it on.
async fn audited<T>(
    core: &Core,
    context: &OperatorContext<'_>,
    action: &'static str,
    target: Option<String>,
    result: Result<T, StoreError>,
) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => AuditOutcome::Success,
        Err(error) => AuditOutcome::Refused(error.kind()),
    };
    context.audit(core, action, target, outcome).await?;
    Ok(result?)
}

/// Rebuilds this process's key directory from the store, so a change made here is
/// effective in this process at once (other PostgreSQL processes reload within a second).
pub async fn reload_credentials(core: &Core) {
    let loaded =
        async { Ok::<_, StoreError>((core.store.api_keys().await?, core.store.tenants().await?)) };
    match loaded.await {
        Ok((keys, tenants)) => {
            core.app.credentials.replace(keys, tenants, &core.app.keys.load().kek)
        }
        Err(error) => tracing::error!(%error, "reloading tenant keys failed"),
    }
}

async fn tenant_named(core: &Core, name: &str) -> Result<Tenant, ApiError> {
    core.store.tenant_by_name(name).await?.ok_or(TENANT_NOT_FOUND)
}

const TENANT_NOT_FOUND: ApiError =
    ApiError::NotFound { code: "tenant_not_found", message: "no tenant with this name" };

#[derive(Serialize)]
struct KeyView {
    key_id: String,
    created_at: u64,
    revoked_at: Option<u64>,
}

async fn list_keys(
    core: &Core,
    context: &OperatorContext<'_>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_named(core, name).await;
    let outcome = match &tenant {
        Ok(_) => AuditOutcome::Success,
        Err(_) => AuditOutcome::Refused("tenant_not_found"),
    };
    context.audit(core, "key.list", Some(name.to_owned()), outcome).await?;
    let tenant = tenant?;
    let infos = core.store.api_key_infos(tenant.id).await?;
    let data = infos
        .into_iter()
        .map(|info| KeyView {
            key_id: info.key_id,
            created_at: info.created_at_s,
            revoked_at: info.revoked_at_s,
        })
        .collect();
    Ok(json(StatusCode::OK, &List::<KeyView> { data }))
}

async fn create_key(
    core: &Core,
    context: &OperatorContext<'_>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_named(core, name).await?;
    let (key, secret) = new_api_key(core)?;
    let key_id = key.key_id.clone();
    let added = core.store.add_api_key(tenant.id, key).await;
    audited(core, context, "key.create", Some(key_id.clone()), added).await?;
    reload_credentials(core).await;
    Ok(json(StatusCode::CREATED, &KeyCreated { key_id, secret }))
}

async fn revoke_key(
    core: &Core,
    context: &OperatorContext<'_>,
    name: &str,
    key_id: &str,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant_named(core, name).await?;
    let revoked = core.store.revoke_api_key(tenant.id, key_id, unix_now_s()).await;
    if audited(core, context, "key.revoke", Some(key_id.to_owned()), revoked).await? {
        reload_credentials(core).await;
        Ok(no_content())
    } else {
        Err(ApiError::NotFound { code: "key_not_found", message: "no active key with this id" })
    }
}

#[derive(Serialize)]
struct OperatorView {
    id: u64,
    username: String,
    role: &'static str,
    locked: bool,
    disabled: bool,
    failed_attempts: u32,
    created_at: u64,
}

impl From<Operator> for OperatorView {
    fn from(operator: Operator) -> Self {
        Self {
            id: operator.id,
            username: operator.username,
            role: operator.role.as_str(),
            locked: operator.locked,
            disabled: operator.disabled,
            failed_attempts: operator.failed_attempts,
            created_at: operator.created_at_s,
        }
    }
}

async fn list_operators(core: &Core) -> Result<Response<Body>, ApiError> {
    let data = core.store.operators().await?.into_iter().map(OperatorView::from).collect();
    Ok(json(StatusCode::OK, &List::<OperatorView> { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOperatorBody {
    username: String,
    role: String,
    password: String,
}

/// TOTP enrolment: shown once, for the operator's authenticator app.
#[derive(Serialize)]
pub struct TotpEnrolment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI (a QR code of it enrols an app).
    pub uri: String,
}

#[derive(Serialize)]
struct OperatorCreated {
    operator: OperatorView,
    totp: TotpEnrolment,
}

async fn create_operator(
    core: &Core,
    context: &OperatorContext<'_>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let expected = "expected {\"username\", \"role\", \"password\"}";
    let body: CreateOperatorBody = parse_body(body, expected)?;
    let role = Role::parse(&body.role).ok_or(ApiError::InvalidParam {
        param: "role",
        message: "one of admin, operator, auditor, information_officer",
    })?;
    let (new, totp) = new_operator(core, body.username, role, body.password).await?;
    let created = core.store.create_operator(new).await;
    let operator = audited(core, context, "operator.create", None, created).await?;
    let target = Some(operator.id.to_string());
    context.audit(core, "operator.totp_enrol", target, AuditOutcome::Success).await?;
    Ok(json(StatusCode::CREATED, &OperatorCreated { operator: operator.into(), totp }))
}

/// Checks and prepares a new operator: the password hashed (argon2id, off the core), a
/// TOTP secret generated and sealed. Shared with the command line's bootstrap.
pub async fn new_operator(
    core: &Core,
    username: String,
    role: Role,
    password: String,
) -> Result<(NewOperator, TotpEnrolment), ApiError> {
    if !storage::operators::valid_username(&username) {
        return Err(ApiError::InvalidParam {
            param: "username",
            message: "3-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
        });
    }
    let _permit = core.app.password_slots.try_acquire().map_err(|_| ApiError::SecurityBusy)?;
    let hashed =
        tokio::task::spawn_blocking(move || crypto::password::hash_password(&password)).await;
    let password_phc = match hashed {
        Ok(Ok(phc)) => phc,
        Ok(Err(_)) => {
            return Err(ApiError::InvalidParam {
                param: "password",
                message: "a password needs at least 12 characters (and at most 1024 bytes)",
            });
        }
        Err(_) => return Err(ApiError::SecurityBusy),
    };
    prepare_operator(&core.app.keys.load().kek, username, role, password_phc)
}

/// A new operator record with a fresh TOTP secret sealed under `kek`, and its enrolment.
pub fn prepare_operator(
    kek: &crypto::envelope::KeyRing,
    username: String,
    role: Role,
    password_phc: String,
) -> Result<(NewOperator, TotpEnrolment), ApiError> {
    let totp = TotpSecret::generate().map_err(|_| ApiError::SecurityBusy)?;
    let secret = totp.to_base32();
    let uri = totp.otpauth_uri(&username).map_err(|_| ApiError::InvalidParam {
        param: "username",
        message: "the username cannot name a TOTP account",
    })?;
    let totp_sealed =
        kek.seal(secret.as_bytes(), &totp_aad(&username)).map_err(|_| ApiError::SecurityBusy)?;
    let new = NewOperator { username, role, password_phc, totp_sealed, created_at_s: unix_now_s() };
    Ok((new, TotpEnrolment { secret, uri }))
}

fn operator_id(segment: &str) -> Result<u64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::InvalidParam { param: "id", message: "an operator id is a number" })
}

const OPERATOR_NOT_FOUND: ApiError =
    ApiError::NotFound { code: "operator_not_found", message: "no operator with this id" };

async fn operator_view(core: &Core, id: u64) -> Result<Response<Body>, ApiError> {
    let operator = core.store.operator(id).await?.ok_or(OPERATOR_NOT_FOUND)?;
    Ok(json(StatusCode::OK, &OperatorView::from(operator)))
}

async fn unlock_operator(
    core: &Core,
    context: &OperatorContext<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = operator_id(id)?;
    let unlocked = core.store.unlock_operator(id).await;
    if !audited(core, context, "operator.unlock", Some(id.to_string()), unlocked).await? {
        return Err(OPERATOR_NOT_FOUND);
    }
    operator_view(core, id).await
}

async fn set_disabled(
    core: &Core,
    context: &OperatorContext<'_>,
    id: &str,
    disabled: bool,
) -> Result<Response<Body>, ApiError> {
    let id = operator_id(id)?;
    let action = if disabled { "operator.disable" } else { "operator.enable" };
    let changed = core.store.set_operator_disabled(id, disabled).await;
    if !audited(core, context, action, Some(id.to_string()), changed).await? {
        return Err(OPERATOR_NOT_FOUND);
    }
    if disabled {
        core.app.sessions.revoke_all_for(&core.store, id).await?;
    }
    operator_view(core, id).await
}

#[derive(Serialize)]
struct Revoked {
    revoked: usize,
}

async fn revoke_sessions(
    core: &Core,
    context: &OperatorContext<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = operator_id(id)?;
    core.store.operator(id).await?.ok_or(OPERATOR_NOT_FOUND)?;
    let revoked = core.app.sessions.revoke_all_for(&core.store, id).await?;
    let target = Some(id.to_string());
    context.audit(core, "operator.revoke_sessions", target, AuditOutcome::Success).await?;
    Ok(json(StatusCode::OK, &Revoked { revoked }))
}
