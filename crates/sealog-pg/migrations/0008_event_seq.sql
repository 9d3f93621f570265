-- The event-time index carries each record's seq, so an event window's records of a seq
-- range are counted and read from the index alone (an index-only scan where autovacuum has
-- marked the pages visible), then sorted into log order; without it every entry of the
-- window cost a visit to its record's row. It replaces the index on (log, event_ns).
CREATE INDEX ix_sealog_records_event_seq ON sealog_records (log, event_ns) INCLUDE (seq);
DROP INDEX ix_sealog_records_event;
