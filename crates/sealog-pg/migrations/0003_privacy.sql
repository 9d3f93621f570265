-- Personal data in the database: which master key the data subjects' keys are wrapped by,
-- and which subjects were erased (their key rows deleted; the mark keeps a new key from
-- ever being made for them). The master key itself never enters the database.

CREATE TABLE sealog_privacy (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    -- A MAC of the master key: a server with another master key is refused.
    master_check BYTEA NOT NULL CHECK (length(master_check) = 16),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sealog_erased_subjects (
    tenant TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    erased_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, pseudonym)
);

CREATE TRIGGER sealog_privacy_append_only BEFORE UPDATE OR DELETE ON sealog_privacy
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_privacy_no_truncate BEFORE TRUNCATE ON sealog_privacy
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_erased_subjects_append_only BEFORE UPDATE OR DELETE ON sealog_erased_subjects
    FOR EACH ROW EXECUTE FUNCTION sealog_append_only();
CREATE TRIGGER sealog_erased_subjects_no_truncate BEFORE TRUNCATE ON sealog_erased_subjects
    FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only();
