-- Usage analytics per minute, tenant and operation, kept up to date by
-- materialized views on every insert into requests.
--
-- The sink inserts with deduplicate_blocks_in_dependent_materialized_views = 1,
-- and the view tables carry non_replicated_deduplication_window themselves: an
-- insert that ClickHouse deduplicates in requests is then deduplicated here too
-- (without the window on these tables it would be counted twice).
--
-- Minutes are those of received_at (when the worker consumed the request).
-- Query with sum() over the counters and quantilesMerge(0.5, 0.9, 0.99)(latency_ms)
-- grouped by what you need: rows of one key are merged in the background, not
-- at insert. See docs/analytics.md.
CREATE TABLE IF NOT EXISTS {database}.usage_per_minute
(
    minute       DateTime('UTC'),
    tenant       LowCardinality(String),
    operation    LowCardinality(String),
    requests     SimpleAggregateFunction(sum, UInt64),
    errors       SimpleAggregateFunction(sum, UInt64),
    cache_hits   SimpleAggregateFunction(sum, UInt64),
    cache_misses SimpleAggregateFunction(sum, UInt64),
    latency_ms   AggregateFunction(quantiles(0.5, 0.9, 0.99), Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (tenant, operation, minute)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.usage_per_minute_mv
TO {database}.usage_per_minute
AS SELECT
    toStartOfMinute(received_at) AS minute,
    tenant,
    operation,
    count() AS requests,
    countIf(status = 'error') AS errors,
    countIf(cache_status = 'hit') AS cache_hits,
    countIf(cache_status = 'miss') AS cache_misses,
    quantilesState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms
FROM {database}.requests
GROUP BY minute, tenant, operation;

CREATE TABLE IF NOT EXISTS {database}.errors_per_minute
(
    minute     DateTime('UTC'),
    tenant     LowCardinality(String),
    operation  LowCardinality(String),
    error_code LowCardinality(String),
    errors     UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (tenant, error_code, operation, minute)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.errors_per_minute_mv
TO {database}.errors_per_minute
AS SELECT
    toStartOfMinute(received_at) AS minute,
    tenant,
    operation,
    error_code,
    count() AS errors
FROM {database}.requests
WHERE status = 'error'
GROUP BY minute, tenant, operation, error_code;

-- Rows stored before this migration, once: the guard keeps a re-run (after a
-- failure half-way) from counting them twice. FINAL: each request once.
INSERT INTO {database}.usage_per_minute
SELECT
    toStartOfMinute(received_at) AS minute,
    tenant,
    operation,
    count(),
    countIf(status = 'error'),
    countIf(cache_status = 'hit'),
    countIf(cache_status = 'miss'),
    quantilesState(0.5, 0.9, 0.99)(latency_ms)
FROM {database}.requests FINAL
WHERE (SELECT count() FROM {database}.usage_per_minute) = 0
GROUP BY minute, tenant, operation;

INSERT INTO {database}.errors_per_minute
SELECT toStartOfMinute(received_at) AS minute, tenant, operation, error_code, count()
FROM {database}.requests FINAL
WHERE status = 'error' AND (SELECT count() FROM {database}.errors_per_minute) = 0
GROUP BY minute, tenant, operation, error_code;
