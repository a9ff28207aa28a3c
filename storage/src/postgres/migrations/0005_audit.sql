-- Protea schema, version 5: the POPIA audit trail and the compliance registers (ADR 0008):
-- the hash-chained, append-only trail and its head, data-subject requests, retention
-- runs, key rotations and the breach register (s.22).
--
-- Nothing here refers to the vault's tables (version 4): subjects are named by their
-- pseudonymous uuid only. Times of the registers are timestamptz at whole seconds, written
-- from the gateway's clock (passed in); the trail keeps its bigint nanoseconds. No table
-- holds personal information in clear: texts are codes, an IP address, or a breach
-- description the gateway writes without any.
--
-- Privileges. The migration runs as the tables' owner, and an owner cannot be refused
-- anything by a REVOKE in its own migration (it can also disable triggers). Run the
-- gateway as another role, granted only what appending and reading need, for example:
--
--   REVOKE ALL ON audit_records, audit_head, dsars, breaches, retention_runs,
--       key_rotations FROM protea_gateway;
--   GRANT SELECT, INSERT ON audit_records, retention_runs, key_rotations TO protea_gateway;
--   GRANT SELECT, UPDATE ON audit_head TO protea_gateway;
--   GRANT SELECT, INSERT, UPDATE ON dsars, breaches TO protea_gateway;
--
-- so that the gateway's role can append to the trail but never UPDATE, DELETE or
-- TRUNCATE it, even with the triggers below disabled.

-- Refuses the change that fired it (row-level: UPDATE, DELETE; statement-level: TRUNCATE).
CREATE FUNCTION protea_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- One row per record: seq is contiguous from 1, hash = SHA-256(prev_hash || the record's
-- canonical bytes) (storage::audit::canonical_bytes, which covers every column but the
-- two hashes). The column rules are those of storage::audit::NewAuditRecord.
CREATE TABLE audit_records (
    seq        bigint PRIMARY KEY CHECK (seq >= 1),
    at_ns      bigint NOT NULL CHECK (at_ns >= 0),
    actor_kind text NOT NULL CHECK (actor_kind IN ('operator', 'tenant', 'anonymous', 'system')),
    actor_id   bigint CHECK (actor_id >= 0),
    role       text CHECK (role ~ '^[a-z0-9_.]{1,64}$'),
    action     text NOT NULL CHECK (action ~ '^[a-z0-9_.]{1,64}$'),
    tenant_id  bigint CHECK (tenant_id >= 0),
    subject_id uuid CHECK (subject_id <> '00000000-0000-0000-0000-000000000000'),
    purpose    text CHECK (purpose ~ '^[a-z0-9_.]{1,64}$'),
    outcome    text NOT NULL CHECK (outcome IN ('success', 'refused')),
    refusal    text CHECK (refusal ~ '^[a-z0-9_.]{1,64}$'),
    request_id text CHECK (request_id ~ '^[!-~]{1,64}$'),
    origin     text CHECK (origin ~ '^[0-9a-f.:]{2,45}$'),
    detail     bytea NOT NULL CHECK (length(detail) <= 4096),
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    CHECK ((actor_kind IN ('operator', 'tenant')) = (actor_id IS NOT NULL)),
    CHECK ((outcome = 'refused') = (refusal IS NOT NULL)),
    CHECK (subject_id IS NULL OR tenant_id IS NOT NULL)
);

-- A data subject's records, for an access request.
CREATE INDEX audit_records_about ON audit_records (tenant_id, subject_id, seq)
    WHERE subject_id IS NOT NULL;

CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER audit_records_no_truncate
    BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();

-- The chain's head: the last record's seq and hash (0 and 32 zero bytes while the trail is
-- empty). An append locks this row (FOR UPDATE), inserts its records after it and moves it,
-- in one transaction, so concurrent appenders from any number of processes take turns and
-- the chain never forks. It only ever moves forward.
CREATE TABLE audit_head (
    id   smallint PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL CHECK (seq >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION protea_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.seq <= OLD.seq THEN
        RAISE EXCEPTION 'audit_head only moves forward' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_head_forward
    BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION protea_audit_head_forward();
CREATE TRIGGER audit_head_kept
    BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER audit_head_no_truncate
    BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();

-- Data-subject requests (DsarKind), completed once: a time and an outcome code together.
CREATE TABLE dsars (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id),
    subject_id   uuid NOT NULL CHECK (subject_id <> '00000000-0000-0000-0000-000000000000'),
    kind         text NOT NULL CHECK (kind IN ('access', 'correction', 'deletion', 'objection')),
    received_at  timestamptz NOT NULL,
    completed_at timestamptz CHECK (completed_at >= received_at),
    outcome      text CHECK (outcome ~ '^[a-z0-9_.]{1,64}$'),
    CHECK ((completed_at IS NULL) = (outcome IS NULL))
);

CREATE INDEX dsars_open ON dsars (id) WHERE completed_at IS NULL;

-- The breach register (POPIA s.22): 1-32 data-category codes, and when the Information
-- Regulator and the data subjects were notified (each once, never before detection).
CREATE TABLE breaches (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detected_at           timestamptz NOT NULL,
    reported_by           bigint NOT NULL
        CONSTRAINT breaches_reporter_exists REFERENCES operators (id),
    description           text NOT NULL CHECK (octet_length(description) BETWEEN 1 AND 4096),
    categories            text[] NOT NULL CHECK (
        array_ndims(categories) = 1
        AND cardinality(categories) BETWEEN 1 AND 32
        AND array_position(categories, NULL) IS NULL
        AND array_to_string(categories, ',') ~ '^[a-z0-9_]{1,64}(,[a-z0-9_]{1,64})*$'),
    subjects_affected     bigint NOT NULL CHECK (subjects_affected >= 0),
    tenant_id             bigint CONSTRAINT breaches_tenant_exists REFERENCES tenants (id),
    regulator_notified_at timestamptz CHECK (regulator_notified_at >= detected_at),
    subjects_notified_at  timestamptz CHECK (subjects_notified_at >= detected_at)
);

-- Evidence for the Information Officer's report, appended by the retention job and the
-- key rotation job.
CREATE TABLE retention_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL CHECK (finished_at >= started_at),
    fields_purged   bigint NOT NULL CHECK (fields_purged >= 0),
    subjects_erased bigint NOT NULL CHECK (subjects_erased >= 0),
    outcome         text NOT NULL CHECK (outcome ~ '^[a-z0-9_.]{1,64}$')
);

CREATE TABLE key_rotations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rotated_at   timestamptz NOT NULL,
    kek_id       text NOT NULL CHECK (kek_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    from_version bigint NOT NULL CHECK (from_version BETWEEN 1 AND 4294967295),
    to_version   bigint NOT NULL CHECK (to_version BETWEEN 1 AND 4294967295),
    rewrapped    bigint NOT NULL CHECK (rewrapped >= 0),
    remaining    bigint NOT NULL CHECK (remaining >= 0),
    CHECK (to_version <> from_version)
);

-- Registers are evidence: rows are never deleted, and runs never change.
CREATE TRIGGER dsars_kept BEFORE DELETE ON dsars
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER breaches_kept BEFORE DELETE ON breaches
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER retention_runs_append_only BEFORE UPDATE OR DELETE ON retention_runs
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER key_rotations_append_only BEFORE UPDATE OR DELETE ON key_rotations
    FOR EACH ROW EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER dsars_no_truncate BEFORE TRUNCATE ON dsars
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER breaches_no_truncate BEFORE TRUNCATE ON breaches
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER retention_runs_no_truncate BEFORE TRUNCATE ON retention_runs
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();
CREATE TRIGGER key_rotations_no_truncate BEFORE TRUNCATE ON key_rotations
    FOR EACH STATEMENT EXECUTE FUNCTION protea_audit_append_only();
