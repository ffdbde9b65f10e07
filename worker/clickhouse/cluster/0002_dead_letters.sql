-- Cluster variant of migrations/0002_dead_letters.sql (see README.md beside this file).
CREATE TABLE IF NOT EXISTS {database}.dead_letters_local ON CLUSTER '{cluster}'
(
    received_at      DateTime64(3, 'UTC'),
    reason           LowCardinality(String),
    message          String,
    request_id       String,
    tenant           LowCardinality(String),
    operation        LowCardinality(String),
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    key              String,
    payload          String,
    payload_bytes    UInt32
)
ENGINE = ReplicatedReplacingMergeTree(
    '/clickhouse/tables/{shard}/{database}/dead_letters_local', '{replica}')
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (reason, source_topic, source_partition, source_offset)
SETTINGS ttl_only_drop_parts = 1;

-- Sharded by source position: a redelivered dead letter meets its first copy.
CREATE TABLE IF NOT EXISTS {database}.dead_letters ON CLUSTER '{cluster}'
AS {database}.dead_letters_local
ENGINE = Distributed('{cluster}', '{database}', 'dead_letters_local',
    cityHash64(source_topic, source_partition, source_offset));

INSERT INTO {database}.schema_migrations (version, name) VALUES (2, 'dead_letters');
