-- Index keys as `uuid` (16 bytes compared as one fixed-width value) instead of `bytea`, and
-- the key first in the primary key instead of the log's name: an insertion compares keys,
-- which almost always differ, rather than first the name every row of a log shares. Each
-- run's insertion costs about a fifth less; lookups give both columns and read the same
-- order (a key's runs of one log by last_seq). The 16 bytes are the ledger's key as they
-- were; `uuid_send(key)` gives them back as `bytea`.
CREATE TABLE sealog_key_runs_uuid (
    log TEXT NOT NULL CHECK (log IN ('canonical', 'quarantine')),
    key UUID NOT NULL,
    first_seq BIGINT NOT NULL CHECK (first_seq >= 0),
    last_seq BIGINT NOT NULL CHECK (last_seq >= first_seq),
    seqs BIGINT[] NOT NULL CHECK (
        cardinality(seqs) >= 1 AND seqs[1] = first_seq AND seqs[cardinality(seqs)] = last_seq
    ),
    PRIMARY KEY (key, log, last_seq)
);
INSERT INTO sealog_key_runs_uuid (log, key, first_seq, last_seq, seqs)
    SELECT log, encode(key, 'hex')::uuid, first_seq, last_seq, seqs FROM sealog_key_runs;
DROP TABLE sealog_key_runs;
ALTER TABLE sealog_key_runs_uuid RENAME TO sealog_key_runs;
ALTER INDEX sealog_key_runs_uuid_pkey RENAME TO sealog_key_runs_pkey;
CREATE TRIGGER sealog_key_runs_append_only BEFORE UPDATE OR DELETE ON sealog_key_runs
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_key_runs_no_truncate BEFORE TRUNCATE ON sealog_key_runs
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
