-- Cluster variant of migrations/0003_requests_lookups.sql (see README.md beside this file).
-- On the local tables: the Distributed table only routes.
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild', ttl_only_drop_parts = 1;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD PROJECTION IF NOT EXISTS source_positions
(
    SELECT source_topic, source_partition, max(source_offset)
    GROUP BY source_topic, source_partition
);
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    MATERIALIZE PROJECTION source_positions;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD INDEX IF NOT EXISTS request_id_bloom request_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}'
    ADD INDEX IF NOT EXISTS correlation_id_bloom correlation_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}' MATERIALIZE INDEX request_id_bloom;
ALTER TABLE {database}.requests_local ON CLUSTER '{cluster}' MATERIALIZE INDEX correlation_id_bloom;

INSERT INTO {database}.schema_migrations (version, name) VALUES (3, 'requests_lookups');
