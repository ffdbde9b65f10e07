"""The ClickHouse sink's metrics: the names operators and dashboards rely on."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from worker.observability import metrics

EXPECTED = {
    "worker_clickhouse_insert_seconds": "histogram",
    "worker_clickhouse_insert_rows": "histogram",
    "worker_clickhouse_inserted_rows": "counter",
    "worker_clickhouse_retries": "counter",
    "worker_clickhouse_deduplicated_inserts": "counter",
    "worker_clickhouse_deduplicated_rows": "counter",
    "worker_clickhouse_buffered_rows": "gauge",
    "worker_clickhouse_pause_seconds": "gauge",
    "worker_clickhouse_insert_max_rows": "gauge",
    "worker_clickhouse_last_insert_timestamp_seconds": "gauge",
}


def test_the_sink_metrics_are_registered_with_their_types() -> None:
    assert metrics.INSERT_SECONDS is not None  # the module registers on import
    found = {
        family.name: family.type
        for family in REGISTRY.collect()
        if family.name.startswith("worker_clickhouse_")
    }
    assert found == EXPECTED


def test_the_exposition_uses_conventional_names_and_units() -> None:
    metrics.CLICKHOUSE_RETRIES.labels("unavailable")
    metrics.INSERT_SECONDS.labels("requests")
    text = generate_latest(REGISTRY).decode()
    assert "# TYPE worker_clickhouse_retries_total counter" in text
    assert 'worker_clickhouse_retries_total{reason="unavailable"}' in text
    assert "# TYPE worker_clickhouse_insert_seconds histogram" in text
    assert 'worker_clickhouse_insert_seconds_bucket{le="0.005",table="requests"}' in text
    assert "# TYPE worker_clickhouse_buffered_rows gauge" in text
