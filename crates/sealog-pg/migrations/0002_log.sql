-- What a log needs beyond its records: the history of its signing keys, the checkpoints
-- witnesses cosigned, and retention's stubs, written by one sanctioned function.

-- Every key a log has signed with, as events in order (a key's state is read from them).
-- The database keeps verifier keys only: the private key never enters it (docs/postgres.md).
CREATE TABLE sealog_log_keys (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    n INTEGER NOT NULL CHECK (n >= 0),
    event TEXT NOT NULL CHECK (event IN ('created', 'prepared', 'abandoned', 'finished')),
    vkey TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (log, n)
);

-- Checkpoints with witnesses' cosignatures, as received; the newest per witness is read
-- from them.
CREATE TABLE sealog_cosigned (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    n BIGINT GENERATED ALWAYS AS IDENTITY,
    size BIGINT NOT NULL CHECK (size >= 0),
    note TEXT NOT NULL,
    PRIMARY KEY (log, n)
);

-- Retention: one row per pruned record, written only by sealog_prune, with what its stub
-- keeps (the link to the record it superseded and the index keys it stays found by).
CREATE TABLE sealog_pruned (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    link BYTEA CHECK (link IS NULL OR length(link) = 32),
    key BYTEA CHECK (key IS NULL OR length(key) = 16),
    kept BYTEA[] NOT NULL,
    pruned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    pruned_by TEXT NOT NULL,
    PRIMARY KEY (log, seq)
);

CREATE TRIGGER sealog_log_keys_append_only BEFORE UPDATE OR DELETE ON sealog_log_keys
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_log_keys_no_truncate BEFORE TRUNCATE ON sealog_log_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_cosigned_append_only BEFORE UPDATE OR DELETE ON sealog_cosigned
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_cosigned_no_truncate BEFORE TRUNCATE ON sealog_cosigned
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_pruned_append_only BEFORE UPDATE OR DELETE ON sealog_pruned
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_pruned_no_truncate BEFORE TRUNCATE ON sealog_pruned
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();

-- A record's row changes in one way only: sealog_prune empties its body, leaving its seq,
-- id, times and leaf hash (so every proof still holds). Anything else raises, for every
-- role; the application role is not granted UPDATE at all.
CREATE FUNCTION sealog_records_guard() RETURNS TRIGGER AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('sealog.pruning', true) = OLD.log || ':' || OLD.seq
       AND NEW.log = OLD.log AND NEW.seq = OLD.seq AND NEW.record_id = OLD.record_id
       AND NEW.ingested_at = OLD.ingested_at AND NEW.event_ns = OLD.event_ns
       AND NEW.leaf = OLD.leaf AND length(NEW.body) = 0
       AND EXISTS (SELECT 1 FROM sealog_pruned p WHERE p.log = OLD.log AND p.seq = OLD.seq) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'sealog: % on % is forbidden: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER sealog_records_append_only ON sealog_records;
CREATE TRIGGER sealog_records_append_only BEFORE UPDATE OR DELETE ON sealog_records
    FOR EACH ROW EXECUTE FUNCTION sealog_records_guard();

-- The one sanctioned change to a record: records who pruned it and what its stub keeps, then
-- empties its body. Returns false for a record already pruned (pruning twice changes nothing).
CREATE FUNCTION sealog_prune(p_log TEXT, p_seq BIGINT, p_link BYTEA, p_key BYTEA, p_kept BYTEA[])
RETURNS BOOLEAN
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sealog_records WHERE log = p_log AND seq = p_seq) THEN
        RAISE EXCEPTION 'sealog: the % log has no record %', p_log, p_seq
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO sealog_pruned (log, seq, link, key, kept, pruned_by)
        VALUES (p_log, p_seq, p_link, p_key, p_kept, session_user)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM set_config('sealog.pruning', p_log || ':' || p_seq, true);
    UPDATE sealog_records SET body = ''::bytea WHERE log = p_log AND seq = p_seq;
    PERFORM set_config('sealog.pruning', '', true);
    RETURN true;
END;
$$;
REVOKE ALL ON FUNCTION sealog_prune(TEXT, BIGINT, BYTEA, BYTEA, BYTEA[]) FROM PUBLIC;
