"""The flow's observer in the worker: each batch's facts become Prometheus metrics.

Everything is counted per batch: a ``Counter`` is incremented once per label
value with the batch's count, and the per-request end-to-end latencies go into
a :class:`~worker.observability.metrics.BatchHistogram` in one call. Labelled
children are cached, so a batch costs a few dictionary lookups plus one pass
over its rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from worker.errors import ServerError
from worker.flow.output import BatchOutput
from worker.flow.records import InboundRecord
from worker.observability import metrics


class _Children:
    """``metric.labels(*values)``, looked up once per label set."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class MetricsRecorder:
    """The Prometheus implementation of :class:`~worker.flow.observer.FlowObserver`."""

    def __init__(self) -> None:
        self._events_in = _Children(metrics.EVENTS_IN)
        self._events_out = _Children(metrics.EVENTS_OUT)
        self._responses = _Children(metrics.RESPONSES)
        self._errors = _Children(metrics.ERRORS)
        self._retries = _Children(metrics.RETRIES)
        self._dead_letters = _Children(metrics.DEAD_LETTERS)
        self._stages = _Children(metrics.STAGE_SECONDS)
        self._stored = metrics.END_TO_END_SECONDS.labels("stored")
        self._published = metrics.END_TO_END_SECONDS.labels("published")

    def prepare(self, consumed: Sequence[str], published: Sequence[str]) -> None:
        """Create the topics' series at zero, so dashboards show 0 rather than no data."""
        for topic in consumed:
            self._events_in(topic)
        for topic in published:
            self._events_out(topic)
        for status in ("ok", "error"):
            self._responses(status)

    def received(self, records: Sequence[InboundRecord]) -> None:
        metrics.IN_FLIGHT.set(len(records))
        topics = Counter(record.topic for record in records)
        for topic, count in topics.items():
            self._events_in(topic).inc(count)

    def stage_finished(self, stage: str, size: int, seconds: float) -> None:
        self._stages(stage).observe(seconds)

    def retried(self, step: str, error: ServerError) -> None:
        self._retries(step, error.code).inc()
        self._errors(error.code).inc()

    def delivered(
        self,
        records: Sequence[InboundRecord],
        output: BatchOutput,
        *,
        stored_at: float,
        published_at: float,
    ) -> None:
        metrics.BATCH_EVENTS.observe(len(records))
        created = [r.timestamp_ms / 1000.0 for r in records if r.timestamp_ms is not None]
        # A producer clock ahead of ours would give negative latencies: count them as 0.
        self._stored.observe_many(max(0.0, stored_at - t) for t in created)
        self._published.observe_many(max(0.0, published_at - t) for t in created)
        for topic, count in Counter(m.topic for m in output.messages).items():
            self._events_out(topic).inc(count)
        statuses: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for part in output.rows:
            for row in part.rows:
                # row[3] is the status, row[4] the error code (REQUEST_COLUMNS).
                statuses[row[3]] += 1
                if row[4]:
                    codes[row[4]] += 1
        for status, count in statuses.items():
            self._responses(status).inc(count)
        for code, count in codes.items():
            self._errors(code).inc(count)
        reasons: Counter[str] = Counter()
        for letter in output.dead_letters:
            reasons[_header(letter.headers, "dlq-reason")] += 1
        for reason, count in reasons.items():
            self._dead_letters(reason).inc(count)
        metrics.IN_FLIGHT.set(0)


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str:
    # The worker appends its own dlq-* headers after the original ones: the last one wins.
    for key, value in reversed(headers):
        if key == name:
            return "unknown" if value is None else value.decode("utf-8", "replace")
    return "unknown"
