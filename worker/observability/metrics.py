"""Prometheus metrics of the ClickHouse sink, on prometheus-client's default registry.

Names follow Prometheus conventions: a ``worker_clickhouse_`` prefix, base units
in the name (``_seconds``, ``_rows``), ``_total`` on counters. The ``table``
label is the ClickHouse table written (``requests`` or ``dead_letters``); a
retry is of a whole chunk (both tables), so retries carry only a ``reason``.

What to watch, as an operator:

- ``worker_clickhouse_buffered_rows`` above zero for long: ClickHouse is slow or
  down; the worker holds these rows, has stopped taking new batches, and Kafka
  consumer lag grows until ClickHouse confirms.
- ``worker_clickhouse_retries_total`` rising: inserts fail and are retried
  (``reason`` says whether ClickHouse was unreachable or overloaded).
- ``worker_clickhouse_pause_seconds`` above zero: ClickHouse answered with an
  overload error (such as TOO_MANY_PARTS) and inserts are spaced out.
- ``worker_clickhouse_deduplicated_inserts_total``: slices found already stored
  (after a retry, a crash or a rebalance) and not written again.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INSERT_SECONDS = Histogram(
    "worker_clickhouse_insert_seconds",
    "Time from sending an INSERT to ClickHouse confirming it (flush latency).",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INSERT_ROWS = Histogram(
    "worker_clickhouse_insert_rows",
    "Rows per confirmed INSERT (the insert batch size).",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000),
)
INSERTED_ROWS = Counter(
    "worker_clickhouse_inserted_rows_total",
    "Rows ClickHouse confirmed.",
    ["table"],
)
RETRIES = Counter(
    "worker_clickhouse_retries_total",
    "Failed insert attempts of a chunk, each retried, by reason (unavailable, overloaded).",
    ["reason"],
)
DEDUPLICATED_INSERTS = Counter(
    "worker_clickhouse_deduplicated_inserts_total",
    "Insert chunks not sent because ClickHouse already held them (redelivery or retry).",
    ["table"],
)
DEDUPLICATED_ROWS = Counter(
    "worker_clickhouse_deduplicated_rows_total",
    "Rows not sent because ClickHouse already held their source offsets.",
    ["table"],
)
BUFFERED_ROWS = Gauge(
    "worker_clickhouse_buffered_rows",
    "Rows handed to the sink and not yet confirmed by ClickHouse (the sink's buffer).",
)
PAUSE_SECONDS = Gauge(
    "worker_clickhouse_pause_seconds",
    "Current minimum interval between inserts, raised by ClickHouse overload errors.",
)
INSERT_MAX_ROWS = Gauge(
    "worker_clickhouse_insert_max_rows",
    "Current largest INSERT, lowered by memory and timeout errors and restored on success.",
)
