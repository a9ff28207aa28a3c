-- Protea schema, version 3: what the security layer stores. Signed requests and key
-- rotation (API keys gain a sealed signing secret and a revocation time), operators
-- (password + TOTP sign-in, lock-out) and operator sessions for gateways without
-- DynamoDB.
--
-- Secrets arrive sealed by the gateway (AES-256-GCM under a key-encryption key): the
-- database holds opaque bytes, never a secret in clear. Times of these records are
-- timestamptz at whole seconds, written from the gateway's clock (passed in, as the
-- ledger's is). The ledger's own tables keep their bigint nanoseconds.

-- A key made before version 3 has no sealed secret (NULL): it can only be used as a
-- Bearer key. Every key made from now on has one. A tenant has at most two keys with
-- revoked_at NULL; storage counts them under the tenant row's lock.
ALTER TABLE api_keys
    ADD COLUMN sealed_secret bytea
        CHECK (sealed_secret IS NULL OR length(sealed_secret) BETWEEN 1 AND 1024),
    ADD COLUMN revoked_at timestamptz;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

-- Usernames are personal information: never logged. The role names are those of
-- storage::operators::Role.
CREATE TABLE operators (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    role            text NOT NULL
        CHECK (role IN ('admin', 'operator', 'auditor', 'information_officer')),
    password_phc    text NOT NULL CHECK (octet_length(password_phc) BETWEEN 1 AND 512),
    totp_sealed     bytea NOT NULL CHECK (length(totp_sealed) BETWEEN 1 AND 1024),
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts BETWEEN 0 AND 10),
    locked          boolean NOT NULL DEFAULT false,
    disabled        boolean NOT NULL DEFAULT false,
    totp_last_step  bigint CHECK (totp_last_step >= 0),
    created_at      timestamptz NOT NULL
);

-- The semantics of the DynamoDB sessions table: a revoke sets `revoked` and keeps the row
-- (the id stays taken) until the row is purged after `expires_at`.
CREATE TABLE operator_sessions (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{16,128}$'),
    operator_id text NOT NULL CHECK (octet_length(operator_id) BETWEEN 1 AND 128),
    role        text NOT NULL CHECK (octet_length(role) BETWEEN 1 AND 128),
    created_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL CHECK (last_seen >= created_at),
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at),
    revoked     boolean NOT NULL DEFAULT false
);

CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator_id);
CREATE INDEX operator_sessions_by_expiry ON operator_sessions (expires_at);
