"""Liveness and readiness of the worker, and the monitor loop that keeps them current.

**Liveness** (``/health/live``) answers from the event loop itself: if it
answers, the loop runs. **Readiness** (``/health/ready``) is the sum of checks,
each ``ok`` or not, and ``required`` or not:

- ``recovery`` and any other :class:`Gate` (cache warming adds one): closed at
  start-up and during every rebalance, open once Faust resumed consumption;
- ``partitions``: the group has given this worker its assignment (possibly
  none, when there are more workers than partitions);
- ``kafka``, ``redis``, ``clickhouse``: the last dependency check (Redis is
  required only when ``LIMITS_ON_REDIS_UNAVAILABLE=reject``; with ``allow``
  the worker serves without it and is only ``degraded``);
- ``stalls``: no partition with lag whose committed offset stopped moving.

The answer is ``ready`` (HTTP 200), ``degraded`` (200, an optional check
failed) or ``not_ready`` (503). The checks run in :class:`HealthMonitor`, every
``WORKER_HEALTH_INTERVAL_S``; a probe never hits a dependency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from worker.observability.group import as_text, described
from worker.observability.metrics import DEPENDENCY_UP, PARTITION_STALLS, READY
from worker.observability.partitions import PartitionTracker, StallChange

log = logging.getLogger(__name__)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class CheckResult:
    """The outcome of one readiness check."""

    ok: bool
    detail: str
    required: bool = True
    checked_at: float | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "required": self.required, "detail": self.detail}
        if self.checked_at is not None:
            body["checked_at"] = _iso(self.checked_at)
        if self.latency_ms is not None:
            body["latency_ms"] = round(self.latency_ms, 3)
        body.update(self.extra)
        return body


class Gate:
    """Something readiness waits for: recovery, cache warming, ... Closed until opened."""

    def __init__(self, name: str, detail: str = "not done yet") -> None:
        self.name = name
        self.is_open = False
        self.detail = detail

    def open(self, detail: str = "done") -> None:
        """The condition holds: readiness no longer waits for it."""
        self.is_open = True
        self.detail = detail

    def close(self, detail: str) -> None:
        """The condition no longer holds (``detail`` says why)."""
        self.is_open = False
        self.detail = detail


class Probe(Protocol):
    """A dependency check. ``check`` returns a short detail, or raises when it failed."""

    name: str
    required: bool

    async def check(self) -> str:
        """Reach the dependency once."""


class Health:
    """Everything readiness depends on, and the answer built from it."""

    def __init__(self, tracker: PartitionTracker, clock: Callable[[], float] = time.time) -> None:
        self.tracker = tracker
        self._clock = clock
        self._gates: dict[str, Gate] = {}
        self._dependencies: dict[str, CheckResult] = {}
        self.started_at = clock()
        self.loop_lag_s = 0.0

    def gate(self, name: str) -> Gate:
        """The gate called ``name`` (created closed on first use); readiness waits for it.

        Operator action: a gate that stays closed names what the worker still waits for.
        """
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = Gate(name)
        return gate

    def expect(self, name: str, *, required: bool = True) -> None:
        """Declare a dependency; it counts as failed until its first check."""
        self._dependencies.setdefault(name, CheckResult(False, "not checked yet", required))

    def record(self, name: str, result: CheckResult) -> None:
        """Store the outcome of checking dependency ``name``."""
        self._dependencies[name] = result
        DEPENDENCY_UP.labels(name).set(1 if result.ok else 0)

    def checks(self) -> dict[str, CheckResult]:
        """Every readiness check, by name, as of now."""
        checks = {
            name: CheckResult(gate.is_open, gate.detail) for name, gate in self._gates.items()
        }
        tracker = self.tracker
        partitions = tracker.snapshot()
        if tracker.assigned_once:
            detail = f"{len(partitions)} partitions of {tracker.topic} assigned"
            if not partitions:
                detail += " (idle: the group has more workers than partitions)"
            checks["partitions"] = CheckResult(True, detail, extra={"partitions": partitions})
        else:
            checks["partitions"] = CheckResult(False, "waiting for the consumer group")
        checks.update(self._dependencies)
        stalled = [p for p in partitions if p["stalled"]]
        if stalled:
            names = ", ".join(f"{p['topic']}[{p['partition']}]" for p in stalled)
            checks["stalls"] = CheckResult(
                False,
                f"stalled: {names} (lag present, no commit for "
                f"{tracker.stall_timeout_s:g}s or more)",
                extra={"stalled": stalled},
            )
        else:
            checks["stalls"] = CheckResult(True, "every partition with lag makes progress")
        return checks

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the worker is ready, and the report ``/health/ready`` answers."""
        checks = self.checks()
        ready = all(c.ok for c in checks.values() if c.required)
        degraded = ready and not all(c.ok for c in checks.values())
        status = "degraded" if degraded else ("ready" if ready else "not_ready")
        READY.set(1 if ready else 0)
        return ready, {
            "status": status,
            "ready": ready,
            "checks": {name: check.as_dict() for name, check in checks.items()},
        }

    def liveness(self) -> dict[str, Any]:
        """What ``/health/live`` answers: that the loop runs, and how late it runs."""
        return {
            "status": "alive",
            "uptime_s": round(self._clock() - self.started_at, 3),
            "loop_lag_ms": round(self.loop_lag_s * 1000.0, 3),
        }


async def run_probe(probe: Probe, timeout_s: float, clock: Callable[[], float]) -> CheckResult:
    """One check of ``probe``, bounded by ``timeout_s``; failures become results."""
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe.check(), timeout_s)
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    else:
        ok = True
    latency_ms = (time.perf_counter() - started) * 1000.0
    return CheckResult(ok, detail, probe.required, checked_at=clock(), latency_ms=latency_ms)


class OffsetSource(Protocol):
    """Where the monitor reads the consumer's positions (Faust's consumer, in the worker)."""

    async def end_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        """The end offsets of ``partitions`` of the requests topic, from the broker."""

    async def start_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        """The log start offsets of ``partitions``, from the broker."""

    def committed_offsets(self) -> Mapping[int, int | None]:
        """The group's committed offsets as the consumer knows them (no network)."""


class _KafkaProbe:
    """The broker check: the end offsets of the assigned partitions (partition 0 if none)."""

    name = "kafka"
    required = True

    def __init__(self, offsets: OffsetSource, tracker: PartitionTracker) -> None:
        self._offsets = offsets
        self._tracker = tracker
        self.ends: Mapping[int, int] = {}
        self.starts: Mapping[int, int] = {}

    async def check(self) -> str:
        self.ends, self.starts = {}, {}
        partitions = self._tracker.partitions
        ends = await self._offsets.end_offsets(partitions or [0])
        unknown = self._tracker.unknown_committed()
        self.starts = await self._offsets.start_offsets(unknown) if unknown else {}
        self.ends = ends
        return f"end offsets of {len(ends)} partitions of {self._tracker.topic} read"


class HealthMonitor:
    """Every ``interval_s``: refresh offsets, check dependencies, find stalls.

    The ``kafka`` check reads the end offsets of the assigned partitions from
    the broker; stalls are evaluated even when it fails, on the last known end
    offsets. A stall is logged and counted once when it starts and logged once
    when it ends; ``on_stall`` (exit for the supervisor, when configured) runs
    when it starts.
    """

    def __init__(
        self,
        health: Health,
        offsets: OffsetSource,
        probes: Sequence[Probe],
        *,
        interval_s: float,
        timeout_s: float,
        on_stall: Callable[[StallChange], None] | None = None,
        describe: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.paused = False  # set while the worker stops: its dependencies are closing
        self.health = health
        self._offsets = offsets
        self._kafka = _KafkaProbe(offsets, health.tracker)
        self.probes: list[Probe] = [self._kafka, *probes]
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_stall = on_stall
        self._describe = describe
        self._clock = clock
        for probe in self.probes:
            health.expect(probe.name, required=probe.required)

    async def run(self) -> None:
        """Check forever (a Faust app task); the first round runs at once."""
        loop = asyncio.get_running_loop()
        while not self.paused:
            await self.tick()
            planned = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            # How late the loop woke up: a busy or blocked loop shows here first.
            self.health.loop_lag_s = max(0.0, loop.time() - planned)

    async def tick(self) -> None:
        """One round of checks."""
        results = await asyncio.gather(
            *(run_probe(probe, self.timeout_s, self._clock) for probe in self.probes)
        )
        previous = self.health.checks()
        for probe, result in zip(self.probes, results, strict=True):
            before = previous.get(probe.name)
            if before is not None and before.checked_at is not None and before.ok != result.ok:
                if result.ok:
                    log.info("dependency %s is back: %s", probe.name, result.detail)
                else:
                    log.warning("dependency %s failed its check: %s", probe.name, result.detail)
            self.health.record(probe.name, result)
        changes = self.health.tracker.update(
            ends=self._kafka.ends,
            committed=self._offsets.committed_offsets(),
            starts=self._kafka.starts,
        )
        for change in changes:
            self._report(change)
        self.health.readiness()  # keeps worker_ready current between probes

    def _report(self, change: StallChange) -> None:
        extra: dict[str, Any] = {
            "topic": change.topic,
            "partition": change.partition,
            "lag": change.lag,
        }
        if change.stalled:
            PARTITION_STALLS.labels(change.topic, str(change.partition)).inc()
            # What the Kafka client is doing: a commit may be stuck inside it.
            state = described(self._describe) if self._describe is not None else {}
            extra.update(state)
            log.error(
                "partition %s[%d] stalled: %d messages of lag and no commit for %.0fs. "
                "Operator action: check the dependency named in the retry warnings "
                "(ClickHouse, Redis, the broker); the worker is not ready meanwhile. %s",
                change.topic,
                change.partition,
                change.lag,
                change.seconds,
                as_text(state),
                extra=extra,
            )
            if self._on_stall is not None:
                self._on_stall(change)
        else:
            log.warning(
                "partition %s[%d] makes progress again", change.topic, change.partition, extra=extra
            )
