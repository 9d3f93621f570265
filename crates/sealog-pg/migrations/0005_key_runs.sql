-- Postings as runs: one row per (key, commit group) holding that group's seqs in order, in
-- place of one row per (key, seq). A group of a thousand events shares its low-cardinality
-- keys (tenant, type, scope, ...), so the index takes a row per distinct key per group, not a
-- row per posting: the B-tree insertions were most of an append's cost.
--
-- Runs of one key never overlap (each group holds a contiguous range of seqs under the log's
-- counter row), so ordering them by last_seq orders their seqs too, and a seq's run is the
-- first whose last_seq is not below it.
CREATE TABLE sealog_key_runs (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    key BYTEA NOT NULL CHECK (length(key) = 16),
    first_seq BIGINT NOT NULL CHECK (first_seq >= 0),
    last_seq BIGINT NOT NULL CHECK (last_seq >= first_seq),
    seqs BIGINT[] NOT NULL CHECK (
        cardinality(seqs) >= 1 AND seqs[1] = first_seq AND seqs[cardinality(seqs)] = last_seq
    ),
    PRIMARY KEY (log, key, last_seq)
);
CREATE TRIGGER sealog_key_runs_append_only BEFORE UPDATE OR DELETE ON sealog_key_runs
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_key_runs_no_truncate BEFORE TRUNCATE ON sealog_key_runs
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();

-- Every posting of a log written before this migration becomes a run of one.
INSERT INTO sealog_key_runs (log, key, first_seq, last_seq, seqs)
    SELECT log, key, seq, seq, ARRAY[seq] FROM sealog_record_keys;
DROP TABLE sealog_record_keys;
