//! Per-request tenant authentication on the gateway's own code, the steps
//! `gateway::request` runs between the headers and the rate limit:
//! `Credentials::claim` on the headers, then `Claim::verify` with the body (for a
//! signed request: the body's SHA-256, the HMAC against the canonical request, the time
//! window, and the nonce against a `ReplayCache`; a bearer key needs none of it). A signed request against a bearer key (a gateway with
//! `--allow-bearer-keys`), for a GET with no body and for a 100-transfer batch; and
//! `body_digest` alone for that batch.
//!
//! Signing (the client's work) happens in each iteration's setup, outside the timing:
//! every signed request has its own nonce, as a client's do. The clock passed to
//! `verify` advances one second per 10 000 requests and the window is 10 s, so the replay
//! cache holds about 100 000 nonces and forgets as many as it learns (a gateway at 10 000
//! signed requests/s with a 10 s window; the default window of 300 s would hold 30 times
//! more).
//!
//! Run: `cargo bench -p benches --bench auth` (add `-- --quick` for a short run).

use std::cell::Cell;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto::envelope::KeyRing;
use crypto::signature::{Digest32, RequestParts, Scope, SigningKey, body_digest, sign_request};
use gateway::auth::{Credentials, Received, secret_aad};
use gateway::replay::ReplayCache;
use gateway::tls::ClientIdentity;
use gateway::wire::encode_uuid;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use storage::tenants::{ApiKeyRecord, Tenant};

const START_S: u64 = 1_760_000_000;
const REQUESTS_PER_SECOND: u64 = 10_000;
const WINDOW_S: u64 = 10;
const REPLAY_ENTRIES_MAX: usize = 1_000_000;
const TENANT: u64 = 7;

/// One tenant with one key, as the gateway's directory holds it (the signing secret
/// sealed, then opened by `Credentials::replace`).
struct Fixture {
    credentials: Credentials,
    key_id: String,
    /// The client's copy of the secret, to sign with.
    signing: SigningKey,
    bearer: HeaderMap,
}

fn fixture() -> Fixture {
    let (kek, _) = KeyRing::generate("bench-kek").expect("a key ring");
    let key = crypto::api_key::generate().expect("an API key");
    let sealed = kek.seal(key.secret.as_bytes(), &secret_aad(&key.key_id)).expect("sealed");
    let record = ApiKeyRecord {
        key_id: key.key_id.clone(),
        tenant: TENANT,
        secret_digest: key.digest,
        sealed_secret: sealed,
    };
    let credentials = Credentials::empty();
    credentials.replace(vec![record], vec![Tenant { id: TENANT, name: "bench".into() }], &kek);
    let mut bearer = HeaderMap::new();
    let value = format!("Bearer {}.{}", key.key_id, key.secret);
    bearer.insert(AUTHORIZATION, HeaderValue::from_str(&value).expect("a header value"));
    let signing = SigningKey::new(key.secret.as_bytes()).expect("a signing key");
    Fixture { credentials, key_id: key.key_id, signing, bearer }
}

/// A request the benchmark authenticates.
struct Request {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Vec<u8>,
}

impl Request {
    /// What is signed besides the scope, with the body's digest.
    fn parts<'a>(&'a self, digest: &'a Digest32) -> RequestParts<'a> {
        RequestParts { method: self.method, path: &self.path, query: "", body_sha256: digest }
    }
}

fn uuid_text(n: u64) -> String {
    let id = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    String::from_utf8_lossy(&encode_uuid(id)).into_owned()
}

/// A batch of `count` plain transfers, about 250 bytes each (as `parse`'s bodies).
fn batch_body(count: u64) -> Vec<u8> {
    let transfers: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"id":"{}","debit_account_id":"{}","credit_account_id":"{}","amount":{},"ledger":710,"code":1,"flags":[],"user_data":"{}"}}"#,
                uuid_text(4 * i),
                uuid_text(4 * i + 1),
                uuid_text(4 * i + 2),
                1000 + i * 37,
                uuid_text(4 * i + 3),
            )
        })
        .collect();
    format!("[{}]", transfers.join(",")).into_bytes()
}

fn requests() -> [Request; 2] {
    [
        Request {
            name: "get_account",
            method: "GET",
            path: format!("/v1/accounts/{}", uuid_text(42)),
            body: Vec::new(),
        },
        Request {
            name: "batch_100",
            method: "POST",
            path: "/v1/transfers".into(),
            body: batch_body(100),
        },
    ]
}

/// What the gateway does with a request's credentials once its body is in: claim,
/// digest, verify. `Ok(tenant)` or why not.
fn authenticate(
    fixture: &Fixture,
    replay: &ReplayCache,
    request: &Request,
    headers: &HeaderMap,
    now_s: u64,
) -> Result<u64, &'static str> {
    let claim = fixture
        .credentials
        .claim(headers, &ClientIdentity::None, true)
        .map_err(|failure| failure.code())?;
    let received =
        Received { method: request.method, path: &request.path, query: "", body: &request.body };
    claim.verify(&received, now_s, WINDOW_S, replay).map_err(|_| "verify")
}

/// The headers of a client's signed request: request `n` of the run, at its second.
fn signed_headers(fixture: &Fixture, request: &Request, n: u64) -> (HeaderMap, u64) {
    let now_s = START_S + n / REQUESTS_PER_SECOND;
    let nonce = format!("bench-nonce-{n:020}");
    let digest = body_digest(&request.body);
    let scope = Scope { key_id: &fixture.key_id, timestamp: now_s, nonce: &nonce };
    let header = sign_request(&fixture.signing, &scope, &request.parts(&digest))
        .expect("a signable request");
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&header.header_value()).expect("a header value");
    headers.insert(AUTHORIZATION, value);
    (headers, now_s)
}

fn tenant_auth(c: &mut Criterion) {
    let fixture = fixture();
    let replay = ReplayCache::new(REPLAY_ENTRIES_MAX);
    let sent = Cell::new(0u64);
    let refused = Cell::new(0u64);
    let next = || {
        let n = sent.get();
        sent.set(n + 1);
        n
    };
    let mut group = c.benchmark_group("tenant_auth");
    group.throughput(Throughput::Elements(1));
    for request in requests() {
        // Both paths accept the request before they are timed.
        let (headers, now_s) = signed_headers(&fixture, &request, next());
        assert_eq!(authenticate(&fixture, &replay, &request, &headers, now_s), Ok(TENANT));
        assert_eq!(authenticate(&fixture, &replay, &request, &fixture.bearer, START_S), Ok(TENANT));

        group.bench_function(BenchmarkId::new("signed", request.name), |b| {
            b.iter_batched_ref(
                || signed_headers(&fixture, &request, next()),
                |(headers, now_s)| {
                    let accepted = authenticate(&fixture, &replay, &request, headers, *now_s);
                    if accepted.is_err() {
                        refused.set(refused.get() + 1);
                    }
                    black_box(accepted)
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function(BenchmarkId::new("bearer", request.name), |b| {
            b.iter_batched_ref(
                || fixture.bearer.clone(),
                |headers| {
                    let accepted = authenticate(&fixture, &replay, &request, headers, START_S);
                    if accepted.is_err() {
                        refused.set(refused.get() + 1);
                    }
                    black_box(accepted)
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    // Every request timed was accepted: none replayed, none refused for a full cache.
    assert_eq!(refused.get(), 0, "refused requests while measuring");
    println!("tenant_auth: {} signed requests, replay cache holding {}", sent.get(), replay.len());
}

fn digest(c: &mut Criterion) {
    let body = batch_body(100);
    let mut group = c.benchmark_group("body_digest");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(BenchmarkId::new("sha256", "batch_100"), |b| {
        b.iter(|| black_box(body_digest(black_box(&body))));
    });
    group.finish();
}

criterion_group!(benches, tenant_auth, digest);
criterion_main!(benches);
