"""Readiness from gates, the assignment, dependency checks and stalls; the monitor's rounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from worker.observability.health import CheckResult, Health, HealthMonitor
from worker.observability.partitions import PartitionTracker, StallChange
from worker.observability.probes import ClickHouseProbe


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class FakeOffsets:
    """The consumer's offsets as a test sets them; ``broken`` makes the broker unreachable."""

    def __init__(self) -> None:
        self.ends: dict[int, int] = {}
        self.committed: dict[int, int | None] = {}
        self.broken = False

    async def end_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        if self.broken:
            raise ConnectionError("broker unreachable")
        return {p: self.ends.get(p, 0) for p in partitions}

    async def start_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        return dict.fromkeys(partitions, 0)

    def committed_offsets(self) -> Mapping[int, int | None]:
        return dict(self.committed)


class FakeProbe:
    def __init__(self, name: str, *, required: bool = True) -> None:
        self.name = name
        self.required = required
        self.failure: Exception | None = None
        self.hang = False

    async def check(self) -> str:
        if self.hang:
            await asyncio.sleep(3600)
        if self.failure is not None:
            raise self.failure
        return "fine"


def make_health(clock: Clock, topic: str = "requests") -> Health:
    return Health(PartitionTracker(topic, stall_timeout_s=30.0, clock=clock), clock=clock)


def test_a_fresh_worker_is_not_ready_and_says_what_it_waits_for() -> None:
    health = make_health(Clock())
    health.gate("recovery")
    health.expect("redis")
    ready, report = health.readiness()
    assert not ready
    assert report["status"] == "not_ready"
    checks = report["checks"]
    assert checks["recovery"]["ok"] is False
    assert checks["partitions"] == {
        "ok": False,
        "required": True,
        "detail": "waiting for the consumer group",
    }
    assert checks["redis"]["detail"] == "not checked yet"
    assert REGISTRY.get_sample_value("worker_ready") == 0


def test_ready_once_gates_open_partitions_arrive_and_dependencies_answer() -> None:
    clock = Clock()
    health = make_health(clock)
    recovery = health.gate("recovery")
    warming = health.gate("warming")
    health.expect("kafka")
    recovery.open("recovered")
    health.tracker.assign([0, 1])
    health.record("kafka", CheckResult(True, "fine", checked_at=clock()))
    assert health.readiness()[0] is False  # still warming
    warming.open()
    ready, report = health.readiness()
    assert ready
    assert report["status"] == "ready"
    assert [p["partition"] for p in report["checks"]["partitions"]["partitions"]] == [0, 1]
    assert REGISTRY.get_sample_value("worker_ready") == 1


def test_an_empty_assignment_is_ready_and_says_the_worker_idles() -> None:
    health = make_health(Clock())
    health.tracker.assign([])
    ready, report = health.readiness()
    assert ready
    assert "idle" in report["checks"]["partitions"]["detail"]


def test_an_optional_dependency_down_makes_the_worker_degraded_not_unready() -> None:
    health = make_health(Clock())
    health.tracker.assign([0])
    health.expect("redis", required=False)
    health.record("redis", CheckResult(False, "refused", required=False))
    ready, report = health.readiness()
    assert ready
    assert report["status"] == "degraded"


def test_a_stalled_partition_makes_the_worker_not_ready() -> None:
    clock = Clock()
    health = make_health(clock)
    health.tracker.assign([2])
    health.tracker.update(ends={2: 10}, committed={2: 3})
    clock.now += 30
    health.tracker.update(ends={2: 10}, committed={2: 3})
    ready, report = health.readiness()
    assert not ready
    stalls = report["checks"]["stalls"]
    assert stalls["ok"] is False
    assert [(p["partition"], p["lag"]) for p in stalls["stalled"]] == [(2, 7)]


@pytest.mark.asyncio
async def test_the_monitor_records_every_check_and_bounds_slow_ones() -> None:
    clock = Clock()
    health = make_health(clock)
    offsets = FakeOffsets()
    redis, clickhouse = FakeProbe("redis", required=False), FakeProbe("clickhouse")
    monitor = HealthMonitor(
        health, offsets, [redis, clickhouse], interval_s=1, timeout_s=0.05, clock=clock
    )
    redis.failure = ConnectionRefusedError("redis refused")
    clickhouse.hang = True
    await monitor.tick()
    checks = health.checks()
    assert checks["kafka"].ok
    assert (checks["redis"].ok, checks["redis"].detail) == (
        False,
        "ConnectionRefusedError: redis refused",
    )
    assert (checks["clickhouse"].ok, checks["clickhouse"].detail) == (
        False,
        "no answer within 0.05s",
    )
    assert REGISTRY.get_sample_value("worker_dependency_up", {"dependency": "clickhouse"}) == 0
    offsets.broken = True
    clickhouse.hang = False
    await monitor.tick()
    checks = health.checks()
    assert (checks["kafka"].ok, checks["kafka"].detail) == (
        False,
        "ConnectionError: broker unreachable",
    )
    assert checks["clickhouse"].ok
    assert REGISTRY.get_sample_value("worker_dependency_up", {"dependency": "clickhouse"}) == 1


def lagging(
    topic: str, describe: Callable[[], dict[str, Any]]
) -> tuple[Clock, FakeOffsets, list[StallChange], HealthMonitor]:
    """A monitor of partition 0 of ``topic``, 30 messages behind, whose stalls are collected."""
    clock = Clock()
    health = make_health(clock, topic)
    health.tracker.assign([0])
    offsets = FakeOffsets()
    offsets.ends, offsets.committed = {0: 50}, {0: 20}
    stalls: list[StallChange] = []
    monitor = HealthMonitor(
        health,
        offsets,
        [],
        interval_s=1,
        timeout_s=1,
        on_stall=stalls.append,
        describe=describe,
        clock=clock,
    )
    return clock, offsets, stalls, monitor


@pytest.mark.asyncio
async def test_a_stall_is_logged_counted_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = "stall-topic"
    clock, offsets, stalls, monitor = lagging(
        topic, lambda: {"coordinator_id": None, "lookup_locked": True}
    )
    counter = {"topic": topic, "partition": "0"}
    before = REGISTRY.get_sample_value("worker_partition_stalls_total", counter) or 0
    with caplog.at_level(logging.INFO, logger="worker.observability.health"):
        await monitor.tick()
        clock.now += 31
        await monitor.tick()
        await monitor.tick()  # still stalled: not reported again
        offsets.committed = {0: 21}
        await monitor.tick()
    assert [(s.partition, s.lag) for s in stalls] == [(0, 30)]
    after = REGISTRY.get_sample_value("worker_partition_stalls_total", counter)
    assert after == before + 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("stalled" in m for m in messages) == 1
    assert sum("makes progress again" in m for m in messages) == 1
    stalled_record = next(r for r in caplog.records if "stalled" in r.getMessage())
    assert stalled_record.levelno == logging.ERROR
    assert "Operator action" in stalled_record.getMessage()
    # What the Kafka client was doing when the commits stopped, in the text and as fields.
    assert "coordinator_id=None, lookup_locked=True" in stalled_record.getMessage()
    assert stalled_record.__dict__["lookup_locked"] is True


@pytest.mark.asyncio
async def test_a_stall_is_reported_even_when_the_client_state_cannot_be_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreadable() -> dict[str, object]:
        raise AttributeError("_coordinator")

    clock, _, stalls, monitor = lagging("stall-unreadable", unreadable)
    with caplog.at_level(logging.ERROR, logger="worker.observability.health"):
        await monitor.tick()
        clock.now += 31
        await monitor.tick()
    assert [(s.partition, s.lag) for s in stalls] == [(0, 30)]
    [record] = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert "described=failed: AttributeError('_coordinator')" in record.getMessage()


class SlowSink:
    def __init__(self) -> None:
        self.pings = 0
        self.release = asyncio.Event()

    async def ping(self) -> None:
        self.pings += 1
        await self.release.wait()


@pytest.mark.asyncio
async def test_clickhouse_checks_never_pile_up_behind_a_slow_ping() -> None:
    sink = SlowSink()
    probe = ClickHouseProbe(sink)
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(probe.check(), 0.01)
    assert sink.pings == 1
    sink.release.set()
    assert (await probe.check()).startswith("SELECT 1 answered")
    assert sink.pings == 1
