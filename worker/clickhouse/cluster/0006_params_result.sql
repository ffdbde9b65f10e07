-- Cluster variant of migrations/0006_params_result.sql (see README.md beside this file).
-- The columns go to the local tables and to the Distributed table that routes to them.
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS params String DEFAULT '' CODEC(ZSTD(3));
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS result String DEFAULT '' CODEC(ZSTD(3));
ALTER TABLE {database}.requests ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS params String DEFAULT '';
ALTER TABLE {database}.requests ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS result String DEFAULT '';

INSERT INTO {database}.schema_migrations (version, name) VALUES (6, 'params_result');
