//! Routing: a hand-written match on the path's segments, then on the method; no
//! allocation.
//!
//! [`RouteId::ALL`] lists every route with its template and who may call it
//! ([`Access`]); `docs/openapi.yaml` must describe each one and nothing else (a test
//! checks). Routing never parses ids or bodies and never touches storage: it only names
//! the route and hands over the raw path parameters.

use http::Method;
use storage::operators::Role;

/// Every route the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteId {
    /// `POST /v1/accounts`
    CreateAccounts,
    /// `GET /v1/accounts/{id}`
    GetAccount,
    /// `GET /v1/accounts/{id}/transfers`
    ListAccountTransfers,
    /// `POST /v1/transfers`
    CreateTransfers,
    /// `GET /v1/transfers/{id}`
    GetTransfer,
    /// `POST /v1/operator/sign-in`
    SignIn,
    /// `POST /v1/operator/sign-out`
    SignOut,
    /// `POST /v1/operator/token`
    RefreshToken,
    /// `GET /v1/admin/tenants`
    ListTenants,
    /// `POST /v1/admin/tenants`
    CreateTenant,
    /// `GET /v1/admin/tenants/{name}/keys`
    ListTenantKeys,
    /// `POST /v1/admin/tenants/{name}/keys`
    CreateTenantKey,
    /// `DELETE /v1/admin/tenants/{name}/keys/{key_id}`
    RevokeTenantKey,
    /// `GET /v1/admin/operators`
    ListOperators,
    /// `POST /v1/admin/operators`
    CreateOperator,
    /// `POST /v1/admin/operators/{id}/unlock`
    UnlockOperator,
    /// `POST /v1/admin/operators/{id}/disable`
    DisableOperator,
    /// `POST /v1/admin/operators/{id}/enable`
    EnableOperator,
    /// `DELETE /v1/admin/operators/{id}/sessions`
    RevokeOperatorSessions,
    /// `POST /v1/subjects`
    CreateSubject,
    /// `GET /v1/subjects` (by email, phone or national id)
    FindSubjects,
    /// `GET /v1/subjects/{id}`
    GetSubject,
    /// `DELETE /v1/subjects/{id}`
    EraseSubject,
    /// `POST /v1/subjects/{id}/corrections`
    CorrectSubject,
    /// `GET /v1/subjects/{id}/export`
    ExportSubject,
    /// `GET /v1/subjects/{id}/consents`
    ListConsents,
    /// `POST /v1/subjects/{id}/consents`
    RecordConsent,
    /// `GET /v1/subjects/{id}/purposes/{purpose}`
    CheckPurpose,
    /// `GET /v1/audit/verify`
    VerifyAudit,
    /// `GET /v1/audit/export`
    ExportAudit,
    /// `GET /v1/compliance/report`
    ComplianceReport,
    /// `GET /v1/compliance/inventory`
    Inventory,
    /// `GET /v1/compliance/requests`
    ListRequests,
    /// `GET /v1/compliance/subjects/{name}/{id}`
    OfficerSubject,
    /// `GET /v1/compliance/breaches`
    ListBreaches,
    /// `POST /v1/compliance/breaches`
    RecordBreach,
    /// `POST /v1/compliance/breaches/{id}/notifications`
    NotifyBreach,
    /// `GET /v1/compliance/breaches/{id}/notification`
    BreachNotification,
    /// `GET /livez`
    Livez,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (probes and metrics).
    Public,
    /// Anyone, rate-limited per client address: operator sign-in.
    SignIn,
    /// A tenant: a signed request, a client certificate, or (where allowed) a Bearer key.
    Tenant,
    /// An operator with a live session whose role is in the list.
    Operator(&'static [Role]),
}

use Role::{Admin, Auditor, InformationOfficer, Operator as Ops};

/// Every operator role: routes about one's own session.
const ANY_ROLE: &[Role] = &[Admin, Ops, Auditor, InformationOfficer];
/// Who may read tenants and their key ids.
const TENANT_READERS: &[Role] = &[Admin, Ops, Auditor];
/// Who may rotate and revoke tenants' keys.
const KEY_MANAGERS: &[Role] = &[Admin, Ops];
/// Who may read the operator list.
const OPERATOR_READERS: &[Role] = &[Admin, Auditor];
/// Who may create tenants and manage operators.
const ADMINS: &[Role] = &[Admin];
/// Who may verify the audit trail.
const AUDIT_VERIFIERS: &[Role] = &[Admin, Auditor, InformationOfficer];
/// Who may read (export) the audit trail.
const AUDIT_READERS: &[Role] = &[Admin, Auditor, InformationOfficer];
/// Who may read the compliance report and the breach register.
const OFFICER_AND_ADMIN: &[Role] = &[Admin, InformationOfficer];
/// The Information Officer's own work (and an admin's, who may do anything).
const OFFICERS: &[Role] = &[Admin, InformationOfficer];

impl RouteId {
    /// Every route, for the spec test and for metrics.
    pub const ALL: [Self; 41] = [
        Self::CreateAccounts,
        Self::GetAccount,
        Self::ListAccountTransfers,
        Self::CreateTransfers,
        Self::GetTransfer,
        Self::SignIn,
        Self::SignOut,
        Self::RefreshToken,
        Self::ListTenants,
        Self::CreateTenant,
        Self::ListTenantKeys,
        Self::CreateTenantKey,
        Self::RevokeTenantKey,
        Self::ListOperators,
        Self::CreateOperator,
        Self::UnlockOperator,
        Self::DisableOperator,
        Self::EnableOperator,
        Self::RevokeOperatorSessions,
        Self::CreateSubject,
        Self::FindSubjects,
        Self::GetSubject,
        Self::EraseSubject,
        Self::CorrectSubject,
        Self::ExportSubject,
        Self::ListConsents,
        Self::RecordConsent,
        Self::CheckPurpose,
        Self::VerifyAudit,
        Self::ExportAudit,
        Self::ComplianceReport,
        Self::Inventory,
        Self::ListRequests,
        Self::OfficerSubject,
        Self::ListBreaches,
        Self::RecordBreach,
        Self::NotifyBreach,
        Self::BreachNotification,
        Self::Livez,
        Self::Readyz,
        Self::Metrics,
    ];

    /// The route's method and path template (as in the OpenAPI spec). Also its metrics
    /// label, so label cardinality is fixed.
    pub const fn template(self) -> (&'static str, &'static str) {
        match self {
            Self::CreateAccounts => ("POST", "/v1/accounts"),
            Self::GetAccount => ("GET", "/v1/accounts/{id}"),
            Self::ListAccountTransfers => ("GET", "/v1/accounts/{id}/transfers"),
            Self::CreateTransfers => ("POST", "/v1/transfers"),
            Self::GetTransfer => ("GET", "/v1/transfers/{id}"),
            Self::SignIn => ("POST", "/v1/operator/sign-in"),
            Self::SignOut => ("POST", "/v1/operator/sign-out"),
            Self::RefreshToken => ("POST", "/v1/operator/token"),
            Self::ListTenants => ("GET", "/v1/admin/tenants"),
            Self::CreateTenant => ("POST", "/v1/admin/tenants"),
            Self::ListTenantKeys => ("GET", "/v1/admin/tenants/{name}/keys"),
            Self::CreateTenantKey => ("POST", "/v1/admin/tenants/{name}/keys"),
            Self::RevokeTenantKey => ("DELETE", "/v1/admin/tenants/{name}/keys/{key_id}"),
            Self::ListOperators => ("GET", "/v1/admin/operators"),
            Self::CreateOperator => ("POST", "/v1/admin/operators"),
            Self::UnlockOperator => ("POST", "/v1/admin/operators/{id}/unlock"),
            Self::DisableOperator => ("POST", "/v1/admin/operators/{id}/disable"),
            Self::EnableOperator => ("POST", "/v1/admin/operators/{id}/enable"),
            Self::RevokeOperatorSessions => ("DELETE", "/v1/admin/operators/{id}/sessions"),
            Self::CreateSubject => ("POST", "/v1/subjects"),
            Self::FindSubjects => ("GET", "/v1/subjects"),
            Self::GetSubject => ("GET", "/v1/subjects/{id}"),
            Self::EraseSubject => ("DELETE", "/v1/subjects/{id}"),
            Self::CorrectSubject => ("POST", "/v1/subjects/{id}/corrections"),
            Self::ExportSubject => ("GET", "/v1/subjects/{id}/export"),
            Self::ListConsents => ("GET", "/v1/subjects/{id}/consents"),
            Self::RecordConsent => ("POST", "/v1/subjects/{id}/consents"),
            Self::CheckPurpose => ("GET", "/v1/subjects/{id}/purposes/{purpose}"),
            Self::VerifyAudit => ("GET", "/v1/audit/verify"),
            Self::ExportAudit => ("GET", "/v1/audit/export"),
            Self::ComplianceReport => ("GET", "/v1/compliance/report"),
            Self::Inventory => ("GET", "/v1/compliance/inventory"),
            Self::ListRequests => ("GET", "/v1/compliance/requests"),
            Self::OfficerSubject => ("GET", "/v1/compliance/subjects/{name}/{id}"),
            Self::ListBreaches => ("GET", "/v1/compliance/breaches"),
            Self::RecordBreach => ("POST", "/v1/compliance/breaches"),
            Self::NotifyBreach => ("POST", "/v1/compliance/breaches/{id}/notifications"),
            Self::BreachNotification => ("GET", "/v1/compliance/breaches/{id}/notification"),
            Self::Livez => ("GET", "/livez"),
            Self::Readyz => ("GET", "/readyz"),
            Self::Metrics => ("GET", "/metrics"),
        }
    }

    /// Whether the route is one of the Information Officer's or auditors'
    /// (`/v1/audit...`, `/v1/compliance...`).
    pub const fn is_compliance(self) -> bool {
        matches!(
            self,
            Self::VerifyAudit
                | Self::ExportAudit
                | Self::ComplianceReport
                | Self::Inventory
                | Self::ListRequests
                | Self::OfficerSubject
                | Self::ListBreaches
                | Self::RecordBreach
                | Self::NotifyBreach
                | Self::BreachNotification
        )
    }

    /// Whether the route is one of the vault's (`/v1/subjects...`).
    pub const fn is_vault(self) -> bool {
        matches!(
            self,
            Self::CreateSubject
                | Self::FindSubjects
                | Self::GetSubject
                | Self::EraseSubject
                | Self::CorrectSubject
                | Self::ExportSubject
                | Self::ListConsents
                | Self::RecordConsent
                | Self::CheckPurpose
        )
    }

    /// Who may call the route.
    pub const fn access(self) -> Access {
        match self {
            Self::Livez | Self::Readyz | Self::Metrics => Access::Public,
            Self::SignIn => Access::SignIn,
            Self::CreateAccounts
            | Self::GetAccount
            | Self::ListAccountTransfers
            | Self::CreateTransfers
            | Self::GetTransfer
            | Self::CreateSubject
            | Self::FindSubjects
            | Self::GetSubject
            | Self::EraseSubject
            | Self::CorrectSubject
            | Self::ExportSubject
            | Self::ListConsents
            | Self::RecordConsent
            | Self::CheckPurpose => Access::Tenant,
            Self::VerifyAudit => Access::Operator(AUDIT_VERIFIERS),
            Self::ExportAudit => Access::Operator(AUDIT_READERS),
            Self::ComplianceReport | Self::ListBreaches => Access::Operator(OFFICER_AND_ADMIN),
            Self::Inventory | Self::OfficerSubject => Access::Operator(ANY_ROLE),
            Self::ListRequests
            | Self::RecordBreach
            | Self::NotifyBreach
            | Self::BreachNotification => Access::Operator(OFFICERS),
            Self::SignOut | Self::RefreshToken => Access::Operator(ANY_ROLE),
            Self::ListTenants | Self::ListTenantKeys => Access::Operator(TENANT_READERS),
            Self::CreateTenantKey | Self::RevokeTenantKey => Access::Operator(KEY_MANAGERS),
            Self::ListOperators => Access::Operator(OPERATOR_READERS),
            Self::CreateTenant
            | Self::CreateOperator
            | Self::UnlockOperator
            | Self::DisableOperator
            | Self::EnableOperator
            | Self::RevokeOperatorSessions => Access::Operator(ADMINS),
        }
    }
}

/// A matched route and its raw path parameters (empty when the route has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched<'p> {
    /// Which route.
    pub route: RouteId,
    /// The first path parameter (`{id}` or `{name}`), unparsed.
    pub id: &'p str,
    /// The second path parameter (`{key_id}`), unparsed.
    pub sub: &'p str,
}

/// Why no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No route has this path.
    NotFound,
    /// The path exists with other methods.
    MethodNotAllowed {
        /// The methods the path takes (for the `Allow` header).
        allow: &'static str,
    },
}

/// The routes of one path, by method.
struct PathRoutes<'p> {
    get: Option<RouteId>,
    post: Option<RouteId>,
    delete: Option<RouteId>,
    allow: &'static str,
    id: &'p str,
    sub: &'p str,
}

/// Matches `method` and `path` (without the query) to a route.
pub fn route<'p>(method: &Method, path: &'p str) -> Result<Matched<'p>, NoRoute> {
    let routes = by_path(path).ok_or(NoRoute::NotFound)?;
    let route = match *method {
        Method::GET => routes.get,
        Method::POST => routes.post,
        Method::DELETE => routes.delete,
        _ => None,
    };
    match route {
        Some(route) => Ok(Matched { route, id: routes.id, sub: routes.sub }),
        None => Err(NoRoute::MethodNotAllowed { allow: routes.allow }),
    }
}

fn get(route: RouteId) -> PathRoutes<'static> {
    PathRoutes { get: Some(route), post: None, delete: None, allow: "GET", id: "", sub: "" }
}

fn post(route: RouteId) -> PathRoutes<'static> {
    PathRoutes { get: None, post: Some(route), delete: None, allow: "POST", id: "", sub: "" }
}

fn delete(route: RouteId) -> PathRoutes<'static> {
    PathRoutes { get: None, post: None, delete: Some(route), allow: "DELETE", id: "", sub: "" }
}

fn get_post(get: RouteId, post: RouteId) -> PathRoutes<'static> {
    PathRoutes {
        get: Some(get),
        post: Some(post),
        delete: None,
        allow: "GET, POST",
        id: "",
        sub: "",
    }
}

fn get_delete(get: RouteId, delete: RouteId) -> PathRoutes<'static> {
    PathRoutes {
        get: Some(get),
        post: None,
        delete: Some(delete),
        allow: "GET, DELETE",
        id: "",
        sub: "",
    }
}

/// The most segments a route's path has.
const SEGMENTS_MAX: usize = 6;

/// The path's segments (at most [`SEGMENTS_MAX`], none empty), without allocating.
fn segments(path: &str) -> Option<([&str; SEGMENTS_MAX], usize)> {
    let mut found = [""; SEGMENTS_MAX];
    let mut count = 0;
    for segment in path.strip_prefix('/')?.split('/') {
        if segment.is_empty() || count == SEGMENTS_MAX {
            return None;
        }
        found[count] = segment;
        count += 1;
    }
    Some((found, count))
}

fn by_path(path: &str) -> Option<PathRoutes<'_>> {
    use RouteId as R;
    let (found, count) = segments(path)?;
    let with = |routes: PathRoutes<'static>, id, sub| PathRoutes { id, sub, ..routes };
    Some(match found[..count] {
        ["v1", "accounts"] => post(R::CreateAccounts),
        ["v1", "accounts", id] => with(get(R::GetAccount), id, ""),
        ["v1", "accounts", id, "transfers"] => with(get(R::ListAccountTransfers), id, ""),
        ["v1", "transfers"] => post(R::CreateTransfers),
        ["v1", "subjects"] => get_post(R::FindSubjects, R::CreateSubject),
        ["v1", "subjects", id] => with(get_delete(R::GetSubject, R::EraseSubject), id, ""),
        ["v1", "subjects", id, "corrections"] => with(post(R::CorrectSubject), id, ""),
        ["v1", "subjects", id, "export"] => with(get(R::ExportSubject), id, ""),
        ["v1", "subjects", id, "consents"] => {
            with(get_post(R::ListConsents, R::RecordConsent), id, "")
        }
        ["v1", "subjects", id, "purposes", purpose] => with(get(R::CheckPurpose), id, purpose),
        ["v1", "audit", "verify"] => get(R::VerifyAudit),
        ["v1", "audit", "export"] => get(R::ExportAudit),
        ["v1", "compliance", "report"] => get(R::ComplianceReport),
        ["v1", "compliance", "inventory"] => get(R::Inventory),
        ["v1", "compliance", "requests"] => get(R::ListRequests),
        ["v1", "compliance", "subjects", name, id] => with(get(R::OfficerSubject), name, id),
        ["v1", "compliance", "breaches"] => get_post(R::ListBreaches, R::RecordBreach),
        ["v1", "compliance", "breaches", id, "notifications"] => {
            with(post(R::NotifyBreach), id, "")
        }
        ["v1", "compliance", "breaches", id, "notification"] => {
            with(get(R::BreachNotification), id, "")
        }
        ["v1", "transfers", id] => with(get(R::GetTransfer), id, ""),
        ["v1", "operator", "sign-in"] => post(R::SignIn),
        ["v1", "operator", "sign-out"] => post(R::SignOut),
        ["v1", "operator", "token"] => post(R::RefreshToken),
        ["v1", "admin", "tenants"] => get_post(R::ListTenants, R::CreateTenant),
        ["v1", "admin", "tenants", name, "keys"] => {
            with(get_post(R::ListTenantKeys, R::CreateTenantKey), name, "")
        }
        ["v1", "admin", "tenants", name, "keys", key_id] => {
            with(delete(R::RevokeTenantKey), name, key_id)
        }
        ["v1", "admin", "operators"] => get_post(R::ListOperators, R::CreateOperator),
        ["v1", "admin", "operators", id, "unlock"] => with(post(R::UnlockOperator), id, ""),
        ["v1", "admin", "operators", id, "disable"] => with(post(R::DisableOperator), id, ""),
        ["v1", "admin", "operators", id, "enable"] => with(post(R::EnableOperator), id, ""),
        ["v1", "admin", "operators", id, "sessions"] => {
            with(delete(R::RevokeOperatorSessions), id, "")
        }
        ["livez"] => get(R::Livez),
        ["readyz"] => get(R::Readyz),
        ["metrics"] => get(R::Metrics),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a template.
    fn example(template: &str) -> String {
        template
            .replace("{id}", "0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60")
            .replace("{name}", "acme")
            .replace("{key_id}", "pk_0123456789abcdef")
            .replace("{purpose}", "direct_marketing")
    }

    #[test]
    fn every_route_matches_its_own_template() {
        for route in RouteId::ALL {
            let (method, template) = route.template();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let path = example(template);
            assert_eq!(super::route(&method, &path).map(|m| m.route), Ok(route), "{path}");
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        let cases = [
            (Method::GET, "/", Err(NoRoute::NotFound)),
            (Method::GET, "/v1", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/accounts/", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/accounts/x/transfers/y", Err(NoRoute::NotFound)),
            (Method::GET, "/v2/accounts", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/admin/tenants/acme/keys/", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/admin/tenants/acme/keys/k/x", Err(NoRoute::NotFound)),
            (Method::GET, "//livez", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/admin/operators/1/explode", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/accounts", Err(NoRoute::MethodNotAllowed { allow: "POST" })),
            (Method::DELETE, "/v1/transfers/abc", Err(NoRoute::MethodNotAllowed { allow: "GET" })),
            (Method::POST, "/livez", Err(NoRoute::MethodNotAllowed { allow: "GET" })),
            (
                Method::PUT,
                "/v1/admin/tenants",
                Err(NoRoute::MethodNotAllowed { allow: "GET, POST" }),
            ),
            (
                Method::GET,
                "/v1/admin/tenants/acme/keys/k",
                Err(NoRoute::MethodNotAllowed { allow: "DELETE" }),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path).map(|m| m.route), expected, "{method} {path}");
        }
    }

    #[test]
    fn path_parameters_are_handed_over_raw() {
        let matched = route(&Method::GET, "/v1/accounts/abc/transfers").unwrap();
        assert_eq!(matched, Matched { route: RouteId::ListAccountTransfers, id: "abc", sub: "" });
        let matched = route(&Method::DELETE, "/v1/admin/tenants/acme/keys/pk_1").unwrap();
        assert_eq!(matched, Matched { route: RouteId::RevokeTenantKey, id: "acme", sub: "pk_1" });
    }

    #[test]
    fn every_operator_route_admits_admins_and_only_listed_roles() {
        for route in RouteId::ALL {
            if let Access::Operator(roles) = route.access() {
                assert!(roles.contains(&Role::Admin), "{route:?}");
                assert!(!roles.is_empty());
            }
        }
    }
}
