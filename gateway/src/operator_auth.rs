//! Operators' authentication and authorisation: sign-in (password, then TOTP), the
//! short-lived signed token bound to a server-side session, sign-out and token refresh,
//! and, for every administrative route, token -> live session -> role check before
//! [`crate::admin_api`] runs.
//!
//! Sign-in answers one undifferentiated 401 whatever failed (unknown name, wrong
//! password, wrong or reused code, locked or disabled operator); the reason goes to
//! metrics and the audit trail. Every failure counts towards the operator's lock-out
//! (`FAILED_ATTEMPTS_MAX`, then only an admin can unlock), sign-in is rate-limited per
//! client address, and password hashing runs off the core on a bounded number of slots.
//! A token is checked on every request against its session, so sign-out and revocation
//! take effect at once in every process. Nothing here logs a password, code, token,
//! session id or username.

use std::net::IpAddr;

use crypto::token::Claims;
use crypto::totp::{Params, TotpSecret};
use http::request::Parts;
use http::{Response, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use storage::operators::{Operator, Role, SignInRecorded};
use storage::sessions::{Session, SessionError, Sessions};
use storage::{CoreStore, StoreError};

use crate::admin_api::{self, OperatorContext};
use crate::app::Core;
use crate::audit::{Actor, AuditOutcome, Event};
use crate::errors::{ApiError, Body, json_response};
use crate::metrics::SignInLabels;
use crate::request::{self, unix_now_s};
use crate::router::Matched;

/// TOTP codes one step either side of now are accepted (clock skew).
const TOTP_SKEW_STEPS: u8 = 1;
/// A hash verified when the name is unknown, so timing does not tell names apart (made
/// once, with the same parameters as every stored hash).
static DUMMY_PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_phc() -> &'static str {
    DUMMY_PHC.get_or_init(|| {
        crypto::password::hash_password("protea-no-such-operator").unwrap_or_default()
    })
}

/// Where operator sessions live.
#[derive(Clone, Debug)]
pub enum SessionStore {
    /// DynamoDB behind a Redis cache (production).
    Dynamo(Sessions),
    /// The ledger store itself (embedded, or PostgreSQL without DynamoDB).
    Store,
}

impl SessionStore {
    async fn create(&self, store: &CoreStore, session: &Session) -> Result<(), ApiError> {
        match self {
            Self::Dynamo(sessions) => Ok(sessions.create(session).await?),
            Self::Store => Ok(store.create_session(session).await?),
        }
    }

    async fn get_and_touch(
        &self,
        store: &CoreStore,
        id: &str,
        now_s: u64,
    ) -> Result<Option<Session>, ApiError> {
        match self {
            Self::Dynamo(sessions) => Ok(sessions.get_and_touch(id, now_s).await?),
            Self::Store => Ok(store.session_get_and_touch(id, now_s).await?),
        }
    }

    async fn revoke(&self, store: &CoreStore, id: &str) -> Result<bool, ApiError> {
        match self {
            Self::Dynamo(sessions) => Ok(sessions.revoke(id).await?),
            Self::Store => Ok(store.revoke_session(id).await?),
        }
    }

    /// Revokes every session of `operator_id`; returns how many.
    pub async fn revoke_all_for(
        &self,
        store: &CoreStore,
        operator_id: u64,
    ) -> Result<usize, ApiError> {
        let operator_id = operator_id.to_string();
        match self {
            Self::Dynamo(sessions) => Ok(sessions.revoke_all_for(&operator_id).await?),
            Self::Store => Ok(store.revoke_sessions_of(&operator_id).await?),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        ApiError::Sessions(error)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    username: String,
    password: String,
    code: String,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    token: &'a str,
    token_type: &'static str,
    expires_at: u64,
    session_expires_at: u64,
    operator: OperatorBrief<'a>,
}

#[derive(Serialize)]
struct OperatorBrief<'a> {
    id: u64,
    role: &'a str,
}

/// `POST /v1/operator/sign-in`: password and TOTP code for a token and a session.
pub async fn sign_in(
    core: &Core,
    origin: IpAddr,
    body: Vec<u8>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let app = &core.app;
    let key = sign_in_limit_key(origin);
    let decision = app.limiter.check(key, app.config.security.sign_in_quota, app.clock_ns()).await;
    request::limited(core, "sign_in", decision)?;
    let body: SignInBody = serde_json::from_slice(&body).map_err(|_| ApiError::InvalidParam {
        param: "body",
        message: "expected {\"username\", \"password\", \"code\"}",
    })?;
    let audit = |outcome, target: Option<u64>| {
        let mut event = Event::new(Actor::Anonymous, "operator.sign_in", outcome);
        event.request_id = Some(request_id);
        event.origin = Some(origin);
        event.detail = target.map(|id| id.to_string().into_bytes()).unwrap_or_default();
        core.app.audit.record(event)
    };
    match check_sign_in(core, &body).await {
        Ok(operator) => {
            audit(AuditOutcome::Success, Some(operator.id)).await?;
            count_sign_in(core, "ok");
            issue_session(core, &operator).await
        }
        Err(SignInRefused { reason, operator }) => {
            audit(AuditOutcome::Refused(reason), operator).await?;
            count_sign_in(core, reason);
            // Capacity and storage failures are the gateway's, not the caller's: 503.
            match reason {
                BUSY => Err(ApiError::SecurityBusy),
                STORAGE_UNAVAILABLE => Err(ApiError::Storage(StoreError::Io("sign-in".into()))),
                _ => Err(ApiError::Unauthenticated),
            }
        }
    }
}

fn count_sign_in(core: &Core, outcome: &'static str) {
    core.app.metrics.sign_ins.get_or_create(&SignInLabels { outcome }).inc();
}

/// No password slot was free: the attempt was not judged.
const BUSY: &str = "busy";
/// The store did not answer.
const STORAGE_UNAVAILABLE: &str = "storage_unavailable";

/// A refused sign-in: why (a fixed code) and whose, when the name was known.
struct SignInRefused {
    reason: &'static str,
    operator: Option<u64>,
}

/// The rate limiter's key for sign-ins from `ip`: a fixed hash (the same in every
/// process, so global limits agree) in a range no tenant id reaches.
fn sign_in_limit_key(ip: IpAddr) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let octets = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    for byte in octets {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash | (1 << 63)
}

/// Checks a sign-in; every refusal of a known operator counts towards the lock-out.
async fn check_sign_in(core: &Core, body: &SignInBody) -> Result<Operator, SignInRefused> {
    let store = &core.store;
    let refused = |reason, operator: Option<u64>| SignInRefused { reason, operator };
    let found = store.operator_by_username(&body.username).await.map_err(|error| {
        tracing::error!(%error, "sign-in: operator look-up failed");
        refused(STORAGE_UNAVAILABLE, None)
    })?;
    let Some(operator) = found else {
        // The same work and the same answers as for a known name.
        return match verify_password(core, &body.password, "").await {
            Err(BUSY) => Err(refused(BUSY, None)),
            _ => Err(refused("unknown_operator", None)),
        };
    };
    let id = Some(operator.id);
    // The password is checked first even for a locked or disabled operator, so timing
    // does not tell them apart; neither gets a lock-out strike.
    let password_ok = verify_password(core, &body.password, &operator.password_phc).await;
    if password_ok == Err(BUSY) {
        return Err(refused(BUSY, id));
    }
    if operator.locked || operator.disabled {
        return Err(refused(if operator.locked { "locked" } else { "disabled" }, id));
    }
    let step = match password_ok {
        Ok(true) => verify_code(core, &operator, &body.code),
        Ok(false) => Err("wrong_password"),
        Err(reason) => Err(reason),
    };
    match step {
        Ok(step) => record_success(core, operator, step).await,
        Err(reason) => {
            record_failure(core, operator.id).await;
            Err(refused(reason, id))
        }
    }
}

async fn record_success(
    core: &Core,
    operator: Operator,
    step: u64,
) -> Result<Operator, SignInRefused> {
    let refused = |reason| SignInRefused { reason, operator: Some(operator.id) };
    match core.store.record_sign_in_success(operator.id, step).await {
        Ok(SignInRecorded::Recorded) => Ok(operator),
        Ok(SignInRecorded::CodeReused) => {
            record_failure(core, operator.id).await;
            Err(refused("code_reused"))
        }
        Ok(SignInRecorded::Locked) => Err(refused("locked")),
        Ok(SignInRecorded::Disabled) => Err(refused("disabled")),
        Ok(SignInRecorded::NotFound) => Err(refused("unknown_operator")),
        Err(error) => {
            tracing::error!(%error, "sign-in: recording success failed");
            Err(refused(STORAGE_UNAVAILABLE))
        }
    }
}

async fn record_failure(core: &Core, operator_id: u64) {
    match core.store.record_sign_in_failure(operator_id).await {
        Ok(Some(operator)) if operator.locked => {
            tracing::warn!(operator_id, "operator locked after repeated sign-in failures");
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "sign-in: recording a failure failed"),
    }
}

/// Verifies an argon2id hash off the core, on one of the bounded password slots.
async fn verify_password(core: &Core, password: &str, phc: &str) -> Result<bool, &'static str> {
    let _permit = core.app.password_slots.try_acquire().map_err(|_| BUSY)?;
    let (password, phc) = (password.to_owned(), phc.to_owned());
    let verified = tokio::task::spawn_blocking(move || {
        let phc = if phc.is_empty() { dummy_phc() } else { &phc };
        crypto::password::verify_password(&password, phc)
    });
    match verified.await {
        Ok(Ok(matched)) => Ok(matched),
        Ok(Err(_)) => Err("stored_hash_invalid"),
        Err(_) => Err(BUSY),
    }
}

/// The TOTP step `code` matches, after the operator's last used step.
fn verify_code(core: &Core, operator: &Operator, code: &str) -> Result<u64, &'static str> {
    let kek = &core.app.keys.load().kek;
    let secret = kek
        .open(&operator.totp_sealed, &totp_aad(&operator.username))
        .map_err(|_| "totp_secret_unreadable")?;
    let text = std::str::from_utf8(&secret).map_err(|_| "totp_secret_unreadable")?;
    let totp =
        TotpSecret::from_base32(text, Params::DEFAULT).map_err(|_| "totp_secret_unreadable")?;
    totp.verify(code, unix_now_s(), TOTP_SKEW_STEPS, operator.totp_last_step).map_err(|rejected| {
        match rejected {
            crypto::totp::CodeRejected::Reused => "code_reused",
            _ => "wrong_code",
        }
    })
}

/// The associated data an operator's TOTP secret is sealed with.
pub fn totp_aad(username: &str) -> Vec<u8> {
    [b"protea:totp:".as_slice(), username.as_bytes()].concat()
}

/// Starts a session for `operator` and answers with its first token.
async fn issue_session(core: &Core, operator: &Operator) -> Result<Response<Body>, ApiError> {
    let now = unix_now_s();
    let id = crypto::token::random_token_id().map_err(|_| ApiError::SecurityBusy)?;
    let session = Session::new(id, operator.id.to_string(), operator.role.as_str(), now);
    core.app.sessions.create(&core.store, &session).await?;
    token_response(core, &session, StatusCode::OK)
}

/// Signs a token for `session`, valid for the token lifetime or until the session's
/// absolute expiry, whichever comes first.
fn token_response(
    core: &Core,
    session: &Session,
    status: StatusCode,
) -> Result<Response<Body>, ApiError> {
    let now = unix_now_s();
    let lifetime = core.app.config.security.token_lifetime.as_secs();
    let exp = now.saturating_add(lifetime).min(session.expires_at_s);
    let claims = Claims {
        sub: session.operator_id.clone(),
        role: session.role.clone(),
        sid: session.id.clone(),
        iat: now,
        exp,
        jti: crypto::token::random_token_id().map_err(|_| ApiError::SecurityBusy)?,
    };
    let token = core.app.keys.load().token_signer.sign(&claims).map_err(|error| {
        tracing::error!(%error, "signing an operator token failed");
        ApiError::SecurityBusy
    })?;
    let id = session.operator_id.parse().unwrap_or(0);
    let body = TokenBody {
        token: &token,
        token_type: "Bearer",
        expires_at: exp,
        session_expires_at: session.expires_at_s,
        operator: OperatorBrief { id, role: &session.role },
    };
    Ok(json_response(status, serde_json::to_vec(&body).unwrap_or_default()))
}

/// An operator's request: the route, who may call it, and where it came from.
pub struct Call<'a> {
    /// The matched route and its path parameters.
    pub matched: Matched<'a>,
    /// The roles the route admits.
    pub roles: &'static [Role],
    /// The request's id.
    pub request_id: &'a str,
    /// The client's address.
    pub origin: IpAddr,
}

/// An administrative route: token, live session and role, then the body, then
/// [`admin_api`].
pub async fn serve(
    core: &Core,
    call: Call<'_>,
    parts: Parts,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let Call { matched, roles, request_id, origin } = call;
    let (operator, session) = authenticate(core, &parts).await?;
    let context = OperatorContext { operator, request_id, origin };
    if !roles.contains(&operator.role) {
        let route = Some(matched.route.template().1.to_owned());
        context.audit(core, "route.call", route, AuditOutcome::Refused("forbidden")).await?;
        return Err(ApiError::Forbidden);
    }
    let body = request::read_body(core, &parts, body).await?;
    match matched.route {
        crate::router::RouteId::SignOut => sign_out(core, &context, &session).await,
        crate::router::RouteId::RefreshToken => token_response(core, &session, StatusCode::OK),
        _ => admin_api::handle(core, &context, matched, parts.uri.query(), body).await,
    }
}

/// Who is calling an administrative route.
#[derive(Clone, Copy, Debug)]
pub struct SignedInOperator {
    /// The operator's id.
    pub id: u64,
    /// The role of their session.
    pub role: Role,
}

/// The operator behind a request's token, with their live session (touched).
async fn authenticate(core: &Core, parts: &Parts) -> Result<(SignedInOperator, Session), ApiError> {
    let refused = |reason| request::auth_failed(core, "operator", reason);
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| refused("missing"))?;
    let now = unix_now_s();
    let claims =
        core.app.keys.load().token_verifier.verify(token, now).map_err(|e| refused(e.code()))?;
    let session = core
        .app
        .sessions
        .get_and_touch(&core.store, &claims.sid, now)
        .await?
        .ok_or_else(|| refused("session_not_live"))?;
    if session.operator_id != claims.sub {
        return Err(refused("session_mismatch"));
    }
    let role = Role::parse(&session.role).ok_or_else(|| refused("unknown_role"))?;
    let id = session.operator_id.parse().map_err(|_| refused("unknown_role"))?;
    // A disabled operator's sessions are revoked when they are disabled; this check
    // holds even if that revocation failed.
    match core.store.operator(id).await? {
        Some(operator) if !operator.disabled => Ok((SignedInOperator { id, role }, session)),
        _ => Err(refused("operator_disabled")),
    }
}

async fn sign_out(
    core: &Core,
    context: &OperatorContext<'_>,
    session: &Session,
) -> Result<Response<Body>, ApiError> {
    core.app.sessions.revoke(&core.store, &session.id).await?;
    context.audit(core, "operator.sign_out", None, AuditOutcome::Success).await?;
    Ok(crate::admin_api::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_keys_are_stable_and_apart_from_tenants() {
        let a = sign_in_limit_key("10.0.0.1".parse().unwrap());
        assert_eq!(a, sign_in_limit_key("10.0.0.1".parse().unwrap()));
        assert_ne!(a, sign_in_limit_key("10.0.0.2".parse().unwrap()));
        assert_eq!(a, sign_in_limit_key("::ffff:10.0.0.1".parse().unwrap()));
        assert!(a >= 1 << 63);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_phc_string() {
        let verified = crypto::password::verify_password("not the password", dummy_phc());
        assert!(matches!(verified, Ok(false)));
    }
}
