-- Protea ledger schema, version 1.
-- Ids are 128-bit client-chosen values stored as uuid; amounts and balances are integer
-- minor units within bigint (the ledger never exceeds 2^63-1); timestamps are the
-- ledger's nanoseconds since the Unix epoch. Zero ids ("absent") are stored as NULL.

CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    secret_digest bytea NOT NULL CHECK (length(secret_digest) = 32),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL,
    ledger          bigint NOT NULL CHECK (ledger BETWEEN 1 AND 4294967295),
    code            integer NOT NULL CHECK (code BETWEEN 1 AND 65535),
    flags           integer NOT NULL CHECK (flags BETWEEN 0 AND 65535),
    user_data       uuid,
    subject_id      uuid,
    debits_pending  bigint NOT NULL CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL CHECK (credits_posted >= 0),
    timestamp       bigint NOT NULL CHECK (timestamp > 0),
    PRIMARY KEY (tenant_id, id)
);

-- Transfers are immutable: written once, never updated or deleted (trigger below).
CREATE TABLE transfers (
    tenant_id         bigint NOT NULL REFERENCES tenants (id),
    id                uuid NOT NULL,
    debit_account_id  uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount            bigint NOT NULL CHECK (amount >= 0),
    pending_id        uuid,
    user_data         uuid,
    ledger            bigint NOT NULL CHECK (ledger BETWEEN 1 AND 4294967295),
    code              integer NOT NULL CHECK (code BETWEEN 1 AND 65535),
    flags             integer NOT NULL CHECK (flags BETWEEN 0 AND 65535),
    timeout_seconds   bigint NOT NULL CHECK (timeout_seconds BETWEEN 0 AND 4294967295),
    timestamp         bigint NOT NULL CHECK (timestamp > 0),
    PRIMARY KEY (tenant_id, id)
);

-- An account's history, in timestamp order, from either side.
CREATE INDEX transfers_by_debit_account ON transfers (tenant_id, debit_account_id, timestamp);
CREATE INDEX transfers_by_credit_account ON transfers (tenant_id, credit_account_id, timestamp);

CREATE FUNCTION protea_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER transfers_are_immutable
    BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION protea_refuse_change();

-- Rejections stored so a retry answers id_already_failed (result codes of result.rs).
CREATE TABLE transfer_failures (
    tenant_id bigint NOT NULL REFERENCES tenants (id),
    id        uuid NOT NULL,
    result    smallint NOT NULL CHECK (result BETWEEN 0 AND 255),
    PRIMARY KEY (tenant_id, id)
);

-- What became of a pending transfer: 1 posted, 2 voided, 3 expired (PendingStatus).
CREATE TABLE pending_statuses (
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    pending_id uuid NOT NULL,
    status     smallint NOT NULL CHECK (status BETWEEN 1 AND 3),
    PRIMARY KEY (tenant_id, pending_id)
);

-- Pending transfers still open that have a timeout, by when they expire.
CREATE TABLE pending_expiries (
    expires_at bigint NOT NULL,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    pending_id uuid NOT NULL,
    PRIMARY KEY (expires_at, tenant_id, pending_id)
);

-- The newest ledger timestamp, shared by every gateway writing to this database.
CREATE TABLE ledger_clock (
    id             smallint PRIMARY KEY CHECK (id = 1),
    timestamp_last bigint NOT NULL CHECK (timestamp_last >= 0)
);
INSERT INTO ledger_clock (id, timestamp_last) VALUES (1, 0);
