-- One record per seq, and a counter that moves only over records that are there.
--
-- The partitioned table's primary key must hold its partition key, so (log, seq, ingested_at)
-- alone takes a second row for a seq under another ingest time; and a counter moved past rows
-- never inserted leaves seqs that every later append would skip and every read find missing.
-- Both are refused here, for every role (a superuser who switches triggers off is left to
-- `sealog verify`), by what the ingest transaction already does: it moves the counter over the
-- seqs it assigns, then inserts one record at each. The counter row remembers which
-- transaction moved it last and where that transaction first found it, so a record goes in
-- only at a seq its own transaction assigned; at commit, each move of the counter must be
-- covered by exactly one record per seq. Neither check reads more than the rows the
-- transaction wrote: the records' check one statement-level trigger over the rows inserted,
-- the counter's one index range scan per commit.

ALTER TABLE sealog_log_state
    ADD COLUMN assigned_by XID8,
    ADD COLUMN assigned_from BIGINT;

CREATE OR REPLACE FUNCTION sealog_log_state_forward() RETURNS TRIGGER AS $$
BEGIN
    IF NEW.log <> OLD.log OR NEW.next_seq < OLD.next_seq
       OR NEW.last_ingested_at < OLD.last_ingested_at THEN
        RAISE EXCEPTION 'sealog: the log state of % only moves forward', OLD.log
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Set here whatever the UPDATE said of them: they are what the records' check trusts.
    NEW.assigned_by := pg_current_xact_id();
    NEW.assigned_from := CASE WHEN OLD.assigned_by = NEW.assigned_by
        THEN OLD.assigned_from ELSE OLD.next_seq END;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION sealog_records_assigned() RETURNS TRIGGER AS $$
DECLARE
    got RECORD;
    state RECORD;
BEGIN
    -- One pass over the rows inserted, reading their log and seq only. A seq given twice is
    -- left to the check at commit, which counts each seq the counter moved over.
    SELECT min(n.log) AS log, max(n.log) AS other, min(n.seq) AS lowest, max(n.seq) AS highest
        INTO got FROM inserted n;
    IF got.log IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT s.assigned_by, s.assigned_from, s.next_seq INTO state
        FROM sealog_log_state s WHERE s.log = got.log;
    IF got.log <> got.other OR state.assigned_by IS DISTINCT FROM pg_current_xact_id()
       OR got.lowest < state.assigned_from OR got.highest >= state.next_seq THEN
        RAISE EXCEPTION 'sealog: records % to % of the % log were not all assigned by this transaction: a record goes in only at a seq its transaction moved the log''s counter over', got.lowest, got.highest, got.log
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Statement-level, over the rows inserted: one call per append rather than one per record
-- (a row-level trigger doubled the insert's time in a group of a thousand; this adds about a
-- fifteenth to it).
CREATE TRIGGER sealog_records_assigned AFTER INSERT ON sealog_records
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_records_assigned();

CREATE FUNCTION sealog_log_state_covered() RETURNS TRIGGER AS $$
DECLARE
    found_rows BIGINT;
    found_seqs BIGINT;
BEGIN
    SELECT count(*), count(DISTINCT seq) INTO found_rows, found_seqs FROM sealog_records
        WHERE log = NEW.log AND seq >= OLD.next_seq AND seq < NEW.next_seq;
    IF found_rows <> NEW.next_seq - OLD.next_seq OR found_seqs <> found_rows THEN
        RAISE EXCEPTION 'sealog: the % log''s counter moved from % to % over % records: it moves only over records inserted, one per seq', NEW.log, OLD.next_seq, NEW.next_seq, found_rows
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- At commit, when the transaction's records are in.
CREATE CONSTRAINT TRIGGER sealog_log_state_covered AFTER UPDATE ON sealog_log_state
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.next_seq <> OLD.next_seq)
    EXECUTE FUNCTION sealog_log_state_covered();
