-- Cluster variant of migrations/0004_usage_per_minute.sql (see README.md beside this file).
-- Each node aggregates the rows inserted into its own requests_local; analysts
-- query the Distributed tables, which merge the states of every shard.
CREATE TABLE IF NOT EXISTS {database}.usage_per_minute_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedAggregatingMergeTree(
    '/clickhouse/tables/{shard}/{database}/usage_per_minute_local', '{replica}')
PARTITION BY toYYYYMMDD(minute)
ORDER BY (tenant, operation, minute)
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.usage_per_minute_mv ON CLUSTER '{cluster}'
TO {database}.usage_per_minute_local
AS SELECT
    toStartOfMinute(received_at) AS minute,
    tenant,
    operation,
    count() AS requests,
    countIf(status = 'error') AS errors,
    countIf(cache_status = 'hit') AS cache_hits,
    countIf(cache_status = 'miss') AS cache_misses,
    quantilesState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms
FROM {database}.requests_local
GROUP BY minute, tenant, operation;

CREATE TABLE IF NOT EXISTS {database}.usage_per_minute ON CLUSTER '{cluster}'
AS {database}.usage_per_minute_local
ENGINE = Distributed('{cluster}', '{database}', 'usage_per_minute_local', rand());

CREATE TABLE IF NOT EXISTS {database}.errors_per_minute_local ON CLUSTER '{cluster}'
(
    minute     DateTime('UTC'),
    tenant     LowCardinality(String),
    operation  LowCardinality(String),
    error_code LowCardinality(String),
    errors     UInt64
)
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{shard}/{database}/errors_per_minute_local', '{replica}')
PARTITION BY toYYYYMMDD(minute)
ORDER BY (tenant, error_code, operation, minute)
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.errors_per_minute_mv ON CLUSTER '{cluster}'
TO {database}.errors_per_minute_local
AS SELECT
    toStartOfMinute(received_at) AS minute,
    tenant,
    operation,
    error_code,
    count() AS errors
FROM {database}.requests_local
WHERE status = 'error'
GROUP BY minute, tenant, operation, error_code;

CREATE TABLE IF NOT EXISTS {database}.errors_per_minute ON CLUSTER '{cluster}'
AS {database}.errors_per_minute_local
ENGINE = Distributed('{cluster}', '{database}', 'errors_per_minute_local', rand());

INSERT INTO {database}.schema_migrations (version, name) VALUES (4, 'usage_per_minute');
