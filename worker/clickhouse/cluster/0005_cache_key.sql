-- Cluster variant of migrations/0005_cache_key.sql (see README.md beside this file).
-- The columns go to the local tables and to the Distributed table that routes to them.
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS cache_key String DEFAULT '';
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS cache_params String DEFAULT '' CODEC(ZSTD(3));
ALTER TABLE {database}.requests ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS cache_key String DEFAULT '';
ALTER TABLE {database}.requests ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS cache_params String DEFAULT '';

INSERT INTO {database}.schema_migrations (version, name) VALUES (5, 'cache_key');
