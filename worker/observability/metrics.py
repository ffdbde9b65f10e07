"""Prometheus metrics of the worker, on prometheus-client's default registry.

Names follow Prometheus conventions: a ``worker_`` prefix, base units in the
name (``_seconds``), ``_total`` on counters. They are served at ``/metrics`` on
the worker's web server and listed, with what to watch, in
``docs/operations.md``. Each section below belongs to one concern; a section
only adds names.

Recording is batch-shaped: counters are incremented by the size of a batch,
never once per message, and per-request latencies go into
:class:`BatchHistogram`, which takes a whole batch of observations at once.

ClickHouse sink, what to watch, as an operator:

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

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from worker import __version__

#: Latency buckets in seconds, from a fast batch to a long backlog.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000)

# ``*_created`` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client


class HistogramSeries:
    """One label set of a :class:`BatchHistogram`."""

    __slots__ = ("_upper", "counts", "sum")

    def __init__(self, upper: Sequence[float]) -> None:
        self._upper = upper
        self.counts = [0] * (len(upper) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        """Add every value of ``values``: one bisect and one list increment each."""
        counts = self.counts
        upper = self._upper
        total = 0.0
        for value in values:
            # bisect_left puts a value equal to a bound into that bound's bucket (le).
            counts[bisect_left(upper, value)] += 1
            total += value
        self.sum += total


class BatchHistogram(Collector):
    """A Prometheus histogram that is observed a batch of values at a time.

    ``Histogram.observe`` takes a lock and walks the buckets for every value,
    about a microsecond each; a batch of requests would pay that per request.
    This one keeps plain counts per bucket and renders them when scraped. It
    is updated and scraped on the event loop's thread only, so it needs no lock.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._upper = tuple(sorted(float(bucket) for bucket in buckets))
        self._series: dict[tuple[str, ...], HistogramSeries] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> HistogramSeries:
        """The series of one label set, created on first use."""
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
            series = self._series[values] = HistogramSeries(self._upper)
        return series

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        # The buckets are plain decimals: repr() writes them as Prometheus' own client does.
        bounds = [repr(bound) for bound in self._upper] + ["+Inf"]
        for values, series in list(self._series.items()):
            cumulative = list(accumulate(series.counts))
            family.add_metric(list(values), list(zip(bounds, cumulative, strict=True)), series.sum)
        yield family


# ============================================================================ the request flow

BUILD_INFO = Gauge(
    "worker_build_info", "Always 1; the version label says which worker runs.", ["version"]
)
BUILD_INFO.labels(__version__).set(1)

EVENTS_IN = Counter(
    "worker_events_in_total",
    "Messages taken from a topic into the request flow.",
    ["topic"],
)
EVENTS_OUT = Counter(
    "worker_events_out_total",
    "Messages the broker confirmed, by topic (responses and dead letters).",
    ["topic"],
)
RESPONSES = Counter(
    "worker_responses_total",
    "Responses published, by status (ok or error).",
    ["status"],
)
ERRORS = Counter(
    "worker_errors_total",
    "Errors by stable code (docs/errors.md): each answered client error once per request, "
    "each server error once per failed attempt.",
    ["code"],
)
RETRIES = Counter(
    "worker_retries_total",
    "Failed attempts of a step of a batch (process, persist, publish) that are retried.",
    ["step", "code"],
)
DEAD_LETTERS = Counter(
    "worker_dead_letters_total",
    "Messages sent to the dead-letter topic, by reason (their dlq-reason header).",
    ["reason"],
)
BATCH_EVENTS = Histogram(
    "worker_batch_events",
    "Messages per batch handed through the flow.",
    buckets=BATCH_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "worker_stage_duration_seconds",
    "Time one batch spent in a stage of the flow; persist and publish include their retries.",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
END_TO_END_SECONDS = BatchHistogram(
    "worker_end_to_end_latency_seconds",
    "Per request, from its Kafka timestamp (when the producer created it) until its row was "
    "confirmed by ClickHouse (milestone=stored) or its response by the broker "
    "(milestone=published).",
    ["milestone"],
    LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "worker_events_in_flight",
    "Messages taken into the flow and not yet acknowledged (the batch being handled).",
)


# ============================================================================ consumer partitions

REBALANCES = Counter(
    "worker_rebalances_total",
    "Consumer group rebalances this worker took part in (the first join included).",
)
RECOVERY_SECONDS = Histogram(
    "worker_recovery_duration_seconds",
    "From the start of a rebalance until recovery completed and consumption resumed.",
    buckets=LATENCY_BUCKETS,
)
PARTITION_STALLS = Counter(
    "worker_partition_stalls_total",
    "Times a partition stalled: lag present and its committed offset unchanged for "
    "WORKER_STALL_TIMEOUT_S.",
    ["topic", "partition"],
)


#: Per-partition gauges (labels ``topic``, ``partition``), read when scraped.
PARTITION_GAUGES = {
    "worker_consumer_lag_messages": "Messages in the partition past the group's committed "
    "offset (end offset - committed offset).",
    "worker_consumer_end_offset": "The partition's end offset (the next offset to be written).",
    "worker_consumer_committed_offset": "The group's committed offset (the next offset to read).",
    "worker_consumer_last_commit_age_seconds": "Seconds since this worker last committed an "
    "offset of the partition (or since it was assigned). Grows on an idle partition too: alert "
    "on it together with lag.",
}
#: Per-worker gauges read when scraped.
WORKER_GAUGES = {
    "worker_assigned_partitions": "Partitions of the requests topic assigned to this worker.",
    "worker_stalled_partitions": "Assigned partitions that are stalled right now.",
}


def partition_families() -> dict[str, GaugeMetricFamily]:
    """Empty families of every gauge :data:`PARTITIONS` serves, by name."""
    families = {
        name: GaugeMetricFamily(name, doc, labels=("topic", "partition"))
        for name, doc in PARTITION_GAUGES.items()
    }
    families.update((name, GaugeMetricFamily(name, doc)) for name, doc in WORKER_GAUGES.items())
    return families


class PartitionSource(Collector):
    """Per-partition gauges, read at scrape time from the collector bound to it.

    The consumer's positions live in
    :class:`~worker.observability.partitions.PartitionTracker`; reading them when
    scraped keeps "seconds since the last commit" exact and costs the flow nothing.
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._source: Collector | None = None
        if registry is not None:
            registry.register(self)

    def bind(self, source: Collector | None) -> None:
        """Serve ``source``'s families from now on (one worker app per process)."""
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return list(partition_families().values())

    def collect(self) -> Iterable[Metric]:
        if self._source is None:
            return list(partition_families().values())
        return self._source.collect()


PARTITIONS = PartitionSource()


# ============================================================================ health

READY = Gauge("worker_ready", "1 when the worker is ready (see /health/ready), else 0.")
DEPENDENCY_UP = Gauge(
    "worker_dependency_up",
    "1 when the last check of a dependency (kafka, redis, clickhouse) succeeded, else 0.",
    ["dependency"],
)


# ----------------------------------------------------------------- ClickHouse sink

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
LAST_INSERT = Gauge(
    "worker_clickhouse_last_insert_timestamp_seconds",
    "When ClickHouse last confirmed an INSERT (Unix time): with responses published "
    "first, rows are stored up to CLICKHOUSE_INSERT_INTERVAL_MS and an insert later.",
    ["table"],
)
CLICKHOUSE_RETRIES = Counter(
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
