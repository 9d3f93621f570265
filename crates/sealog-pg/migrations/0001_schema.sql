-- Sealog's tables: two logs (canonical and quarantine) of immutable records, their
-- identities, index keys, tree nodes and signed checkpoints. Every one of them is
-- append-only: an UPDATE, DELETE or TRUNCATE raises whoever runs it, and the application
-- role is not even granted them. Subject keys and quarantined payloads are the only rows
-- that may go (erasure destroys keys, never records).

CREATE TABLE sealog_log_state (
    log TEXT PRIMARY KEY CHECK (log IN ('canonical', 'quarantine')),
    -- The next seq to assign: updated in the ingest transaction, so seqs are dense and in
    -- commit order across every server.
    next_seq BIGINT NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
    last_ingested_at TIMESTAMPTZ
);
INSERT INTO sealog_log_state (log) VALUES ('canonical'), ('quarantine');

CREATE TABLE sealog_records (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    record_id BYTEA NOT NULL CHECK (length(record_id) = 32),
    ingested_at TIMESTAMPTZ NOT NULL,
    event_ns BIGINT NOT NULL,
    -- RFC 9162 leaf hash of body.
    leaf BYTEA NOT NULL CHECK (length(leaf) = 32),
    -- The record's canonical bytes, exactly as its leaf covers them.
    body BYTEA NOT NULL,
    PRIMARY KEY (log, seq, ingested_at)
) PARTITION BY RANGE (ingested_at);
CREATE TABLE sealog_records_default PARTITION OF sealog_records DEFAULT;
CREATE INDEX ix_sealog_records_ingested ON sealog_records (log, ingested_at);
CREATE INDEX ix_sealog_records_event ON sealog_records (log, event_ns);

-- A unique index of a partitioned table must hold the partition key, so identities live in
-- their own table: one row per record, the dedupe lookup.
CREATE TABLE sealog_record_ids (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    record_id BYTEA NOT NULL CHECK (length(record_id) = 32),
    seq BIGINT NOT NULL,
    PRIMARY KEY (log, record_id),
    UNIQUE (log, seq)
);

-- The equality index: opaque 16-byte keys the ledger derives (axis and value hashed).
CREATE TABLE sealog_record_keys (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    key BYTEA NOT NULL CHECK (length(key) = 16),
    seq BIGINT NOT NULL,
    PRIMARY KEY (log, key, seq)
);

CREATE TABLE sealog_tree_nodes (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    level SMALLINT NOT NULL CHECK (level >= 0 AND level < 64),
    idx BIGINT NOT NULL CHECK (idx >= 0),
    hash BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (log, level, idx)
);

CREATE TABLE sealog_checkpoints (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    size BIGINT NOT NULL CHECK (size >= 0),
    -- The C2SP signed note.
    note TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (log, size)
);

-- Erasable: erasure destroys a data subject's key here; the records stay and verify.
CREATE TABLE sealog_subject_keys (
    tenant TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, pseudonym)
);

-- Erasable: a quarantined event's raw bytes, deleted with its data subject or by retention.
CREATE TABLE sealog_quarantine_payloads (
    payload_ref TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);

CREATE FUNCTION sealog_append_only() RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'sealog: % on % is forbidden: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sealog_records_append_only BEFORE UPDATE OR DELETE ON sealog_records
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_records_no_truncate BEFORE TRUNCATE ON sealog_records
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_record_ids_append_only BEFORE UPDATE OR DELETE ON sealog_record_ids
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_record_ids_no_truncate BEFORE TRUNCATE ON sealog_record_ids
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_record_keys_append_only BEFORE UPDATE OR DELETE ON sealog_record_keys
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_record_keys_no_truncate BEFORE TRUNCATE ON sealog_record_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_tree_nodes_append_only BEFORE UPDATE OR DELETE ON sealog_tree_nodes
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_tree_nodes_no_truncate BEFORE TRUNCATE ON sealog_tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_checkpoints_append_only BEFORE UPDATE OR DELETE ON sealog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_checkpoints_no_truncate BEFORE TRUNCATE ON sealog_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
-- The counter moves forward only.
CREATE FUNCTION sealog_log_state_forward() RETURNS TRIGGER AS $$
BEGIN
    IF NEW.log <> OLD.log OR NEW.next_seq < OLD.next_seq
       OR NEW.last_ingested_at < OLD.last_ingested_at THEN
        RAISE EXCEPTION 'sealog: the log state of % only moves forward', OLD.log
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER sealog_log_state_forward BEFORE UPDATE ON sealog_log_state
    FOR EACH ROW EXECUTE FUNCTION sealog_log_state_forward();
CREATE TRIGGER sealog_log_state_no_delete BEFORE DELETE ON sealog_log_state
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_log_state_no_truncate BEFORE TRUNCATE ON sealog_log_state
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();

-- The coordination pack's records, materialised in the ingest transaction for readers that
-- use plain SQL (seed 004 §3-§4: its columns, constraints, indexes and trigger, exactly).
-- audit_id is a UUIDv5 of the record id, so a replay never clashes.
CREATE TABLE coordination_audit_records (
    audit_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    envelope_id VARCHAR(100) NOT NULL,
    envelope_class VARCHAR(20) NOT NULL,
    decision VARCHAR(20) NOT NULL,
    reason TEXT NOT NULL,
    decision_timestamp TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    conflicting_envelope_id VARCHAR(100),
    preempting_envelope_id VARCHAR(100),
    active_envelopes_count INTEGER NOT NULL DEFAULT 0,
    tenant_id VARCHAR(100),
    CONSTRAINT audit_envelope_class_valid CHECK (
        envelope_class IN ('SAFETY', 'RELIABILITY', 'COST', 'PERFORMANCE')
    ),
    CONSTRAINT audit_decision_valid CHECK (
        decision IN ('APPLIED', 'REJECTED', 'PREEMPTED')
    )
);
CREATE INDEX ix_coord_audit_envelope_id ON coordination_audit_records(envelope_id);
CREATE INDEX ix_coord_audit_timestamp ON coordination_audit_records(decision_timestamp);
CREATE INDEX ix_coord_audit_class ON coordination_audit_records(envelope_class);
CREATE INDEX ix_coord_audit_decision ON coordination_audit_records(decision);
CREATE INDEX ix_coord_audit_tenant ON coordination_audit_records(tenant_id);

CREATE OR REPLACE FUNCTION prevent_audit_mutation()
RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'coordination_audit_records are immutable. Updates forbidden.';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER coordination_audit_immutable
    BEFORE UPDATE ON coordination_audit_records
    FOR EACH ROW
    EXECUTE FUNCTION prevent_audit_mutation();
-- Beyond the seed's policy of no DELETE in code: the database refuses it too.
CREATE TRIGGER coordination_audit_no_delete BEFORE DELETE ON coordination_audit_records
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER coordination_audit_no_truncate BEFORE TRUNCATE ON coordination_audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
