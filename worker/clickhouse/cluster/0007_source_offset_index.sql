-- Cluster variant of migrations/0007_source_offset_index.sql (see README.md beside this file).
-- On the local tables: the Distributed table only routes.
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD INDEX IF NOT EXISTS source_offset_minmax source_offset TYPE minmax GRANULARITY 1;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    MATERIALIZE INDEX source_offset_minmax;

INSERT INTO {database}.schema_migrations (version, name) VALUES (7, 'source_offset_index');
