-- One row per consumed request, whatever its outcome.
-- ReplacingMergeTree on (tenant, request_id) is the backstop against duplicates;
-- insert deduplication tokens and the high-water skip are the first lines.
CREATE TABLE IF NOT EXISTS {database}.requests
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
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (tenant, request_id)
SETTINGS non_replicated_deduplication_window = 10000;
