-- A minmax index on source_offset: the sink asks which offsets of a partition the
-- table holds when a batch reaches down to the highest one stored (a batch
-- consumed again, or a record handed over after later ones around a rebalance).
-- The sort key (tenant, request_id) does not help there; each part covers a
-- narrow range of offsets, so the index skips nearly all of them.
ALTER TABLE {database}.requests ADD INDEX IF NOT EXISTS source_offset_minmax source_offset TYPE minmax GRANULARITY 1;
ALTER TABLE {database}.requests MATERIALIZE INDEX source_offset_minmax;
