-- What makes the hot reads of the requests table cheap.
--
-- source_positions: the highest stored offset per source topic-partition, which
-- the sink reads at start-up, after every rebalance and after a failed insert
-- (to skip what is already stored). An aggregate projection lives inside each
-- part, so it is written atomically with the rows and the read touches a few
-- bytes per part instead of two columns of the whole table. ReplacingMergeTree
-- only allows projections that are rebuilt when merges drop duplicates.
--
-- Bloom filters: analysts look requests up by request_id or correlation_id
-- without knowing the tenant (the first column of the sort key).
ALTER TABLE {database}.requests MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild', ttl_only_drop_parts = 1;
ALTER TABLE {database}.requests ADD PROJECTION IF NOT EXISTS source_positions
(
    SELECT source_topic, source_partition, max(source_offset)
    GROUP BY source_topic, source_partition
);
ALTER TABLE {database}.requests MATERIALIZE PROJECTION source_positions;
ALTER TABLE {database}.requests ADD INDEX IF NOT EXISTS request_id_bloom request_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {database}.requests ADD INDEX IF NOT EXISTS correlation_id_bloom correlation_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {database}.requests MATERIALIZE INDEX request_id_bloom;
ALTER TABLE {database}.requests MATERIALIZE INDEX correlation_id_bloom;
