//! The OWASP API Security Top 10 (2023), item by item, against the real binary: each
//! test's doc names the item it checks, and every check is an outcome a client can see
//! (a status, a body, a header, a closed connection, a balance).
//!
//! Lists that must not miss a route come from `docs/openapi.yaml` (parsed here), checked
//! against the router's own table (`gateway::router::RouteId::ALL`), so a new route
//! without a probe fails a test here rather than go untested.
//!
//! Two items do not apply to Protea and have no test:
//!
//! - **API7:2023 Server Side Request Forgery.** The gateway never fetches a URL, host or
//!   address taken from a request. Its only outbound connections go to the store
//!   (PostgreSQL), Redis, DynamoDB and Secrets Manager, all fixed by flags at start; no
//!   request field is a URL, and no route makes the gateway call out.
//! - **API10:2023 Unsafe Consumption of APIs.** The gateway consumes no third-party API
//!   on any request path. What it reads back from its own infrastructure (stored records,
//!   sessions, secrets) is decoded strictly and checked (`storage` reports `Corrupt`
//!   rather than trusting bytes, and refuses unbalanced ledgers at start); those checks
//!   are storage's tests, not this API's.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crypto::token::{Claims, TokenSigner};
use gateway::router::{Access, RouteId};
use http::{Method, Request, StatusCode, Version};
use http_body_util::Full;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, Api, Gateway, Operator, Reply, uuid};

const LEDGER: u64 = 840;
/// An id no tenant ever creates here.
const MISSING: u128 = 0x0bad_0bad_0bad_0bad_0bad_0bad_0bad_0bad;
/// The security headers every response carries (`request.rs`, `add_common_headers`).
const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
];
/// The challenge of every 401.
const CHALLENGE: &str = "Protea-HMAC-SHA256, Bearer";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// A tenant's key: the `Bearer KEYID.SECRET` credential [`Api`] signs with, and its parts.
#[derive(Clone, Debug)]
struct Key {
    auth: String,
    key_id: String,
    secret: String,
}

impl Key {
    fn new(auth: String) -> Self {
        let (key_id, secret) = auth
            .strip_prefix("Bearer ")
            .and_then(|credential| credential.split_once('.'))
            .map(|(key_id, secret)| (key_id.to_owned(), secret.to_owned()))
            .unwrap_or_else(|| panic!("not a tenant credential: {auth}"));
        Self { auth, key_id, secret }
    }

    /// The same key id with another secret: what signs "as" this key without knowing it.
    fn with_secret(&self, secret: &str) -> String {
        format!("Bearer {}.{secret}", self.key_id)
    }
}

/// A gateway with tenants and operators, and a client of it. Field order matters: the
/// gateway stops before its directory is removed.
struct Served {
    api: Api,
    keys: Vec<Key>,
    operators: Vec<Operator>,
    gateway: Gateway,
    dir: TempDir,
}

/// Creates `tenants` and `operators` (username, role) through the CLI, then starts the
/// gateway with `extra` flags and waits until it is ready.
async fn serve(tenants: &[&str], operators: &[(&str, &str)], extra: &[&str]) -> Served {
    let dir = support::data_dir();
    let path = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let keys =
        tenants.iter().map(|name| Key::new(support::create_tenant(dir.path(), name))).collect();
    let operators = operators
        .iter()
        .map(|(name, role)| support::create_operator(name, role, &["--data-dir", &path]))
        .collect();
    let gateway = Gateway::start(dir.path(), extra);
    let api = Api::http1(gateway.addr());
    api.wait_ready().await;
    Served { api, keys, operators, gateway, dir }
}

impl Served {
    /// Tenant `index`'s credential.
    fn auth(&self, index: usize) -> &str {
        &self.keys[index].auth
    }

    /// Signs operator `index` in; the `Authorization` value of the token.
    async fn token(&self, index: usize) -> String {
        self.api.operator_token(&self.operators[index]).await
    }

    /// The signer of the gateway's current token key, read from `DATA_DIR/keys.json`.
    fn token_signer(&self) -> TokenSigner {
        let path = self.dir.path().join("keys.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let document: Value = serde_json::from_str(&text).expect("keys.json is JSON");
        let kid = document["token"]["current"].as_str().expect("token.current");
        let encoded = document["token"]["keys"][kid].as_str().expect("the current token key");
        let der = data_encoding::BASE64.decode(encoded.as_bytes()).expect("base64 PKCS#8");
        TokenSigner::from_pkcs8(kid, &der).expect("an Ed25519 PKCS#8 key")
    }
}

/// Sends `method path` with `auth` (a tenant credential is signed by [`Api`]) and `body`.
async fn send(api: &Api, method: Method, path: &str, auth: Option<&str>, body: &[u8]) -> Reply {
    let headers: Vec<(&str, &str)> = auth.map(|auth| ("authorization", auth)).into_iter().collect();
    api.call(method, path, &headers, body.to_vec()).await
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialising a body")
}

/// The error code of a JSON error body (empty when there is none, or no JSON).
fn code(reply: &Reply) -> String {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str, context: &str) {
    let body = reply.json();
    assert_eq!(
        (reply.status, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{context}: {body}"
    );
}

/// Asserts a 401 exactly like `reference` (status, JSON body and challenge).
#[track_caller]
fn assert_same_401(reply: &Reply, reference: &Reply, context: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{context}: {}", reply.json());
    assert_eq!(reply.json(), reference.json(), "{context}: the 401 body differs");
    assert_eq!(reply.header("www-authenticate"), Some(CHALLENGE), "{context}: the challenge");
}

fn account(id: u128, code: u64) -> Value {
    json!({"id": uuid(id), "ledger": LEDGER, "code": code})
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u64) -> Value {
    json!({
        "id": uuid(id),
        "debit_account_id": uuid(debit),
        "credit_account_id": uuid(credit),
        "amount": amount,
        "ledger": LEDGER,
        "code": 1,
    })
}

/// Creates `value` at `path` as `auth` and expects 201 `ok`.
async fn create(api: &Api, path: &str, auth: &str, value: Value) {
    let (status, body) = api.post_json(path, auth, value).await;
    assert_eq!((status, &body["result"]), (StatusCode::CREATED, &json!("ok")), "{path}: {body}");
}

/// An account's `[debits_pending, debits_posted, credits_pending, credits_posted]`.
async fn balances(api: &Api, auth: &str, id: u128) -> [u64; 4] {
    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(id)), auth).await;
    assert_eq!(status, StatusCode::OK, "account {id}: {body}");
    ["debits_pending", "debits_posted", "credits_pending", "credits_posted"]
        .map(|field| body[field].as_u64().unwrap_or_else(|| panic!("{field}: {body}")))
}

fn nonce() -> String {
    crypto::signature::random_nonce().expect("the OS random generator")
}

/// A signed `Authorization` value with the timestamp and nonce given.
fn signed_at(credential: &str, method: &Method, target: &str, body: &[u8], at: u64) -> String {
    support::sign_at(credential, method, target, body, at, &nonce()).expect("a tenant key")
}

/// A signed `Authorization` value, now, with a fresh nonce.
fn signed(credential: &str, method: &Method, target: &str, body: &[u8]) -> String {
    signed_at(credential, method, target, body, support::unix_now())
}

/// The claims of an operator token (its middle segment), unverified.
fn token_claims(authorization: &str) -> Value {
    let token = authorization.strip_prefix("Bearer ").expect("a Bearer token");
    let claims = token.split('.').nth(1).expect("three segments");
    let json = data_encoding::BASE64URL_NOPAD.decode(claims.as_bytes()).expect("base64url");
    serde_json::from_slice(&json).expect("JSON claims")
}

/// A token with `claims` signed by `signer`, as an `Authorization` value.
fn forge(signer: &TokenSigner, claims: &Claims) -> String {
    format!("Bearer {}", signer.sign(claims).expect("signing forged claims"))
}

/// The claims of `authorization` as [`Claims`], to forge variants of.
fn claims_of(authorization: &str) -> Claims {
    let value = token_claims(authorization);
    let text = |name: &str| value[name].as_str().unwrap_or_else(|| panic!("{name}")).to_owned();
    let number = |name: &str| value[name].as_u64().unwrap_or_else(|| panic!("{name}"));
    Claims {
        sub: text("sub"),
        role: text("role"),
        sid: text("sid"),
        iat: number("iat"),
        exp: number("exp"),
        jti: text("jti"),
    }
}

fn sign_in_body(operator: &Operator, password: &str, code: &str) -> Vec<u8> {
    bytes(&json!({"username": operator.username, "password": password, "code": code}))
}

/// A six-digit code that is not `operator`'s code for any step the gateway could accept.
fn wrong_code(operator: &Operator) -> String {
    let period = operator.totp.params().period_seconds();
    let step = operator.totp.step_at(support::unix_now());
    let valid: Vec<u32> =
        (step.saturating_sub(2)..=step + 3).map(|s| operator.totp.code_at(s * period)).collect();
    let wrong = (0..).find(|code| !valid.contains(code)).expect("a wrong code");
    format!("{wrong:06}")
}

/// Reads from `stream` until the peer closes it (EOF or reset); how long that took. Panics
/// when it stays open past `bound`.
async fn wait_closed(stream: &mut TcpStream, bound: Duration, what: &str) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    closed.await.unwrap_or_else(|_| panic!("{what}: still open after {bound:?}"));
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------------------

/// One operation of `docs/openapi.yaml`.
#[derive(Clone, Debug)]
struct Operation {
    method: Method,
    template: String,
    /// Its security schemes (none: public).
    security: BTreeSet<String>,
    description: String,
    takes_body: bool,
}

impl Operation {
    fn is_tenant(&self) -> bool {
        self.security.contains("signedRequest")
    }

    fn is_operator(&self) -> bool {
        self.security.contains("operatorToken")
    }

    fn key(&self) -> (String, String) {
        (self.method.to_string(), self.template.clone())
    }

    /// The roles its description admits (`Roles: \`admin\`, \`auditor\` ...;`).
    fn documented_roles(&self) -> BTreeSet<String> {
        let (_, after) = self.description.split_once("Roles:").unwrap_or_else(|| {
            panic!("{} {}: the description names no roles", self.method, self.template)
        });
        let sentence = after.split([';', '(', '.']).next().unwrap_or_default();
        sentence.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    }

    /// A concrete path: `id` for `{id}`, `name` for `{name}`, `key_id` for `{key_id}`,
    /// and a declared purpose for `{purpose}`.
    fn path(&self, id: &str, name: &str, key_id: &str) -> String {
        self.template
            .replace("{id}", id)
            .replace("{name}", name)
            .replace("{key_id}", key_id)
            .replace("{purpose}", "direct_marketing")
    }
}

fn spec() -> serde_norway::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// Every operation of the spec, in its order.
fn operations(spec: &serde_norway::Value) -> Vec<Operation> {
    const METHODS: [&str; 8] =
        ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let paths = spec["paths"].as_mapping().expect("the spec has paths");
    let mut found = Vec::new();
    for (template, item) in paths {
        let template = template.as_str().expect("a path template");
        for (method, operation) in item.as_mapping().expect("a path item") {
            let Some(method) = method.as_str().filter(|m| METHODS.contains(m)) else { continue };
            let security = operation["security"]
                .as_sequence()
                .map(|schemes| {
                    schemes
                        .iter()
                        .filter_map(serde_norway::Value::as_mapping)
                        .flat_map(|scheme| scheme.keys().filter_map(|k| k.as_str()))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            found.push(Operation {
                method: method.to_ascii_uppercase().parse().expect("an HTTP method"),
                template: template.to_owned(),
                security,
                description: operation["description"].as_str().unwrap_or_default().to_owned(),
                takes_body: !operation["requestBody"].is_null(),
            });
        }
    }
    assert!(found.len() >= RouteId::ALL.len(), "the spec lists {} operations", found.len());
    found
}

/// The router's routes with `access`, as (method, template).
fn routes_where(access: impl Fn(Access) -> bool) -> BTreeSet<(String, String)> {
    RouteId::ALL
        .iter()
        .filter(|route| access(route.access()))
        .map(|route| {
            let (method, template) = route.template();
            (method.to_owned(), template.to_owned())
        })
        .collect()
}

/// The fields of `value` that `schema` (a spec schema, `$ref`s followed) does not
/// document, as paths like `data[0].secret`.
fn undocumented(
    spec: &serde_norway::Value,
    schema: &serde_norway::Value,
    value: &Value,
    at: &str,
) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.strip_prefix("#/components/schemas/").expect("a schema $ref");
        return undocumented(spec, &spec["components"]["schemas"][name], value, at);
    }
    let mut found = Vec::new();
    match value {
        Value::Object(fields) => {
            let Some(properties) = schema["properties"].as_mapping() else { return found };
            for (name, field) in fields {
                let path = format!("{at}.{name}");
                match properties.get(name.as_str()) {
                    Some(property) => found.extend(undocumented(spec, property, field, &path)),
                    None => found.push(path),
                }
            }
        }
        Value::Array(items) if !schema["items"].is_null() => {
            for (index, item) in items.iter().enumerate() {
                found.extend(undocumented(spec, &schema["items"], item, &format!("{at}[{index}]")));
            }
        }
        _ => {}
    }
    found
}

/// Asserts that `body` has only fields the spec's schema `name` documents.
#[track_caller]
fn assert_documented(spec: &serde_norway::Value, name: &str, body: &Value, context: &str) {
    let schema = &spec["components"]["schemas"][name];
    assert!(!schema.is_null(), "no schema {name} in the spec");
    let extra = undocumented(spec, schema, body, "");
    assert!(extra.is_empty(), "{context}: fields {name} does not document: {extra:?} in {body}");
}

// ---------------------------------------------------------------------------------------
// API1:2023 Broken Object Level Authorization
// ---------------------------------------------------------------------------------------

/// API1:2023 Broken Object Level Authorization: on every tenant route of the spec (the
/// router's tenant routes, checked equal), tenant B naming tenant A's objects gets
/// exactly what it gets for ids nobody has (same status and JSON body), its transfers
/// naming A's accounts or pending transfers fail as not found, its creates with A's ids
/// make its own objects, and nothing of A's changes.
#[tokio::test]
async fn api1_another_tenants_ids_answer_exactly_like_missing_ones_on_every_tenant_route() {
    let served = serve(&["acme", "globex"], &[], &[]).await;
    let (api, a) = (&served.api, served.auth(0));
    create(api, "/v1/accounts", a, account(1, 1)).await;
    create(api, "/v1/accounts", a, account(2, 1)).await;
    create(api, "/v1/accounts", a, account(4, 1)).await;
    create(api, "/v1/transfers", a, transfer(10, 1, 2, 100)).await;
    let mut pending = transfer(11, 1, 2, 5);
    pending["flags"] = json!(["pending"]);
    create(api, "/v1/transfers", a, pending).await;
    create(api, "/v1/accounts", served.auth(1), account(3, 1)).await;
    let subject = Subject::create(api, a, "api1@example.com").await;

    let spec = spec();
    let tenant_ops: Vec<Operation> =
        operations(&spec).into_iter().filter(Operation::is_tenant).collect();
    let documented: BTreeSet<_> = tenant_ops.iter().map(Operation::key).collect();
    assert_eq!(
        documented,
        routes_where(|access| access == Access::Tenant),
        "the spec's tenant operations are the router's tenant routes"
    );
    for op in &tenant_ops {
        match (op.method.as_str(), op.template.as_str()) {
            ("GET", "/v1/accounts/{id}") => read_like_missing(&served, op, 1, "").await,
            ("GET", "/v1/accounts/{id}/transfers") => {
                read_like_missing(&served, op, 1, "").await;
                read_like_missing(&served, op, 2, "?limit=1").await;
            }
            ("GET", "/v1/transfers/{id}") => {
                read_like_missing(&served, op, 10, "").await;
                read_like_missing(&served, op, 11, "").await;
            }
            ("POST", "/v1/transfers") => transfers_naming_theirs_fail(&served).await,
            ("POST", "/v1/accounts") => accounts_with_their_ids_are_ours(&served).await,
            ("GET", "/v1/subjects/{id}")
            | ("GET", "/v1/subjects/{id}/export")
            | ("GET", "/v1/subjects/{id}/consents")
            | ("GET", "/v1/subjects/{id}/purposes/{purpose}") => {
                read_like_missing(&served, op, subject.id, "").await;
            }
            ("DELETE", "/v1/subjects/{id}")
            | ("POST", "/v1/subjects/{id}/corrections")
            | ("POST", "/v1/subjects/{id}/consents") => {
                change_like_missing(&served, op, &subject).await;
            }
            ("GET", "/v1/subjects") => lookups_find_nothing_of_theirs(&served, &subject).await,
            ("POST", "/v1/subjects") => subjects_they_create_are_theirs(&served, &subject).await,
            (method, template) => {
                panic!("no API1 probe for the tenant route {method} {template}: add one here")
            }
        }
    }
    assert_eq!(balances(api, a, 1).await, [5, 100, 0, 0], "A's account 1 is untouched");
    assert_eq!(balances(api, a, 2).await, [0, 0, 5, 100], "A's account 2 is untouched");
}

/// `op` for A's object `theirs` answers A (200) but answers B exactly as for [`MISSING`].
async fn read_like_missing(served: &Served, op: &Operation, theirs: u128, query: &str) {
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let path = |id: u128| format!("{}{query}", op.path(&uuid(id), "", ""));
    let owner = send(api, op.method.clone(), &path(theirs), Some(a), b"").await;
    assert_eq!(owner.status, StatusCode::OK, "A reads its own {}: {}", path(theirs), owner.json());
    let other = send(api, op.method.clone(), &path(theirs), Some(b), b"").await;
    let missing = send(api, op.method.clone(), &path(MISSING), Some(b), b"").await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "B reads A's {}: {}",
        path(theirs),
        other.json()
    );
    assert_eq!(
        (other.status, other.json()),
        (missing.status, missing.json()),
        "B reading A's {} must look exactly like reading an id nobody has",
        op.template
    );
}

/// A subject of tenant A, with an indexed email.
struct Subject {
    id: u128,
    email: &'static str,
}

impl Subject {
    async fn create(api: &Api, auth: &str, email: &'static str) -> Self {
        let fields = json!({"fields": {"full_name": "Api One", "email": email}});
        let (status, body) = api.post_json("/v1/subjects", auth, fields).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Self { id: support::id_of(&body["id"]), email }
    }
}

/// What B sends to change A's subject on `op`, and to change a subject nobody has.
fn subject_change(op: &Operation) -> Value {
    match op.template.as_str() {
        "/v1/subjects/{id}/corrections" => json!({"set": {"city": "Durban"}}),
        "/v1/subjects/{id}/consents" => json!({
            "purpose": "direct_marketing", "granted": true, "channel": "web", "evidence": "f-1"
        }),
        _ => Value::Null,
    }
}

/// B changing A's subject (erase, correct, consent) is answered exactly as for an id
/// nobody has, and A's subject reads back unchanged afterwards.
async fn change_like_missing(served: &Served, op: &Operation, subject: &Subject) {
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let change = subject_change(op);
    let body = if change.is_null() { Vec::new() } else { bytes(&change) };
    let path = |id: u128| op.path(&uuid(id), "", "");
    let theirs = send(api, op.method.clone(), &path(subject.id), Some(b), &body).await;
    let missing = send(api, op.method.clone(), &path(MISSING), Some(b), &body).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "B on A's {}: {}", op.template, theirs.json());
    assert_eq!(
        (theirs.status, theirs.json()),
        (missing.status, missing.json()),
        "B changing A's subject on {} must look exactly like an id nobody has",
        op.template
    );
    let (status, read) = api.get_json(&format!("/v1/subjects/{}", uuid(subject.id)), a).await;
    assert_eq!(status, StatusCode::OK, "A's subject is still there: {read}");
    assert_eq!(read["fields"]["email"], subject.email, "A's subject is unchanged: {read}");
    assert!(read["fields"]["city"].is_null(), "B's correction changed nothing: {read}");
    let (_, consents) =
        api.get_json(&format!("/v1/subjects/{}/consents", uuid(subject.id)), a).await;
    assert_eq!(consents["data"], json!([]), "B's consent changed nothing: {consents}");
}

/// B looking up A's subject's email never finds A's subject.
async fn lookups_find_nothing_of_theirs(served: &Served, subject: &Subject) {
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let path = |email: &str| format!("/v1/subjects?email={}", email.replace('@', "%40"));
    let (_, mine) = api.get_json(&path(subject.email), a).await;
    assert_eq!(mine["data"], json!([uuid(subject.id)]), "A finds its own: {mine}");
    // B may hold a subject of its own with the same email (the create probe makes one):
    // what matters is that A's never shows.
    let (status, theirs) = api.get_json(&path(subject.email), b).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    let found = theirs["data"].as_array().cloned().unwrap_or_default();
    assert!(!found.contains(&json!(uuid(subject.id))), "B finds A's subject: {theirs}");
    let (_, nobody) = api.get_json(&path("nobody-api1@example.com"), b).await;
    assert_eq!(nobody["data"], json!([]), "{nobody}");
}

/// B creating a subject with A's subject's email makes B's own (ids are the gateway's),
/// and B's look-up finds only it.
async fn subjects_they_create_are_theirs(served: &Served, subject: &Subject) {
    let (api, b) = (&served.api, served.auth(1));
    let own = Subject::create(api, b, subject.email).await;
    assert_ne!(own.id, subject.id);
    let path = format!("/v1/subjects?email={}", subject.email.replace('@', "%40"));
    let (_, found) = api.get_json(&path, b).await;
    assert_eq!(found["data"], json!([uuid(own.id)]), "B finds only its own: {found}");
}

/// The body of a single create's answer without its `id` (which differs by request).
fn without_id(mut body: Value) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields.remove("id");
    }
    body
}

/// B's transfers naming A's accounts or pending transfer fail exactly like ones naming
/// ids nobody has.
async fn transfers_naming_theirs_fail(served: &Served) {
    let (api, b) = (&served.api, served.auth(1));
    let mut post_theirs = transfer(102, 0, 0, 5);
    post_theirs["flags"] = json!(["post_pending"]);
    post_theirs["pending_id"] = json!(uuid(11));
    let mut post_missing = post_theirs.clone();
    post_missing["id"] = json!(uuid(103));
    post_missing["pending_id"] = json!(uuid(MISSING));
    let cases = [
        ("debit", transfer(100, 1, 3, 1), transfer(101, MISSING, 3, 1), "debit_account_not_found"),
        (
            "credit",
            transfer(104, 3, 2, 1),
            transfer(105, 3, MISSING, 1),
            "credit_account_not_found",
        ),
        ("pending", post_theirs, post_missing, "pending_transfer_not_found"),
    ];
    for (what, theirs, missing, expected) in cases {
        let (status, body) = api.post_json("/v1/transfers", b, theirs).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (StatusCode::NOT_FOUND, Some(expected)),
            "{what}: {body}"
        );
        let (missing_status, missing_body) = api.post_json("/v1/transfers", b, missing).await;
        assert_eq!(
            (status, without_id(body)),
            (missing_status, without_id(missing_body)),
            "B naming A's {what} must look exactly like naming an id nobody has"
        );
    }
    assert_eq!(balances(api, b, 3).await, [0, 0, 0, 0], "B's account moved nothing");
}

/// B creating an account with the id of A's account 4 makes B's own account, answered
/// like any new id.
async fn accounts_with_their_ids_are_ours(served: &Served) {
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let (status, theirs) = api.post_json("/v1/accounts", b, account(4, 7)).await;
    let (fresh_status, fresh) = api.post_json("/v1/accounts", b, account(MISSING - 1, 7)).await;
    assert_eq!(
        (status, &theirs["result"]),
        (fresh_status, &fresh["result"]),
        "an id A uses must create like a fresh one for B (no `exists`): {theirs}"
    );
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (_, mine) = api.get_json(&format!("/v1/accounts/{}", uuid(4)), b).await;
    assert_eq!(mine["code"], 7, "B reads its own account 4: {mine}");
    let (_, original) = api.get_json(&format!("/v1/accounts/{}", uuid(4)), a).await;
    assert_eq!(original["code"], 1, "A's account 4 is still A's: {original}");
}

/// API1:2023 Broken Object Level Authorization (admin API): a key is addressed only
/// under its own tenant: revoking tenant A's key through tenant B's name is 404
/// `key_not_found` and leaves it working, and B's key listing does not show it.
#[tokio::test]
async fn api1_admin_routes_address_a_key_only_under_its_own_tenant() {
    let served = serve(&["acme", "globex"], &[("ada", "admin")], &[]).await;
    let (api, acme) = (&served.api, &served.keys[0]);
    let admin = served.token(0).await;
    let through_globex = format!("/v1/admin/tenants/globex/keys/{}", acme.key_id);
    let reply = send(api, Method::DELETE, &through_globex, Some(&admin), b"").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "key_not_found", "acme's key through globex");
    let listing = send(api, Method::GET, "/v1/admin/tenants/globex/keys", Some(&admin), b"").await;
    assert_eq!(listing.status, StatusCode::OK);
    assert!(!body_text(&listing).contains(&acme.key_id), "globex lists acme's key");
    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(MISSING)), &acme.auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "acme's key still signs: {body}");
    assert_eq!(body["error"]["code"], "account_not_found", "{body}");
}

// ---------------------------------------------------------------------------------------
// API2:2023 Broken Authentication
// ---------------------------------------------------------------------------------------

/// One tenant request sent as is (its `Authorization` value already made).
#[derive(Clone, Debug)]
struct Raw {
    method: Method,
    target: String,
    body: Vec<u8>,
    authorization: String,
}

impl Raw {
    /// A request signed by `credential` now, with a fresh nonce.
    fn signed(credential: &str, method: Method, target: &str, body: Vec<u8>) -> Self {
        let authorization = signed(credential, &method, target, &body);
        Self { method, target: target.to_owned(), body, authorization }
    }

    /// The same request with its `Authorization` value replaced.
    fn with_authorization(&self, authorization: String) -> Self {
        Self { authorization, ..self.clone() }
    }

    /// The same `Authorization` value on another method, target or body.
    fn resent_as(&self, method: Method, target: &str, body: Vec<u8>) -> Self {
        Self { method, target: target.to_owned(), body, authorization: self.authorization.clone() }
    }

    async fn send(&self, raw_api: &Api) -> Reply {
        let headers = [("authorization", self.authorization.as_str())];
        raw_api.call(self.method.clone(), &self.target, &headers, self.body.clone()).await
    }
}

/// The `Authorization` value of `raw` with `field=old` replaced by `field=new`.
fn swap_field(raw: &Raw, field: &str, new: &str) -> String {
    let value = &raw.authorization;
    let start = value.find(&format!("{field}=")).expect("the field") + field.len() + 1;
    let end = value[start..].find(',').map_or(value.len(), |end| start + end);
    format!("{}{new}{}", &value[..start], &value[end..])
}

/// API2:2023 Broken Authentication (signed tenant requests): a missing, stale,
/// future, forged (another tenant's or a random secret, an unknown key), tampered (body,
/// path, query, method, timestamp, key id or nonce changed after signing), replayed,
/// malformed or revoked credential, and a correct Bearer key where Bearer keys are off,
/// all answer the same 401 with the same body and `WWW-Authenticate`; the untampered
/// original of each tampered request is then accepted, so each 401 is the tamper's.
#[tokio::test]
async fn api2_every_broken_tenant_signature_answers_the_same_401() {
    let served = serve(&["acme", "globex"], &[("ada", "admin")], &[]).await;
    let (api, a, b) = (&served.api, &served.keys[0], &served.keys[1]);
    let raw_api = api.clone().bearer();
    create(api, "/v1/accounts", &a.auth, account(1, 1)).await;
    let read = format!("/v1/accounts/{}", uuid(1));
    let reference = send(&raw_api, Method::GET, &read, None, b"").await;
    assert_error(&reference, StatusCode::UNAUTHORIZED, "invalid_credentials", "no credentials");
    assert_same_401(&reference, &reference, "no credentials");

    let now = support::unix_now();
    let at = |when: u64| Raw {
        method: Method::GET,
        target: read.clone(),
        body: Vec::new(),
        authorization: signed_at(&a.auth, &Method::GET, &read, b"", when),
    };
    for (case, raw) in [("250 s old", at(now - 250)), ("250 s ahead", at(now + 250))] {
        let reply = raw.send(&raw_api).await;
        assert_eq!(reply.status, StatusCode::OK, "within the window, {case}: {}", reply.json());
    }
    let random_secret = "5e".repeat(32);
    let forged = [
        ("expired: signed 301 s ago", at(now - 301)),
        ("expired: signed an hour ago", at(now - 3600)),
        ("from the future: 330 s ahead", at(now + 330)),
        (
            "another tenant's secret",
            Raw::signed(&a.with_secret(&b.secret), Method::GET, &read, vec![]),
        ),
        (
            "a random secret",
            Raw::signed(&a.with_secret(&random_secret), Method::GET, &read, vec![]),
        ),
        (
            "an unknown key id",
            Raw::signed(
                &format!("Bearer pk_0123456789abcdef.{}", a.secret),
                Method::GET,
                &read,
                vec![],
            ),
        ),
    ];
    for (case, raw) in &forged {
        assert_same_401(&raw.send(&raw_api).await, &reference, case);
    }

    for (case, tampered, original) in tampered_requests(a, b) {
        assert_same_401(&tampered.send(&raw_api).await, &reference, case);
        let reply = original.send(&raw_api).await;
        assert!(reply.status.is_success(), "{case}: the untampered original: {}", reply.json());
    }
    let (status, body) = api.get_json(&format!("/v1/accounts/{}", uuid(21)), &a.auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the tampered body created nothing: {body}");

    replays_are_refused(&served, &reference).await;
    // Spaces around fields are allowed, but the whole value is at most 320 bytes.
    for (length, expected) in [(320, StatusCode::OK), (321, StatusCode::UNAUTHORIZED)] {
        let value = padded_to(&signed(&a.auth, &Method::GET, &read, b""), length);
        let reply = send(&raw_api, Method::GET, &read, Some(&value), b"").await;
        assert_eq!(reply.status, expected, "a {length}-byte signed header: {}", reply.json());
    }
    for (case, value) in malformed_headers(a, &read) {
        let reply = send(&raw_api, Method::GET, &read, Some(&value), b"").await;
        assert_same_401(&reply, &reference, &format!("malformed: {case}"));
    }

    // A revoked key stops at once; the key that replaced it works.
    let admin = served.token(0).await;
    let path = "/v1/admin/tenants/acme/keys";
    let created = send(api, Method::POST, path, Some(&admin), b"").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json());
    let created = created.json();
    let fresh = format!(
        "Bearer {}.{}",
        created["key_id"].as_str().expect("key_id"),
        created["secret"].as_str().expect("secret")
    );
    let revoke = format!("{path}/{}", a.key_id);
    let revoked = send(api, Method::DELETE, &revoke, Some(&admin), b"").await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "revoking {}", a.key_id);
    let reply = send(api, Method::GET, &read, Some(&a.auth), b"").await;
    assert_same_401(&reply, &reference, "a revoked key");
    let (status, body) = api.get_json(&read, &fresh).await;
    assert_eq!(status, StatusCode::OK, "the new key reads the account: {body}");
}

/// (case, tampered request, its untampered original): each original is signed by `a` and
/// valid; each tampered one is the original changed after signing.
fn tampered_requests(a: &Key, b: &Key) -> Vec<(&'static str, Raw, Raw)> {
    let read = |id: u128| format!("/v1/accounts/{}", uuid(id));
    let history = format!("{}/transfers", read(1));
    let create = Raw::signed(&a.auth, Method::POST, "/v1/accounts", bytes(&account(20, 1)));
    let get = Raw::signed(&a.auth, Method::GET, &read(1), vec![]);
    let get_other = Raw::signed(&a.auth, Method::GET, &read(2), vec![]);
    let paged = Raw::signed(&a.auth, Method::GET, &format!("{history}?limit=1"), vec![]);
    let unpaged = Raw::signed(&a.auth, Method::GET, &history, vec![]);
    let as_get = Raw::signed(&a.auth, Method::GET, "/v1/accounts", bytes(&account(22, 1)));
    let stamped = Raw::signed(&a.auth, Method::GET, &read(1), vec![]);
    let timestamp = header_number(&stamped.authorization, "Timestamp");
    let nonced = Raw::signed(&a.auth, Method::GET, &read(1), vec![]);
    let keyed = Raw::signed(&a.auth, Method::GET, &read(1), vec![]);
    let post_again = Raw::signed(&a.auth, Method::POST, "/v1/accounts", bytes(&account(22, 1)));
    vec![
        (
            "body changed",
            create.resent_as(Method::POST, "/v1/accounts", bytes(&account(21, 1))),
            create,
        ),
        ("path changed", get_other.resent_as(Method::GET, &read(1), vec![]), get),
        (
            "query changed",
            paged.resent_as(Method::GET, &format!("{history}?limit=2"), vec![]),
            paged,
        ),
        (
            "query added",
            unpaged.resent_as(Method::GET, &format!("{history}?limit=1"), vec![]),
            unpaged,
        ),
        (
            "method changed",
            as_get.resent_as(Method::POST, "/v1/accounts", as_get.body.clone()),
            post_again,
        ),
        (
            "timestamp changed",
            stamped.with_authorization(swap_field(
                &stamped,
                "Timestamp",
                &(timestamp - 1).to_string(),
            )),
            stamped,
        ),
        (
            "nonce changed",
            nonced.with_authorization(swap_field(&nonced, "Nonce", &nonce())),
            nonced,
        ),
        (
            "key id changed to another tenant's",
            keyed.with_authorization(swap_field(&keyed, "KeyId", &b.key_id)),
            keyed,
        ),
    ]
}

/// A numeric field of a signed `Authorization` value.
fn header_number(authorization: &str, field: &str) -> u64 {
    let start = authorization.find(&format!("{field}=")).expect("the field") + field.len() + 1;
    let digits: String = authorization[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a number")
}

/// The exact same signed request twice: the second is 401, and it applied once; a nonce
/// reused under a new signature is 401 too.
async fn replays_are_refused(served: &Served, reference: &Reply) {
    let (api, a) = (&served.api, &served.keys[0]);
    let raw_api = api.clone().bearer();
    let first = Raw::signed(&a.auth, Method::POST, "/v1/accounts", bytes(&account(30, 1)));
    let reply = first.send(&raw_api).await;
    assert_eq!(reply.status, StatusCode::CREATED, "the original: {}", reply.json());
    assert_same_401(&first.send(&raw_api).await, reference, "the same signed create again");
    let read = Raw::signed(&a.auth, Method::GET, &format!("/v1/accounts/{}", uuid(30)), vec![]);
    assert_eq!(read.send(&raw_api).await.status, StatusCode::OK);
    assert_same_401(&read.send(&raw_api).await, reference, "the same signed read again");
    let used = header_nonce(&first.authorization);
    let body = bytes(&account(31, 1));
    let now = support::unix_now();
    let reused = support::sign_at(&a.auth, &Method::POST, "/v1/accounts", &body, now, &used)
        .expect("a tenant key");
    let reply = send(&raw_api, Method::POST, "/v1/accounts", Some(&reused), &body).await;
    assert_same_401(&reply, reference, "a used nonce under a new signature");
    let (status, _) = api.get_json(&format!("/v1/accounts/{}", uuid(31)), &a.auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the refused create applied nothing");
}

/// The nonce of a signed `Authorization` value.
fn header_nonce(authorization: &str) -> String {
    let start = authorization.find("Nonce=").expect("a nonce") + "Nonce=".len();
    authorization[start..].split(',').next().unwrap_or_default().to_owned()
}

/// A signed `Authorization` value padded to `length` bytes with spaces before a field.
fn padded_to(value: &str, length: usize) -> String {
    let spaces = " ".repeat(length.checked_sub(value.len()).expect("a short value"));
    let padded = value.replacen(", Timestamp", &format!(",{spaces} Timestamp"), 1);
    assert_eq!(padded.len(), length);
    padded
}

/// (case, `Authorization` value) pairs that break the header's format.
fn malformed_headers(a: &Key, read: &str) -> Vec<(&'static str, String)> {
    let valid = signed(&a.auth, &Method::GET, read, b"");
    let fields = valid.strip_prefix("Protea-HMAC-SHA256 ").expect("the scheme").to_owned();
    let signature = fields.rsplit("Signature=").next().expect("a signature").to_owned();
    let without_signature = fields.split(", Signature=").next().expect("fields").to_owned();
    vec![
        ("empty", String::new()),
        ("scheme only", "Protea-HMAC-SHA256".to_owned()),
        ("scheme and a space", "Protea-HMAC-SHA256 ".to_owned()),
        ("no signature field", format!("Protea-HMAC-SHA256 {without_signature}")),
        ("a duplicated field", format!("{valid}, Nonce={}", nonce())),
        ("an unknown field", format!("{valid}, Region=za")),
        ("lower-case scheme", format!("protea-hmac-sha256 {fields}")),
        ("no space after the scheme", format!("Protea-HMAC-SHA256{fields}")),
        ("upper-case signature", valid.replace(&signature, &signature.to_ascii_uppercase())),
        ("short signature", valid.replace(&signature, &signature[..62])),
        ("timestamp with a leading zero", valid.replace("Timestamp=", "Timestamp=0")),
        ("timestamp with a sign", valid.replace("Timestamp=", "Timestamp=+")),
        ("nonce of 15 characters", valid.replace(&header_nonce(&valid), "abcdefghijklmno")),
        ("nonce of 65 characters", valid.replace(&header_nonce(&valid), &"n".repeat(65))),
        ("not ASCII", valid.replace("KeyId=", "KeyId=\u{e9}")),
        ("Basic", "Basic YWNtZTpzZWNyZXQ=".to_owned()),
        ("Bearer garbage", "Bearer garbage".to_owned()),
        ("a correct Bearer key, bearer keys off", a.auth.clone()),
        ("the key and secret without a scheme", a.auth.trim_start_matches("Bearer ").to_owned()),
    ]
}

/// API2:2023 Broken Authentication (operator tokens): a missing, garbage or
/// `alg: none` token, one signed by an unknown key, an expired one and one naming a
/// session that does not exist or is another operator's (both signed with the
/// gateway's real token key), one whose payload was changed after signing, and tokens
/// after sign-out, after an admin revoked the operator's sessions and after the operator
/// was disabled, all answer the same 401.
#[tokio::test]
async fn api2_every_token_that_is_not_live_answers_the_same_401() {
    let operators =
        [("ada", "admin"), ("aud", "auditor"), ("otto", "operator"), ("dis", "operator")];
    let served = serve(&[], &operators, &[]).await;
    let api = &served.api;
    let list = "/v1/admin/operators";
    let reference = send(api, Method::GET, list, None, b"").await;
    assert_error(&reference, StatusCode::UNAUTHORIZED, "invalid_credentials", "no token");
    let admin = served.token(0).await;
    let auditor = served.token(1).await;
    assert_eq!(send(api, Method::GET, list, Some(&auditor), b"").await.status, StatusCode::OK);

    let signer = served.token_signer();
    let now = support::unix_now();
    let live = claims_of(&auditor);
    let stranger_pkcs8 = TokenSigner::generate_pkcs8().expect("a key");
    let stranger = TokenSigner::from_pkcs8(signer.kid(), &stranger_pkcs8).expect("a signer");
    let unknown_kid = TokenSigner::from_pkcs8("tok-unknown", &stranger_pkcs8).expect("a signer");
    let segments: Vec<&str> = auditor.trim_start_matches("Bearer ").split('.').collect();
    let mut as_admin = token_claims(&auditor);
    as_admin["role"] = json!("admin");
    let as_admin = data_encoding::BASE64URL_NOPAD.encode(&bytes(&as_admin));
    let none_header = data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let random_sid = crypto::token::random_token_id().expect("an id");
    let cases = [
        ("empty bearer", "Bearer ".to_owned()),
        ("garbage", "Bearer not.a.token".to_owned()),
        ("the token without its scheme", auditor.trim_start_matches("Bearer ").to_owned()),
        ("alg none", format!("Bearer {none_header}.{}.", segments[1])),
        ("signature stripped", format!("Bearer {}.{}.", segments[0], segments[1])),
        (
            "payload changed to role admin",
            format!("Bearer {}.{as_admin}.{}", segments[0], segments[2]),
        ),
        ("signed by an unknown key under the real key id", forge(&stranger, &live)),
        ("signed under an unknown key id", forge(&unknown_kid, &live)),
        (
            "expired, real key",
            forge(&signer, &Claims { iat: now - 700, exp: now - 100, ..live.clone() }),
        ),
        (
            "a session that does not exist, real key",
            forge(&signer, &Claims { sid: random_sid, ..live.clone() }),
        ),
        (
            "another operator's session, real key",
            forge(&signer, &Claims { sub: served.operators[0].id.to_string(), ..live.clone() }),
        ),
        ("over 4096 bytes", format!("{auditor}{}", "A".repeat(4096))),
    ];
    for (case, token) in &cases {
        let reply = send(api, Method::GET, list, Some(token), b"").await;
        assert_same_401(&reply, &reference, case);
    }
    let reply = send(api, Method::GET, list, Some(&auditor), b"").await;
    assert_eq!(reply.status, StatusCode::OK, "the real token still works: {}", reply.json());

    // Sign-out ends the session for this token and every token refreshed from it.
    let refreshed = send(api, Method::POST, "/v1/operator/token", Some(&auditor), b"").await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.json());
    let refreshed = format!("Bearer {}", refreshed.json()["token"].as_str().expect("token"));
    let out = send(api, Method::POST, "/v1/operator/sign-out", Some(&auditor), b"").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for (case, token) in [("after sign-out", &auditor), ("refreshed, after sign-out", &refreshed)] {
        assert_same_401(&send(api, Method::GET, list, Some(token), b"").await, &reference, case);
        let refresh = send(api, Method::POST, "/v1/operator/token", Some(token), b"").await;
        assert_same_401(&refresh, &reference, &format!("{case}: refresh"));
    }

    // An admin revoking an operator's sessions ends every one of them.
    let otto = &served.operators[2];
    let first = served.token(2).await;
    let second = served.token(2).await;
    let sessions = format!("/v1/admin/operators/{}/sessions", otto.id);
    let revoked = send(api, Method::DELETE, &sessions, Some(&admin), b"").await;
    assert_eq!((revoked.status, &revoked.json()["revoked"]), (StatusCode::OK, &json!(2)));
    for (case, token) in [("first session, revoked", &first), ("second session, revoked", &second)]
    {
        let reply = send(api, Method::GET, "/v1/admin/tenants", Some(token), b"").await;
        assert_same_401(&reply, &reference, case);
    }

    // Disabling an operator ends their sessions and their sign-ins.
    let dis = &served.operators[3];
    let token = served.token(3).await;
    let disable = format!("/v1/admin/operators/{}/disable", dis.id);
    let reply = send(api, Method::POST, &disable, Some(&admin), b"").await;
    assert_eq!((reply.status, &reply.json()["disabled"]), (StatusCode::OK, &json!(true)));
    let reply = send(api, Method::GET, "/v1/admin/tenants", Some(&token), b"").await;
    assert_same_401(&reply, &reference, "a disabled operator's token");
    let (status, body) = api.sign_in(dis).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a disabled operator signs in: {body}");
}

/// API2:2023 Broken Authentication (sign-in lock-out): ten wrong passwords in a row, or
/// ten wrong codes with the right password, lock the operator (after nine, not yet); a
/// locked operator's right password and a fresh code then fail with the same 401; an
/// admin's unlock restores sign-in.
#[tokio::test]
async fn api2_ten_failed_sign_ins_lock_an_operator_until_an_admin_unlocks() {
    let operators = [("ada", "admin"), ("vic", "operator"), ("val", "auditor")];
    let served = serve(&[], &operators, &["--sign-in-per-minute", "100"]).await;
    let api = &served.api;
    let admin = served.token(0).await;
    let state = |id: u64| {
        let admin = admin.clone();
        async move {
            let reply = send(api, Method::GET, "/v1/admin/operators", Some(&admin), b"").await;
            let list = reply.json();
            let found = list["data"]
                .as_array()
                .and_then(|all| all.iter().find(|op| op["id"] == id).cloned());
            let found = found.unwrap_or_else(|| panic!("operator {id} not listed: {list}"));
            (
                found["locked"].as_bool().expect("locked"),
                found["failed_attempts"].as_u64().expect("failed_attempts"),
            )
        }
    };
    let sign_in = "/v1/operator/sign-in";
    for (index, how) in [(1, "wrong passwords"), (2, "wrong codes")] {
        let operator = &served.operators[index];
        let attempt = || match how {
            // The password is checked first: the code is never looked at.
            "wrong passwords" => sign_in_body(operator, "not the right password", "000000"),
            _ => sign_in_body(operator, &operator.password, &wrong_code(operator)),
        };
        let mut reference = None;
        for failure in 1..=10 {
            let reply = send(api, Method::POST, sign_in, None, &attempt()).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_credentials", how);
            let reference = reference.get_or_insert(reply.json());
            assert_eq!(&reply.json(), reference, "{how}: attempt {failure}");
            if failure == 9 {
                assert_eq!(
                    state(operator.id).await,
                    (false, 9),
                    "{how}: nine failures lock nothing"
                );
            }
        }
        assert!(state(operator.id).await.0, "{how}: the tenth failure locks {}", operator.username);
        let right = sign_in_body(operator, &operator.password, &operator.fresh_code().await);
        let reply = send(api, Method::POST, sign_in, None, &right).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{how}: locked, the right password and a fresh code"
        );
        assert_eq!(Some(reply.json()), reference, "{how}: the same 401");

        let unlock = format!("/v1/admin/operators/{}/unlock", operator.id);
        let reply = send(api, Method::POST, &unlock, Some(&admin), b"").await;
        assert_eq!(
            (reply.status, &reply.json()["locked"]),
            (StatusCode::OK, &json!(false)),
            "{how}"
        );
        let (status, body) = api.sign_in(operator).await;
        assert_eq!(status, StatusCode::OK, "{how}: unlocked, the operator signs in: {body}");
        assert_eq!(state(operator.id).await, (false, 0), "{how}: a success clears the count");
    }
}

/// API2:2023 Broken Authentication (sign-in rate limit): with `--sign-in-per-minute 3`,
/// the fourth attempt from one address is 429 with `Retry-After` even with the right
/// credentials, while another address still signs in.
#[tokio::test]
async fn api2_sign_in_attempts_are_rate_limited_per_client_address() {
    let served = serve(&[], &[("ada", "admin")], &["--sign-in-per-minute", "3"]).await;
    let (api, ada) = (&served.api, &served.operators[0]);
    for attempt in 1..=3 {
        let reply = send(api, Method::POST, "/v1/operator/sign-in", None, b"{}").await;
        assert_error(
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &format!("attempt {attempt}"),
        );
    }
    let right = bytes(&ada.sign_in_body().await);
    let reply = send(api, Method::POST, "/v1/operator/sign-in", None, &right).await;
    assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "the fourth attempt");
    let retry_after: u64 =
        reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");

    // From 127.0.0.2 (loopback too), the limit is another address's.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind("127.0.0.2:0".parse().expect("an address")).expect("binding 127.0.0.2");
    let stream = socket.connect(served.gateway.addr()).await.expect("connecting from 127.0.0.2");
    let request = Request::post("/v1/operator/sign-in")
        .header("host", served.gateway.addr().to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes(&ada.sign_in_body().await))))
        .expect("a request");
    let reply = support::exchange(stream, Version::HTTP_11, request).await.expect("an answer");
    assert_eq!(reply.status, StatusCode::OK, "another address signs in: {}", reply.json());
}

/// API2:2023 Broken Authentication (lock-out under load; also API4): a sign-in that finds
/// every password-hashing slot busy must answer 503 `overloaded` (the spec's `Unavailable`
/// response names this case) and must not count towards the operator's lock-out, so that
/// load from anyone cannot lock an operator out. Other clients keep the slots busy with
/// sign-ins of unknown names while the operator signs in with the right password and
/// code, until one of the operator's own attempts meets full slots (503), which the
/// gateway also counts in `operator_sign_ins_total{outcome="busy"}`.
#[tokio::test]
async fn api2_a_sign_in_refused_for_capacity_is_503_and_never_counts_towards_lock_out() {
    let flags = ["--sign-in-per-minute", "10000"];
    let served = serve(&[], &[("ada", "admin"), ("vic", "operator")], &flags).await;
    let (api, vic) = (&served.api, &served.operators[1]);
    let admin = served.token(0).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..8)
        .map(|n| {
            let (api, stop) = (api.clone(), stop.clone());
            let name = format!("nobody{n}");
            let body = json!({"username": name, "password": "wrong password!", "code": "000000"});
            let body = bytes(&body);
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = api.send(Method::POST, "/v1/operator/sign-in", &[], body.clone()).await;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut body = bytes(&vic.sign_in_body().await);
    let mut answers = Vec::new();
    loop {
        let reply = send(api, Method::POST, "/v1/operator/sign-in", None, &body).await;
        answers.push((reply.status, code(&reply)));
        if reply.status == StatusCode::OK {
            body = bytes(&vic.sign_in_body().await);
        }
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(Instant::now() < deadline, "30 s of sign-ins never met busy slots: {answers:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in flood {
        task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    let list = send(api, Method::GET, "/v1/admin/operators", Some(&admin), b"").await.json();
    let listed =
        list["data"].as_array().and_then(|all| all.iter().find(|op| op["id"] == vic.id).cloned());
    let failed = listed.map_or(Value::Null, |op| op["failed_attempts"].clone());
    assert!(busy_sign_ins(api).await > 0, "the busy refusal is counted");
    let refused_as_busy = answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
        .all(|(status, code)| *status == StatusCode::SERVICE_UNAVAILABLE && code == "overloaded");
    assert!(
        refused_as_busy && failed == json!(0),
        "the right password and code, refused while every password slot was busy, must be \
         503 overloaded and no failed attempt; answers {answers:?}, failed_attempts {failed}"
    );
}

/// The gateway's count of sign-ins refused because every password slot was busy.
async fn busy_sign_ins(api: &Api) -> u64 {
    let metrics = send(api, Method::GET, "/metrics", None, b"").await;
    body_text(&metrics)
        .lines()
        .find_map(|line| line.strip_prefix("protea_operator_sign_ins_total{outcome=\"busy\"} "))
        .map_or(0, |count| count.trim().parse().unwrap_or_else(|_| panic!("a count: {count}")))
}

// ---------------------------------------------------------------------------------------
// API3:2023 Broken Object Property Level Authorization
// ---------------------------------------------------------------------------------------

/// API3:2023 Broken Object Property Level Authorization (writes): fields a client may
/// not set (balances, tenant, timestamps on ledger bodies; ids, lock state or TOTP
/// secrets on admin bodies; a role at sign-in) are refused with 400, and nothing is
/// created.
#[tokio::test]
async fn api3_fields_a_client_may_not_set_are_refused() {
    let served = serve(&["acme"], &[("ada", "admin")], &[]).await;
    let (api, a) = (&served.api, served.auth(0));
    let with = |mut body: Value, field: &str, value: Value| {
        body[field] = value;
        body
    };
    let ledger = [
        (
            "/v1/accounts",
            with(account(1, 1), "credits_posted", json!(1_000_000)),
            "credits_posted",
            1,
        ),
        ("/v1/accounts", with(account(1, 1), "tenant", json!("globex")), "tenant", 1),
        ("/v1/accounts", with(account(1, 1), "timestamp", json!(1)), "timestamp", 1),
        ("/v1/transfers", with(transfer(5, 1, 2, 1), "tenant_id", json!(2)), "tenant_id", 5),
        ("/v1/transfers", with(transfer(5, 1, 2, 1), "timestamp", json!(1)), "timestamp", 5),
    ];
    for (path, body, field, id) in ledger {
        let (status, reply) = api.post_json(path, a, body).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str(), reply["error"]["param"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unknown_field"), Some(field)),
            "{path} with {field}: {reply}"
        );
        let read = if path == "/v1/accounts" { "accounts" } else { "transfers" };
        let (status, _) = api.get_json(&format!("/v1/{read}/{}", uuid(id)), a).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} with {field} created nothing");
    }

    let admin = served.token(0).await;
    let operator =
        json!({"username": "eve.x", "role": "auditor", "password": support::OPERATOR_PASSWORD});
    let admin_bodies = [
        ("/v1/admin/tenants", json!({"name": "initech", "id": 1})),
        ("/v1/admin/tenants", json!({"name": "initech", "secret": "00".repeat(32)})),
        ("/v1/admin/operators", with(operator.clone(), "locked", json!(false))),
        ("/v1/admin/operators", with(operator.clone(), "totp_secret", json!("JBSWY3DPEHPK3PXP"))),
        ("/v1/admin/operators", with(operator.clone(), "failed_attempts", json!(0))),
        ("/v1/admin/operators", with(operator.clone(), "id", json!(1))),
    ];
    for (path, body) in admin_bodies {
        let reply = send(api, Method::POST, path, Some(&admin), &bytes(&body)).await;
        assert_error(
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &format!("{path} {body}"),
        );
        assert_eq!(reply.json()["error"]["param"], "body", "{path} {body}");
    }
    let tenants = send(api, Method::GET, "/v1/admin/tenants", Some(&admin), b"").await.json();
    assert!(!tenants.to_string().contains("initech"), "no tenant was created: {tenants}");
    let operators = send(api, Method::GET, "/v1/admin/operators", Some(&admin), b"").await.json();
    assert!(!operators.to_string().contains("eve.x"), "no operator was created: {operators}");

    let ada = &served.operators[0];
    let mut body = ada.sign_in_body().await;
    body["role"] = json!("admin");
    let reply = send(api, Method::POST, "/v1/operator/sign-in", None, &bytes(&body)).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_parameter", "sign-in with a role");
}

/// API3:2023 Broken Object Property Level Authorization (reads): every response holds
/// only the fields its schema in the spec documents; a tenant's secret appears in the
/// one response that creates it (tenant create, key create) and an operator's TOTP
/// secret in the one that creates the operator, never in a listing, and no listing or
/// `/metrics` holds a password hash, a secret's digest, a TOTP secret or a credential.
#[tokio::test]
async fn api3_responses_hold_documented_fields_and_show_each_secret_once() {
    let served = serve(&["acme"], &[("ada", "admin")], &[]).await;
    let (api, a) = (&served.api, served.auth(0));
    let spec = spec();
    let ledger = [
        ("/v1/accounts", account(1, 1), "CreateResult"),
        ("/v1/accounts", json!([account(2, 1)]), "CreateResults"),
        ("/v1/transfers", transfer(10, 1, 2, 7), "CreateResult"),
    ];
    for (path, body, schema) in ledger {
        let (status, reply) = api.post_json(path, a, body).await;
        assert!(status.is_success(), "{path}: {reply}");
        assert_documented(&spec, schema, &reply, path);
    }
    let reads = [
        (format!("/v1/accounts/{}", uuid(1)), "Account"),
        (format!("/v1/transfers/{}", uuid(10)), "Transfer"),
        (format!("/v1/accounts/{}/transfers", uuid(1)), "TransferPage"),
        (format!("/v1/accounts/{}", uuid(MISSING)), "Error"),
    ];
    for (path, schema) in reads {
        let (_, body) = api.get_json(&path, a).await;
        assert_documented(&spec, schema, &body, &path);
    }

    let (status, signed_in) = api.sign_in(&served.operators[0]).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_documented(&spec, "TokenBody", &signed_in, "sign-in");
    let admin = format!("Bearer {}", signed_in["token"].as_str().expect("token"));
    let post = |path: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            let body = if body.is_null() { Vec::new() } else { bytes(&body) };
            let reply = send(api, Method::POST, path, Some(&admin), &body).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.json());
            reply.json()
        }
    };
    let tenant = post("/v1/admin/tenants", json!({"name": "globex"})).await;
    assert_documented(&spec, "TenantCreated", &tenant, "tenant create");
    let key = post("/v1/admin/tenants/globex/keys", Value::Null).await;
    assert_documented(&spec, "KeyCreated", &key, "key create");
    let operator = post(
        "/v1/admin/operators",
        json!({"username": "eve.x", "role": "auditor", "password": support::OPERATOR_PASSWORD}),
    )
    .await;
    assert_documented(&spec, "OperatorCreated", &operator, "operator create");

    let secrets: Vec<(&str, String)> = vec![
        ("the CLI tenant's secret", served.keys[0].secret.clone()),
        ("the CLI tenant's secret digest", hex_sha256(&served.keys[0].secret)),
        ("the new tenant's secret", tenant["key"]["secret"].as_str().expect("secret").to_owned()),
        ("the new key's secret", key["secret"].as_str().expect("secret").to_owned()),
        ("the new key's secret digest", hex_sha256(key["secret"].as_str().expect("secret"))),
        (
            "the new operator's TOTP secret",
            operator["totp"]["secret"].as_str().expect("totp").to_owned(),
        ),
        ("the CLI operator's TOTP secret", served.operators[0].totp.to_base32()),
        ("a password", support::OPERATOR_PASSWORD.to_owned()),
        ("an argon2 hash", "$argon2".to_owned()),
        ("an otpauth URI", "otpauth".to_owned()),
        ("the admin's token", admin.trim_start_matches("Bearer ").to_owned()),
    ];
    let listings = [
        ("/v1/admin/tenants", "TenantList"),
        ("/v1/admin/tenants/acme/keys", "KeyList"),
        ("/v1/admin/tenants/globex/keys", "KeyList"),
        ("/v1/admin/operators", "OperatorList"),
    ];
    for (path, schema) in listings {
        let reply = send(api, Method::GET, path, Some(&admin), b"").await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_documented(&spec, schema, &reply.json(), path);
        assert_holds_none(&reply, &secrets, path);
    }
    let metrics = send(api, Method::GET, "/metrics", None, b"").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_holds_none(&metrics, &secrets, "/metrics");
    for name in ["acme", "globex", &served.keys[0].key_id, "eve.x"] {
        assert!(!body_text(&metrics).contains(name), "/metrics names {name}");
    }
}

fn hex_sha256(text: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::signature::body_digest(text.as_bytes()))
}

fn body_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

#[track_caller]
fn assert_holds_none(reply: &Reply, secrets: &[(&str, String)], context: &str) {
    let text = body_text(reply);
    for (what, secret) in secrets {
        assert!(!text.contains(secret.as_str()), "{context} holds {what}: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// API4:2023 Unrestricted Resource Consumption
// ---------------------------------------------------------------------------------------

/// API4:2023 Unrestricted Resource Consumption (request size): a body over
/// `--body-bytes-max` is 413 (on a tenant route and on sign-in; an unauthenticated one
/// is 401 before any body is read), JSON nested deeper than the decoder's limit is 400
/// `invalid_json` (and deep admin JSON 400), a request target over `--url-bytes-max` is
/// 414, and more header fields than `--headers-max` is 431: hyper's own over HTTP/1.1,
/// the gateway's JSON one over h2c. The gateway serves normally afterwards.
#[tokio::test]
async fn api4_bodies_nesting_targets_and_header_counts_are_bounded() {
    let flags = ["--body-bytes-max", "1024", "--url-bytes-max", "256", "--headers-max", "8"];
    let served = serve(&["acme"], &[("ada", "admin")], &flags).await;
    let (api, a) = (&served.api, served.auth(0));
    let large = bytes(&Value::Array((0..20).map(|n| transfer(100 + n, 1, 2, 1)).collect()));
    assert!(large.len() > 1024, "{} bytes", large.len());
    let reply = send(api, Method::POST, "/v1/transfers", Some(a), &large).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "a signed large body");
    let reply = send(api, Method::POST, "/v1/transfers", None, &large).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_credentials", "an unsigned large body");
    let reply = send(api, Method::POST, "/v1/operator/sign-in", None, &large).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "a large sign-in");

    let nested = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let reply = send(api, Method::POST, "/v1/accounts", Some(a), nested.as_bytes()).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_json", "40 levels of arrays");
    let deep = format!("{{\"name\":{}{}}}", "[".repeat(400), "]".repeat(400));
    let admin = served.token(0).await;
    let reply = send(api, Method::POST, "/v1/admin/tenants", Some(&admin), deep.as_bytes()).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "400 levels in an admin body",
    );
    let reply = send(api, Method::POST, "/v1/operator/sign-in", None, deep.as_bytes()).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_parameter", "400 levels at sign-in");

    let long = format!("/v1/accounts/{}/transfers?limit=1&pad={}", uuid(1), "x".repeat(256));
    let reply = send(api, Method::GET, &long, None, b"").await;
    assert_error(&reply, StatusCode::URI_TOO_LONG, "uri_too_long", "a 300-byte target");

    let read = format!("/v1/accounts/{}", uuid(1));
    let auth = signed(a, &Method::GET, &read, b"");
    let padding: Vec<(String, String)> =
        (0..12).map(|n| (format!("x-pad-{n}"), "1".to_owned())).collect();
    let mut headers: Vec<(&str, &str)> =
        padding.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    headers.push(("authorization", auth.as_str()));
    let h2c = Api::h2c(served.gateway.addr()).bearer();
    let reply = h2c.call(Method::GET, &read, &headers, Vec::new()).await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_error(&reply, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too_many_headers", "h2c");
    let line = http1_status_line(served.gateway.addr(), &read, &headers).await;
    assert!(line.starts_with("HTTP/1.1 431"), "HTTP/1.1 with 14 header fields: {line}");

    let (status, body) = api.post_json("/v1/accounts", a, account(1, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "the gateway still serves: {body}");
}

/// Sends `GET target` with `headers` over a fresh HTTP/1.1 connection, written by hand;
/// the status line of the answer.
async fn http1_status_line(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let read = stream.read(&mut buf).await?;
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..read]);
        }
        std::io::Result::Ok(
            String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned(),
        )
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(line)) => line,
        Ok(Err(error)) => panic!("GET {target} by hand: {error}"),
        Err(_) => panic!("GET {target} by hand: no status line within 10 s"),
    }
}

/// API4:2023 Unrestricted Resource Consumption (rate): with `--rate-limit-per-second 5
/// --rate-limit-burst 5`, a tenant's flood gets 429 with `Retry-After` of at least 1 s
/// once the burst is spent (and no more requests through than the quota allows), while
/// another tenant is served; after `Retry-After` the first is served again.
#[tokio::test]
async fn api4_a_tenant_flood_is_rate_limited_without_touching_other_tenants() {
    let flags = ["--rate-limit-per-second", "5", "--rate-limit-burst", "5"];
    let served = serve(&["acme", "globex"], &[], &flags).await;
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let read = format!("/v1/accounts/{}", uuid(MISSING));
    // Rounds of 20 requests at once, so the burst is spent however slow each request is.
    let started = Instant::now();
    let (mut passed, mut limited) = (0u64, Vec::new());
    for _ in 0..10 {
        let round: Vec<_> = (0..20)
            .map(|_| {
                let (api, auth, read) = (api.clone(), a.to_owned(), read.clone());
                tokio::spawn(async move { send(&api, Method::GET, &read, Some(&auth), b"").await })
            })
            .collect();
        for request in round {
            let reply = request.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                limited.push(reply);
            } else {
                assert_error(&reply, StatusCode::NOT_FOUND, "account_not_found", "under the limit");
                passed += 1;
            }
        }
        if !limited.is_empty() {
            break;
        }
    }
    assert!(!limited.is_empty(), "{passed} requests in ten rounds of 20 and no 429");
    let allowed = 5 + (5.0 * started.elapsed().as_secs_f64()).ceil() as u64 + 1;
    assert!(
        (5..=allowed).contains(&passed),
        "{passed} requests passed, the quota allows 5 to {allowed}"
    );
    let mut retry_after = 0;
    for reply in &limited {
        assert_error(reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "the flood");
        let seconds: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a numeric Retry-After");
        assert!(seconds >= 1, "Retry-After {seconds}");
        retry_after = retry_after.max(seconds);
    }

    let other = send(api, Method::GET, &read, Some(b), b"").await;
    assert_error(
        &other,
        StatusCode::NOT_FOUND,
        "account_not_found",
        "the other tenant, during the flood",
    );

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = send(api, Method::GET, &read, Some(a), b"").await;
    assert_error(&again, StatusCode::NOT_FOUND, "account_not_found", "after Retry-After");
}

/// API4:2023 Unrestricted Resource Consumption (connections): with
/// `--idle-timeout-seconds 1` (and a 30 s header-read timeout, so that is not what
/// acts), an h2c connection with no streams (preface and SETTINGS, then silence) and an
/// HTTP/1.1 keep-alive connection after its response are closed by the gateway within a
/// few seconds, not before a second; a connection that keeps talking (HTTP/2 PINGs)
/// stays open past the timeout.
#[tokio::test]
async fn api4_idle_connections_are_closed() {
    let flags = ["--idle-timeout-seconds", "1", "--header-read-timeout-seconds", "30"];
    let served = serve(&[], &[], &flags).await;
    let addr = served.gateway.addr();
    let bound = Duration::from_secs(10);

    let mut h2 = TcpStream::connect(addr).await.expect("connecting");
    h2.write_all(H2_PREFACE).await.expect("the preface");
    h2.write_all(&h2_frame(0x4, 0, &[])).await.expect("SETTINGS");
    let mut first = [0u8; 9];
    tokio::time::timeout(bound, h2.read_exact(&mut first))
        .await
        .expect("a frame in time")
        .expect("a frame");
    assert_eq!(first[3], 0x4, "the server's first frame is SETTINGS: {first:?}");
    let idle = wait_closed(&mut h2, bound, "an idle h2c connection").await;
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}, before the idle timeout");

    let mut talking = TcpStream::connect(addr).await.expect("connecting");
    talking.write_all(H2_PREFACE).await.expect("the preface");
    talking.write_all(&h2_frame(0x4, 0, &[])).await.expect("SETTINGS");
    let started = Instant::now();
    let mut pings = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        pings += 1;
        talking
            .write_all(&h2_frame(0x6, 0, &pings.to_be_bytes()))
            .await
            .expect("a PING while talking");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ack = read_ping_ack(&mut talking, pings, bound).await;
    assert!(ack, "a connection that kept talking for 2.5 s still answers its last PING");

    let mut http1 = TcpStream::connect(addr).await.expect("connecting");
    http1
        .write_all(format!("GET /livez HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("a request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\"live\"") {
        let read = tokio::time::timeout(bound, http1.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("an answer");
        assert!(read > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let idle = wait_closed(&mut http1, bound, "an idle keep-alive connection").await;
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}, before the idle timeout");
    assert!(idle < Duration::from_secs(10), "closed by the idle timeout, not the header timeout");
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame on stream 0.
fn h2_frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a small payload").to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// Reads frames until the PING ACK carrying `last`; whether it came before `bound`.
async fn read_ping_ack(stream: &mut TcpStream, last: u64, bound: Duration) -> bool {
    let read = async {
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await?;
            let length =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; length];
            stream.read_exact(&mut payload).await?;
            if head[3] == 0x6 && head[4] & 0x1 == 1 && payload == last.to_be_bytes() {
                return std::io::Result::Ok(());
            }
        }
    };
    matches!(tokio::time::timeout(bound, read).await, Ok(Ok(())))
}

// ---------------------------------------------------------------------------------------
// API5:2023 Broken Function Level Authorization
// ---------------------------------------------------------------------------------------

/// API5:2023 Broken Function Level Authorization: the roles each operator route admits
/// come from the spec (`Roles:` in each description; every `/v1/admin` and
/// `/v1/operator` operation but sign-in has them, and they equal the router's lists);
/// each of the four roles gets 403 `forbidden` exactly where the spec says and gets
/// through (neither 401 nor 403) everywhere else, the role checked before the body.
/// A token whose role claim says `admin`, correctly signed, on an auditor's session is
/// still an auditor (the session's role rules).
#[tokio::test]
async fn api5_every_operator_route_admits_exactly_its_documented_roles() {
    let roles = ["admin", "operator", "auditor", "information_officer"];
    let operators = [("ada", roles[0]), ("otto", roles[1]), ("aud", roles[2]), ("ivy", roles[3])];
    let served = serve(&["acme"], &operators, &[]).await;
    let api = &served.api;
    let spec = spec();
    let mut operator_ops: Vec<Operation> =
        operations(&spec).into_iter().filter(Operation::is_operator).collect();
    let admin_paths: BTreeSet<_> = operations(&spec)
        .into_iter()
        .filter(|op| {
            ["/v1/admin", "/v1/operator/", "/v1/audit/", "/v1/compliance/"]
                .iter()
                .any(|prefix| op.template.starts_with(prefix))
        })
        .filter(|op| op.template != "/v1/operator/sign-in")
        .map(|op| op.key())
        .collect();
    let covered: BTreeSet<_> = operator_ops.iter().map(Operation::key).collect();
    assert_eq!(
        covered, admin_paths,
        "every /v1/admin, /v1/operator, /v1/audit and /v1/compliance route takes an operator token"
    );
    for route in RouteId::ALL {
        let Access::Operator(admitted) = route.access() else { continue };
        let (method, template) = route.template();
        let op =
            operator_ops.iter().find(|op| op.key() == (method.to_owned(), template.to_owned()));
        let op = op
            .unwrap_or_else(|| panic!("{method} {template} is not an operator route of the spec"));
        let router: BTreeSet<String> =
            admitted.iter().map(|role| role.as_str().to_owned()).collect();
        assert_eq!(
            op.documented_roles(),
            router,
            "{method} {template}: the spec's roles are the router's"
        );
    }
    assert_eq!(covered, routes_where(|access| matches!(access, Access::Operator(_))));

    // Sign-out last: it ends the session the other calls use.
    operator_ops.sort_by_key(|op| op.template == "/v1/operator/sign-out");
    let mut tokens = Vec::new();
    for index in 0..roles.len() {
        tokens.push(served.token(index).await);
    }
    let mut forbidden_body = None;
    for op in &operator_ops {
        let allowed = op.documented_roles();
        assert!(!allowed.is_empty(), "{} {}: no roles", op.method, op.template);
        let path = op.path("999999999", "no-such-tenant", "pk_0000000000000000");
        let body: &[u8] = if op.takes_body { b"{}" } else { b"" };
        for (role, token) in roles.iter().zip(&tokens) {
            let reply = send(api, op.method.clone(), &path, Some(token), body).await;
            let context = format!("{role} on {} {}", op.method, op.template);
            if allowed.contains(*role) {
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&reply.status)
                        && !reply.status.is_server_error()
                        && code(&reply) != "route_not_found",
                    "{context} must get through: {} {}",
                    reply.status,
                    body_text(&reply)
                );
            } else {
                assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &context);
                let expected = forbidden_body.get_or_insert(reply.json());
                assert_eq!(&reply.json(), expected, "{context}: every 403 is the same");
            }
        }
    }

    let auditor = served.token(2).await;
    let forged = Claims { role: "admin".to_owned(), ..claims_of(&auditor) };
    let forged = forge(&served.token_signer(), &forged);
    let reply = send(
        api,
        Method::POST,
        "/v1/admin/tenants",
        Some(&forged),
        &bytes(&json!({"name": "initech"})),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::FORBIDDEN,
        "forbidden",
        "an auditor's session with an admin role claim",
    );
}

/// API5:2023 Broken Function Level Authorization (credentials do not cross): a tenant's
/// signed request or Bearer key on every operator route is 401, and an operator's token
/// on every tenant route is 401, even where Bearer keys are allowed.
#[tokio::test]
async fn api5_tenant_and_operator_credentials_do_not_cross() {
    let served = serve(&["acme"], &[("ada", "admin")], &["--allow-bearer-keys"]).await;
    let (api, a) = (&served.api, served.auth(0));
    let raw_api = api.clone().bearer();
    let admin = served.token(0).await;
    let spec = spec();
    for op in operations(&spec) {
        let context = format!("{} {}", op.method, op.template);
        if op.is_operator() {
            let path = op.path("1", "acme", "pk_0000000000000000");
            let body: &[u8] = if op.takes_body { b"{}" } else { b"" };
            let signed = send(api, op.method.clone(), &path, Some(a), body).await;
            assert_error(
                &signed,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                &format!("a signed tenant request on {context}"),
            );
            let bearer = send(&raw_api, op.method.clone(), &path, Some(a), body).await;
            assert_error(
                &bearer,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                &format!("a tenant Bearer key on {context}"),
            );
        } else if op.is_tenant() {
            let path = op.path(&uuid(1), "", "");
            let body = if op.takes_body { bytes(&account(1, 1)) } else { Vec::new() };
            let reply = send(api, op.method.clone(), &path, Some(&admin), &body).await;
            assert_error(
                &reply,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                &format!("an operator token on {context}"),
            );
        }
    }
    let reply = send(&raw_api, Method::GET, "/v1/admin/tenants", Some(&admin), b"").await;
    assert_eq!(reply.status, StatusCode::OK, "the token itself is good");
    let (status, _) = raw_api.post_json("/v1/accounts", a, account(1, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "the Bearer key itself is good");
}

// ---------------------------------------------------------------------------------------
// API6:2023 Unrestricted Access to Sensitive Business Flows
// ---------------------------------------------------------------------------------------

/// API6:2023 Unrestricted Access to Sensitive Business Flows (payments): a transfer
/// retried with the same id, each retry freshly signed, sequentially or eight at once,
/// answers `exists` and moves the money once; a first send raced eight ways commits
/// once; the same id with another amount is `exists_with_different_fields`.
#[tokio::test]
async fn api6_a_retried_transfer_moves_money_once() {
    let served = serve(&["acme"], &[], &[]).await;
    let (api, a) = (&served.api, served.auth(0));
    create(api, "/v1/accounts", a, account(1, 1)).await;
    create(api, "/v1/accounts", a, account(2, 1)).await;
    create(api, "/v1/transfers", a, transfer(10, 1, 2, 100)).await;
    for retry in 1..=3 {
        let (status, body) = api.post_json("/v1/transfers", a, transfer(10, 1, 2, 100)).await;
        assert_eq!(
            (status, &body["result"]),
            (StatusCode::OK, &json!("exists")),
            "retry {retry}: {body}"
        );
    }
    let outcomes = race(api, a, transfer(10, 1, 2, 100), 8).await;
    assert!(outcomes.iter().all(|o| o == "exists"), "concurrent retries: {outcomes:?}");
    let outcomes = race(api, a, transfer(11, 1, 2, 50), 8).await;
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ok").count(),
        1,
        "one first send commits: {outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "exists").count(), 7, "{outcomes:?}");
    let (status, body) = api.post_json("/v1/transfers", a, transfer(10, 1, 2, 999)).await;
    assert_eq!(
        (status, &body["result"]),
        (StatusCode::CONFLICT, &json!("exists_with_different_fields"))
    );
    assert_eq!(balances(api, a, 1).await, [0, 150, 0, 0], "debited once per transfer");
    assert_eq!(balances(api, a, 2).await, [0, 0, 0, 150], "credited once per transfer");
    let (_, page) = api.get_json(&format!("/v1/accounts/{}/transfers", uuid(1)), a).await;
    assert_eq!(
        page["data"].as_array().map(Vec::len),
        Some(2),
        "two transfers in the history: {page}"
    );
}

/// Sends `body` to `/v1/transfers` `ways` times at once, each signed on its own; the
/// result codes.
async fn race(api: &Api, auth: &str, body: Value, ways: usize) -> Vec<String> {
    let sends: Vec<_> = (0..ways)
        .map(|_| {
            let (api, auth, body) = (api.clone(), auth.to_owned(), body.clone());
            tokio::spawn(async move { api.post_json("/v1/transfers", &auth, body).await })
        })
        .collect();
    let mut results = Vec::with_capacity(ways);
    for send in sends {
        let (status, body) =
            send.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        assert!(status.is_success(), "{status}: {body}");
        results.push(body["result"].as_str().unwrap_or_default().to_owned());
    }
    results
}

/// API6:2023 Unrestricted Access to Sensitive Business Flows (operator sign-in): a TOTP
/// code signs in once; the same code with the right password again, even after the
/// first session signed out, is refused and counts towards the lock-out; a fresh code
/// then works.
#[tokio::test]
async fn api6_a_totp_code_signs_in_once() {
    let served = serve(&[], &[("ada", "admin"), ("aud", "auditor")], &[]).await;
    let (api, aud) = (&served.api, &served.operators[1]);
    let body = bytes(&aud.sign_in_body().await);
    let first = send(api, Method::POST, "/v1/operator/sign-in", None, &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json());
    let token = format!("Bearer {}", first.json()["token"].as_str().expect("token"));
    let out = send(api, Method::POST, "/v1/operator/sign-out", Some(&token), b"").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let again = send(api, Method::POST, "/v1/operator/sign-in", None, &body).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_credentials", "the same code again");
    let admin = served.token(0).await;
    let list = send(api, Method::GET, "/v1/admin/operators", Some(&admin), b"").await.json();
    let listed =
        list["data"].as_array().and_then(|all| all.iter().find(|op| op["id"] == aud.id).cloned());
    assert_eq!(
        listed.map(|op| op["failed_attempts"].clone()),
        Some(json!(1)),
        "a reused code is a failure: {list}"
    );
    let (status, body) = api.sign_in(aud).await;
    assert_eq!(status, StatusCode::OK, "a fresh code signs in: {body}");
}

// ---------------------------------------------------------------------------------------
// API8:2023 Security Misconfiguration
// ---------------------------------------------------------------------------------------

/// API8:2023 Security Misconfiguration: every response the gateway writes (200, 201,
/// 204, 400, 401, 403, 404, 405, 413, 414, 429, 431 over h2c, 503) carries the security
/// headers and an `X-Request-Id`, plain HTTP carries no HSTS, 405 names the allowed
/// methods in `Allow`, 429 and 503 carry `Retry-After`, and no body holds a panic, a
/// source or data path, a storage error, SQL or a secret. The 503 comes from the replay
/// cache at its bound (`--replay-cache-entries-max 1024`): the gateway refuses rather
/// than forgets.
#[tokio::test]
async fn api8_every_response_carries_the_security_headers_and_no_internals() {
    let flags = [
        "--body-bytes-max",
        "1024",
        "--url-bytes-max",
        "256",
        "--rate-limit-per-second",
        "1",
        "--rate-limit-burst",
        "10",
        "--replay-cache-entries-max",
        "1024",
    ];
    let served = serve(&["acme", "globex"], &[("aud", "auditor")], &flags).await;
    let (api, a, b) = (&served.api, served.auth(0), served.auth(1));
    let mut replies: Vec<(String, Reply)> = Vec::new();
    let read = |id: u128| format!("/v1/accounts/{}", uuid(id));
    let mut record = |context: &str, reply: Reply, status: StatusCode| {
        assert_eq!(reply.status, status, "{context}: {}", body_text(&reply));
        replies.push((context.to_owned(), reply));
    };
    record(
        "201",
        send(api, Method::POST, "/v1/accounts", Some(a), &bytes(&account(1, 1))).await,
        StatusCode::CREATED,
    );
    record("200", send(api, Method::GET, &read(1), Some(a), b"").await, StatusCode::OK);
    record("200 public", send(api, Method::GET, "/livez", None, b"").await, StatusCode::OK);
    record(
        "400",
        send(api, Method::POST, "/v1/accounts", Some(a), b"{").await,
        StatusCode::BAD_REQUEST,
    );
    record("401", send(api, Method::GET, &read(1), None, b"").await, StatusCode::UNAUTHORIZED);
    record(
        "404",
        send(api, Method::GET, &read(MISSING), Some(a), b"").await,
        StatusCode::NOT_FOUND,
    );
    record("404 route", send(api, Method::GET, "/nowhere", None, b"").await, StatusCode::NOT_FOUND);
    record(
        "405",
        send(api, Method::PUT, "/v1/accounts", None, b"").await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    record(
        "413",
        send(api, Method::POST, "/v1/accounts", Some(a), &[b' '; 2048]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let long = format!("{}?pad={}", read(1), "x".repeat(300));
    record("414", send(api, Method::GET, &long, None, b"").await, StatusCode::URI_TOO_LONG);
    let padding: Vec<(String, String)> =
        (0..70).map(|n| (format!("x-pad-{n}"), "1".to_owned())).collect();
    let headers: Vec<(&str, &str)> =
        padding.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let h2c = Api::h2c(served.gateway.addr());
    record(
        "431 h2c",
        h2c.call(Method::GET, "/livez", &headers, Vec::new()).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    let token = served.token(0).await;
    let forbidden =
        send(api, Method::POST, "/v1/admin/tenants", Some(&token), &bytes(&json!({"name": "x"})))
            .await;
    record("403", forbidden, StatusCode::FORBIDDEN);
    record(
        "204",
        send(api, Method::POST, "/v1/operator/sign-out", Some(&token), b"").await,
        StatusCode::NO_CONTENT,
    );

    // B spends its burst, then every signed request adds a nonce until the cache is full.
    let mut limited = None;
    let mut full = None;
    for sent in 0..1100 {
        let reply = send(api, Method::GET, &read(MISSING), Some(b), b"").await;
        match reply.status {
            StatusCode::NOT_FOUND => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited.get_or_insert(reply);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                full = Some(reply);
                assert!(sent >= 1000, "the replay cache refused after only {sent} requests");
                break;
            }
            other => panic!("request {sent}: {other} {}", body_text(&reply)),
        }
    }
    let limited = limited.expect("a 429 after the burst");
    let full = full.expect("a 503 once 1024 nonces are held");
    assert_eq!(code(&full), "overloaded", "{}", body_text(&full));
    assert_eq!(full.header("retry-after"), Some("1"), "a 503 carries Retry-After");
    assert!(limited.header("retry-after").is_some(), "a 429 carries Retry-After");
    replies.push(("429".to_owned(), limited));
    replies.push(("503".to_owned(), full));
    let reply = send(api, Method::GET, &read(1), Some(a), b"").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "every signer waits for the cache");

    let allow =
        replies.iter().find(|(context, _)| context == "405").map(|(_, r)| r.header("allow"));
    assert_eq!(allow, Some(Some("POST")), "405 names the allowed methods");
    let data_dir = served.dir.path().to_string_lossy().into_owned();
    let secrets = [
        served.keys[0].secret.as_str(),
        served.keys[1].secret.as_str(),
        support::OPERATOR_PASSWORD,
    ];
    let fragments = [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        ".rs:",
        "src/",
        "/root",
        "/home",
        "/tmp",
        "StoreError",
        "redb",
        "SELECT ",
        "INSERT ",
        "postgres",
        &data_dir,
    ];
    for (context, reply) in &replies {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(reply.header(name), Some(value), "{context}: {name}");
        }
        assert!(
            reply.header("x-request-id").is_some_and(|id| !id.is_empty()),
            "{context}: X-Request-Id"
        );
        assert_eq!(
            reply.header("strict-transport-security"),
            None,
            "{context}: no HSTS over plain HTTP"
        );
        let text = body_text(reply);
        for fragment in fragments.iter().chain(&secrets).copied() {
            assert!(!text.contains(fragment), "{context}: the body holds {fragment:?}: {text}");
        }
        if reply.status.is_client_error() || reply.status.is_server_error() {
            assert!(!code(reply).is_empty(), "{context}: a JSON error with a code: {text}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// API9:2023 Improper Inventory Management
// ---------------------------------------------------------------------------------------

/// API9:2023 Improper Inventory Management: on the live server, every operation of the
/// spec exists (anything but 404 `route_not_found` or 405), every other method on a
/// documented path is 405 with `Allow` listing exactly the documented ones, and paths
/// nobody documented (old versions, debug and dotfile paths, deeper paths, and spellings
/// of documented paths a normalising proxy might rewrite: case, `//`, `.`, `..`, a
/// trailing `/`) are 404 `route_not_found`.
#[tokio::test]
async fn api9_the_live_routes_are_exactly_the_documented_ones() {
    let served = serve(&[], &[], &[]).await;
    let api = &served.api;
    let ops = operations(&spec());
    let mut by_path: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for op in &ops {
        let path = op.path(&uuid(1), "acme", "pk_0123456789abcdef");
        by_path.entry(path.clone()).or_default().insert(op.method.to_string());
        let reply = send(api, op.method.clone(), &path, None, b"").await;
        let context = format!("{} {} (as {path})", op.method, op.template);
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{context}");
        assert_ne!(code(&reply), "route_not_found", "{context} is documented but not served");
        if op.security.is_empty() && op.template != "/v1/operator/sign-in" {
            assert_eq!(reply.status, StatusCode::OK, "{context} is public");
        }
    }
    let methods =
        [Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH, Method::OPTIONS];
    for (path, documented) in &by_path {
        for method in methods.iter().filter(|m| !documented.contains(m.as_str())) {
            let reply = send(api, method.clone(), path, None, b"").await;
            assert_error(
                &reply,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{method} {path}"),
            );
            let allow: BTreeSet<String> = reply
                .header("allow")
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(&allow, documented, "{method} {path}: Allow");
        }
    }
    let undocumented = [
        "/v1/admin",
        "/debug",
        "/v1/accounts/x/y/z",
        "/v2/transfers",
        "/.env",
        "/metrics/extra",
        "/v1",
        "/",
        "/admin",
        "/v1/operators",
        "/v1/admin/tenants/acme",
        "/v0/accounts",
        "/v1/transfers/1/2",
        "/V1/accounts",
        "/v1//accounts",
        "/v1/./admin/tenants",
        "/v1/accounts/../admin/tenants",
        "/v1/admin/tenants/",
        "/.git/config",
        "/swagger.json",
        "/openapi.yaml",
        "/v1/admin/keys",
    ];
    for path in undocumented {
        for method in [Method::GET, Method::POST] {
            let reply = send(api, method.clone(), path, None, b"").await;
            assert_error(
                &reply,
                StatusCode::NOT_FOUND,
                "route_not_found",
                &format!("{method} {path}"),
            );
        }
    }
}
