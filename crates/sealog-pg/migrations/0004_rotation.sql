-- A key rotation signs the newest checkpoint again with both keys: one log may then have two
-- notes of one size, so checkpoints are numbered in the order they were kept.
ALTER TABLE sealog_checkpoints DROP CONSTRAINT sealog_checkpoints_pkey;
ALTER TABLE sealog_checkpoints ADD COLUMN n BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE sealog_checkpoints ADD PRIMARY KEY (log, n);
CREATE INDEX ix_sealog_checkpoints_size ON sealog_checkpoints (log, size);
