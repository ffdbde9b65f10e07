-- One row per message the client layer rejected (undecodable, invalid, unknown
-- operation): the reason, the ids it claimed, its source position and the first
-- 64 KiB of its original bytes (the dead-letter topic keeps all of them).
-- Written before the slice's requests rows, with its own deduplication token;
-- the ReplacingMergeTree key (a reason is a pure function of the bytes at a
-- position) is the backstop against duplicates.
CREATE TABLE IF NOT EXISTS {database}.dead_letters
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (reason, source_topic, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;
