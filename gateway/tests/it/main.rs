//! The gateway's integration tests, in one binary: each test runs the real `gateway`
//! executable on a temporary data directory and speaks HTTP to it like a client would.
//!
//! - [`support`]: start and stop the binary, create tenants, a small HTTP/1.1 and h2c
//!   client, and a seeded random number generator.
//! - [`http_api`]: the API end to end, route by route and status by status.
//! - [`crash`]: kill -9 under concurrent load, restart, and check that every acknowledged
//!   transfer survived exactly once and that money is conserved.
//! - [`observability`]: a real Prometheus scraping a real gateway under load evaluates
//!   every query of the Grafana dashboard and every recording and alert rule; the
//!   background audit-chain verification's metric turns 0 on a tampered trail.
//! - [`operators`]: the first admin from the command line, sign-in with TOTP, tokens
//!   bound to sessions, and the admin API managing tenants and keys.
//! - [`pg_cluster`]: PostgreSQL for the tests below: fresh databases on the shared
//!   server, and private servers to stop, restart or run with TLS.
//! - [`pg_multi_process`]: two gateway processes on one database under concurrent load.
//! - [`pg_faults`]: connections killed mid-flush, a server restarted mid-load, and TLS
//!   certificate verification.
//! - [`pg_secrets`]: database credentials from Secrets Manager (moto), rotated while the
//!   gateway runs.
//! - [`popia`]: the POPIA modules on both stores: the vault's round trip, consent and the
//!   purpose check, a tampered audit record named by verify, KEK rotation with the data keys
//!   re-wrapped, an erasure that leaves no plaintext in the store's bytes or the logs, the
//!   compliance report and its roles, retention purging aged fields, the breach register.
//! - [`popia_site`]: the fixture those tests share with `observability` and
//!   `audit_archive` (a backend's data and its gateway, the store opened directly, the
//!   trail tampered with around the store).
//! - [`shared_state`]: what several processes share through real services: operator
//!   sessions in DynamoDB (moto) cached in Redis, or in PostgreSQL without AWS; one global
//!   rate limit in Redis, and the local fallback (with its metrics and log) when Redis is
//!   away.
//! - [`security`]: the OWASP API Security Top 10 (2023) item by item: object and function
//!   level authorisation on every route of the spec, broken signatures and tokens,
//!   lock-out, rate limits, resource bounds, idle connections, idempotent retries,
//!   security headers and the live route inventory.
//! - [`stack`]: the local stack of `scripts/stack` (nginx, two gateways, PostgreSQL,
//!   Redis, moto, Prometheus): a gateway stopped mid-load behind the balancer loses no
//!   acknowledged transfer; `gateway healthcheck`; the container files' linters.
//! - [`audit_archive`]: `gateway audit-archive` on both stores to a bucket with Object Lock
//!   on moto's S3: chunks, partial chunks, re-runs, the export's bytes, checksums and
//!   metadata, and a tampered record that stops the run naming its seq.
//! - [`telemetry`]: OpenTelemetry spans (request, batch, flush, their links and the
//!   caller's `traceparent`) received by a real OTLP/HTTP endpoint in the test, trace ids
//!   in the JSON logs, nothing sent without `--otlp-endpoint`, and CloudWatch EMF lines.
//! - [`tls`]: TLS and mTLS end to end with certificates made at test time: ALPN, cipher
//!   suites, HSTS, client certificates as tenant identities, handshake failures and
//!   timeouts.

mod audit_archive;
mod crash;
mod http_api;
mod observability;
mod operators;
mod pg_cluster;
mod pg_faults;
mod pg_multi_process;
mod pg_secrets;
mod popia;
mod popia_site;
mod security;
mod shared_state;
mod stack;
mod support;
mod telemetry;
mod tls;
