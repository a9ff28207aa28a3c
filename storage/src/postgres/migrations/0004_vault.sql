-- Protea schema, version 4: the POPIA vault (ADR 0008). Data subjects with their wrapped
-- data keys, sealed field values and blind indexes; consent history; and an index of the
-- ledger accounts a subject owns, for access requests.
--
-- The database never holds personal information or a key in clear: data keys arrive
-- wrapped by the KEK, field values sealed under the data key, and blind indexes as keyed
-- HMACs, all computed by the gateway. Times are timestamptz at whole seconds from the
-- gateway's clock, as in version 3. Names are COLLATE "C" so that every order is byte
-- order, as on the embedded store.
--
-- Erasure deletes a subject's key, field and index rows (DELETE, not UPDATE, so no live
-- row keeps the bytes) and keeps its `subjects` row as a tombstone. Deleted tuples stay in
-- the table files until VACUUM (autovacuum) reclaims them, and backups keep them until
-- they expire.

-- Subjects and tombstones: no key or value lives in this table, so the UPDATE that marks
-- an erasure leaves no personal information in a dead tuple. Rows are never deleted.
CREATE TABLE subjects (
    tenant_id  bigint NOT NULL CONSTRAINT subjects_tenant_fkey REFERENCES tenants (id),
    id         uuid NOT NULL CHECK (id <> '00000000-0000-0000-0000-000000000000'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    erased_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- A live subject's wrapped data key: one row, deleted at erasure.
CREATE TABLE subject_keys (
    tenant_id   bigint NOT NULL,
    subject_id  uuid NOT NULL,
    kek_version bigint NOT NULL CHECK (kek_version BETWEEN 0 AND 4294967295),
    wrapped_key bytea NOT NULL CHECK (length(wrapped_key) BETWEEN 1 AND 1024),
    PRIMARY KEY (tenant_id, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id)
);

-- The KEK rotation's scan: keys wrapped by an old version, in a stable order.
CREATE INDEX subject_keys_by_version ON subject_keys (kek_version, tenant_id, subject_id);

-- Sealed field values; a subject holds at most 64 (storage counts them under the subject
-- row's lock).
CREATE TABLE subject_fields (
    tenant_id  bigint NOT NULL,
    subject_id uuid NOT NULL,
    name       text COLLATE "C" NOT NULL CHECK (name ~ '^[a-z0-9_]{1,64}$'),
    sealed     bytea NOT NULL CHECK (length(sealed) BETWEEN 1 AND 8192),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, name),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id)
);

-- The retention job's scan: per field, oldest first.
CREATE INDEX subject_fields_by_age ON subject_fields (name, updated_at, tenant_id, subject_id);

-- Blind indexes: each names a field the subject holds, and goes with its value.
CREATE TABLE subject_indexes (
    tenant_id  bigint NOT NULL,
    subject_id uuid NOT NULL,
    field      text COLLATE "C" NOT NULL CHECK (field ~ '^[a-z0-9_]{1,64}$'),
    hmac       bytea NOT NULL CHECK (length(hmac) = 16),
    PRIMARY KEY (tenant_id, subject_id, field, hmac),
    CONSTRAINT subject_indexes_field_fkey FOREIGN KEY (tenant_id, subject_id, field)
        REFERENCES subject_fields (tenant_id, subject_id, name) ON DELETE CASCADE
);

-- Look-ups by value; several subjects may share one.
CREATE INDEX subject_indexes_by_value ON subject_indexes (tenant_id, field, hmac, subject_id);

-- Consent history: versions 1, 2, 3, ... per (tenant, subject, purpose), appended under
-- the subject row's lock, never changed or deleted. A record names no personal
-- information (evidence is a reference such as a document id), so erasure keeps it.
CREATE TABLE consents (
    tenant_id  bigint NOT NULL,
    subject_id uuid NOT NULL,
    purpose    text COLLATE "C" NOT NULL CHECK (purpose ~ '^[a-z0-9_]{1,64}$'),
    version    bigint NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    granted    boolean NOT NULL,
    channel    text COLLATE "C" NOT NULL CHECK (channel ~ '^[a-z0-9_]{1,32}$'),
    evidence   text COLLATE "C" NOT NULL
        CHECK (octet_length(evidence) <= 256 AND evidence !~ '[[:cntrl:]]'),
    at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject_id, purpose, version),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id)
);

CREATE TRIGGER consents_are_immutable
    BEFORE UPDATE OR DELETE ON consents
    FOR EACH ROW EXECUTE FUNCTION protea_refuse_change();

CREATE TRIGGER consents_are_not_truncated
    BEFORE TRUNCATE ON consents
    FOR EACH STATEMENT EXECUTE FUNCTION protea_refuse_change();

-- A subject's accounts, for access requests. Partial: accounts without an owner (most of
-- them) are not indexed, so creating one costs nothing more; balance updates change no
-- indexed column and stay HOT. Building it blocks flushes while it runs, once.
CREATE INDEX accounts_by_subject ON accounts (tenant_id, subject_id, id)
    WHERE subject_id IS NOT NULL;
