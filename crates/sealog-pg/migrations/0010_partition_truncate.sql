-- TRUNCATE of a partition fires no statement trigger of its partitioned parent, so each
-- partition of sealog_records carries the BEFORE TRUNCATE trigger itself (row triggers the
-- parent's own copies reach every partition already).
--
-- sealog_protect_partitions() puts it on every partition that lacks it; `sealog migrate`
-- runs it each time. Where the migrating role may create an event trigger (a superuser),
-- one runs it after every CREATE TABLE or ALTER TABLE (ATTACH PARTITION) that touches
-- sealog_records' partitions; elsewhere, make partitions with sealog_create_partition(), or
-- run `sealog migrate` after making one by hand: every command refuses a database with a
-- partition that lacks the trigger (docs/postgres.md).

CREATE FUNCTION sealog_protect_partitions() RETURNS INTEGER
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    part REGCLASS;
    added INTEGER := 0;
BEGIN
    FOR part IN
        SELECT t.relid FROM pg_partition_tree('sealog_records') t
        WHERE t.parentrelid IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM pg_trigger g
                          WHERE g.tgrelid = t.relid AND g.tgname = 'sealog_records_no_truncate')
    LOOP
        EXECUTE format('CREATE TRIGGER sealog_records_no_truncate BEFORE TRUNCATE ON %s
            FOR EACH STATEMENT EXECUTE FUNCTION sealog_append_only()', part);
        added := added + 1;
    END LOOP;
    RETURN added;
END;
$$;

-- A partition of sealog_records for ingest times [p_from, p_to), with its trigger, made where
-- the owner's own CREATE TABLE would make it.
CREATE FUNCTION sealog_create_partition(p_name TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF sealog_records FOR VALUES FROM (%L) TO (%L)',
        p_name, p_from, p_to);
    PERFORM sealog_protect_partitions();
END;
$$;

REVOKE ALL ON FUNCTION sealog_protect_partitions() FROM PUBLIC;
REVOKE ALL ON FUNCTION sealog_create_partition(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;

-- Only a command that touched sealog_records or one of its partitions protects them, so
-- another role's tables elsewhere in the database cost a look at the command's objects.
CREATE FUNCTION sealog_partitions_changed() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.classid = 'pg_class'::regclass
                 AND c.objid IN (SELECT relid FROM pg_partition_tree('sealog_records'))) THEN
        PERFORM sealog_protect_partitions();
    END IF;
END;
$$;

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER sealog_partitions_changed ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
            EXECUTE FUNCTION sealog_partitions_changed();
    END IF;
END;
$$;

SELECT sealog_protect_partitions();
