//! Routing: a hand-written match on the method and the path's segments, no allocation.
//!
//! [`RouteId::ALL`] lists every route with its template; `docs/openapi.yaml` must
//! describe each one (a test checks). Routing never parses ids or bodies and never
//! touches storage: it only names the route and hands over the raw path parameter.

use http::Method;

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
    /// `GET /livez`
    Livez,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
}

impl RouteId {
    /// Every route, for the spec test and for metrics.
    pub const ALL: [Self; 8] = [
        Self::CreateAccounts,
        Self::GetAccount,
        Self::ListAccountTransfers,
        Self::CreateTransfers,
        Self::GetTransfer,
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
            Self::Livez => ("GET", "/livez"),
            Self::Readyz => ("GET", "/readyz"),
            Self::Metrics => ("GET", "/metrics"),
        }
    }

    /// Whether the route needs a tenant's credentials.
    pub const fn is_authenticated(self) -> bool {
        !matches!(self, Self::Livez | Self::Readyz | Self::Metrics)
    }
}

/// A matched route and its raw `{id}` segment (empty when the route has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched<'p> {
    /// Which route.
    pub route: RouteId,
    /// The `{id}` path segment, unparsed.
    pub id: &'p str,
}

/// Why no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No route has this path.
    NotFound,
    /// The path exists with another method.
    MethodNotAllowed {
        /// The method the path takes (for the `Allow` header).
        allow: &'static str,
    },
}

/// Matches `method` and `path` (without the query) to a route.
pub fn route<'p>(method: &Method, path: &'p str) -> Result<Matched<'p>, NoRoute> {
    let (route, id) = by_path(path).ok_or(NoRoute::NotFound)?;
    let allow = route.template().0;
    if allow != method.as_str() {
        return Err(NoRoute::MethodNotAllowed { allow });
    }
    Ok(Matched { route, id })
}

fn by_path(path: &str) -> Option<(RouteId, &str)> {
    let rest = path.strip_prefix('/')?;
    let mut segments = rest.split('/');
    let found = match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("v1"), Some("accounts"), None, None) => (RouteId::CreateAccounts, ""),
        (Some("v1"), Some("transfers"), None, None) => (RouteId::CreateTransfers, ""),
        (Some("v1"), Some("accounts"), Some(id), None) if !id.is_empty() => {
            (RouteId::GetAccount, id)
        }
        (Some("v1"), Some("accounts"), Some(id), Some("transfers")) if !id.is_empty() => {
            (RouteId::ListAccountTransfers, id)
        }
        (Some("v1"), Some("transfers"), Some(id), None) if !id.is_empty() => {
            (RouteId::GetTransfer, id)
        }
        (Some("livez"), None, None, None) => (RouteId::Livez, ""),
        (Some("readyz"), None, None, None) => (RouteId::Readyz, ""),
        (Some("metrics"), None, None, None) => (RouteId::Metrics, ""),
        _ => return None,
    };
    if segments.next().is_some() {
        return None;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a template.
    fn example(template: &str) -> String {
        template.replace("{id}", "0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60")
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
            (Method::GET, "/v1/accounts", Err(NoRoute::MethodNotAllowed { allow: "POST" })),
            (Method::DELETE, "/v1/transfers/abc", Err(NoRoute::MethodNotAllowed { allow: "GET" })),
            (Method::POST, "/livez", Err(NoRoute::MethodNotAllowed { allow: "GET" })),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path).map(|m| m.route), expected, "{method} {path}");
        }
    }

    #[test]
    fn id_segment_is_handed_over_raw() {
        let matched = route(&Method::GET, "/v1/accounts/abc/transfers").unwrap();
        assert_eq!(matched, Matched { route: RouteId::ListAccountTransfers, id: "abc" });
    }
}
