"""The observer port: what the flow reports per batch, to the in-memory and Prometheus observers.

Both implementations go through the same batch handler runs; the in-memory one
shows what is reported, the Prometheus one what the metrics then say.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from prometheus_client import REGISTRY

from worker.errors import DatabaseError
from worker.flow.deliver import BatchHandler
from worker.flow.observer import FlowObserver, MemoryObserver
from worker.flow.output import PartitionRows
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.loadgen import workload
from worker.observability.recorder import MetricsRecorder
from worker.publish.memory import MemoryPublisher
from worker.sinks.memory import MemorySink

MakePipeline = Callable[..., Pipeline]
MakeRecord = Callable[..., InboundRecord]
STAGES = [
    "authenticate",
    "decode",
    "validate",
    "authorize",
    "replay",
    "ratelimit",
    "process",
    "remember",
    "respond",
    "persist",
    "publish",
]
_topics = itertools.count()


class FlakySink(MemorySink):
    """Fails its first ``failures`` writes the way an unreachable ClickHouse does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        if self.failures:
            self.failures -= 1
            raise DatabaseError("ClickHouse is away")
        await super().write(slices)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("observer_type", [MemoryObserver, MetricsRecorder])
@pytest.mark.asyncio
async def test_every_observer_takes_a_whole_run_with_a_retry(
    observer_type: Callable[[], FlowObserver],
    make_pipeline: MakePipeline,
    make_record: MakeRecord,
) -> None:
    observer = observer_type()
    pipeline = make_pipeline()
    pipeline.observer = observer
    handler = BatchHandler(
        pipeline, FlakySink(failures=1), MemoryPublisher(), backoff_max_s=0.01, observer=observer
    )
    records = [make_record(s.value, key=s.key) for s in workload(20, 9)]
    output = await handler.handle(records)
    assert len(output.responses) == len(records)


@pytest.mark.asyncio
async def test_the_flow_reports_each_stage_once_per_batch_in_order(
    make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    observer = MemoryObserver()
    pipeline = make_pipeline()
    pipeline.observer = observer
    handler = BatchHandler(
        pipeline, FlakySink(failures=2), MemoryPublisher(), backoff_max_s=0.01, observer=observer
    )
    records = [make_record(s.value, key=s.key) for s in workload(30, 9)]
    await handler.handle(records)
    assert observer.received_batches == [len(records)]
    assert observer.stages == [(stage, len(records)) for stage in STAGES]
    assert observer.retries == [("persist", "database_unavailable")] * 2
    [delivered] = observer.deliveries
    assert len(delivered.responses) == len(records)


@pytest.mark.asyncio
async def test_the_metrics_count_a_batch_by_topic_status_code_and_reason(
    make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    topic = f"requests-{next(_topics)}"
    samples = workload(40, 18, run_id=topic)
    recorder = MetricsRecorder()
    pipeline = make_pipeline()
    pipeline.observer = recorder
    publisher = MemoryPublisher()
    handler = BatchHandler(
        pipeline, FlakySink(failures=1), publisher, backoff_max_s=0.01, observer=recorder
    )
    records = [make_record(s.value, key=s.key, topic=topic) for s in samples]

    def snapshot() -> dict[str, float]:
        codes = {s.code for s in samples if s.code} | {"database_unavailable"}
        reasons = {s.code for s in samples if s.dead_letter and s.code}
        values = {
            "in": metric("worker_events_in_total", topic=topic),
            "out": metric("worker_events_out_total", topic="responses"),
            "dead_out": metric("worker_events_out_total", topic="dead"),
            "ok": metric("worker_responses_total", status="ok"),
            "error": metric("worker_responses_total", status="error"),
            "retries": metric("worker_retries_total", step="persist", code="database_unavailable"),
            "stored": metric("worker_end_to_end_latency_seconds_count", milestone="stored"),
            "published": metric("worker_end_to_end_latency_seconds_count", milestone="published"),
            "batches": metric("worker_batch_events_count"),
            "batch_events": metric("worker_batch_events_sum"),
            "in_flight": metric("worker_events_in_flight"),
        }
        values.update({f"code:{c}": metric("worker_errors_total", code=c) for c in codes})
        values.update({f"dlq:{r}": metric("worker_dead_letters_total", reason=r) for r in reasons})
        values.update(
            {f"stage:{s}": metric("worker_stage_duration_seconds_count", stage=s) for s in STAGES}
        )
        return values

    before = snapshot()
    await handler.handle(records)
    after = snapshot()
    delta = {name: after[name] - before[name] for name in before}

    dead = [s for s in samples if s.dead_letter]
    expected: dict[str, float] = {
        "in": len(samples),
        "out": len(samples),
        "dead_out": len(dead),
        "ok": sum(s.status == "ok" for s in samples),
        "error": sum(s.status == "error" for s in samples),
        "retries": 1,
        "stored": len(samples),
        "published": len(samples),
        "batches": 1,
        "batch_events": len(samples),
        "in_flight": 0,
    }
    codes = Counter(s.code for s in samples if s.code)
    codes["database_unavailable"] = 1  # a server error counts once per failed attempt
    expected.update({f"code:{c}": n for c, n in codes.items()})
    expected.update({f"dlq:{r}": n for r, n in Counter(s.code for s in dead).items()})
    expected.update({f"stage:{s}": 1 for s in STAGES})
    assert delta == expected
    assert len(publisher.topics["dead"]) == len(dead)


def test_prepared_series_exist_at_zero() -> None:
    recorder = MetricsRecorder()
    recorder.prepare(["fresh-requests"], ["fresh-responses", "fresh-dead"])
    assert REGISTRY.get_sample_value("worker_events_in_total", {"topic": "fresh-requests"}) == 0
    for topic in ("fresh-responses", "fresh-dead"):
        assert REGISTRY.get_sample_value("worker_events_out_total", {"topic": topic}) == 0
