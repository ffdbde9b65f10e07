-- Cluster variant of migrations/0001_requests.sql (see README.md beside this file).
-- Run once per cluster, as a user allowed DDL ON CLUSTER; render it with
-- `worker db cluster-sql --cluster NAME` so {database} and {cluster} are filled in.
-- {shard} and {replica} are ClickHouse macros, set in each server's configuration.
CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER '{cluster}';

-- Replicated to every node of every shard: one small table, one history.
CREATE TABLE IF NOT EXISTS {database}.schema_migrations ON CLUSTER '{cluster}'
(
    version    UInt32,
    name       String,
    applied_at DateTime DEFAULT now()
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/schema_migrations', '{replica}')
ORDER BY version;

-- The rows live in requests_local on each shard, replicated within the shard;
-- deduplication tokens are kept in Keeper, so a retried chunk is dropped by any
-- replica of its shard (no non_replicated_deduplication_window needed).
CREATE TABLE IF NOT EXISTS {database}.requests_local ON CLUSTER '{cluster}'
(
    request_id       String,
    tenant           LowCardinality(String),
    operation        LowCardinality(String),
    status           LowCardinality(String),
    error_code       LowCardinality(String),
    correlation_id   String,
    created_at       DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    processed_at     DateTime64(3, 'UTC'),
    latency_ms       Float32,
    cache_status     LowCardinality(String),
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64
)
ENGINE = ReplicatedReplacingMergeTree(
    '/clickhouse/tables/{shard}/{database}/requests_local', '{replica}', processed_at)
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (tenant, request_id);

-- What the worker and analysts use. Sharded by (tenant, request_id), so that
-- every copy of a request lands on one shard, where ReplacingMergeTree (and
-- FINAL) can merge duplicates.
CREATE TABLE IF NOT EXISTS {database}.requests ON CLUSTER '{cluster}'
AS {database}.requests_local
ENGINE = Distributed('{cluster}', '{database}', 'requests_local', cityHash64(tenant, request_id));

INSERT INTO {database}.schema_migrations (version, name) VALUES (1, 'requests');
