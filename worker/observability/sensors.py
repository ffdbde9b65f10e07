"""Faust's hooks into the worker's observability: commits, rebalances, recovery.

Faust reports commits to its ``Monitor`` (``on_tp_commit``, called with the
offsets just committed) and rebalances to its sensors (``on_rebalance_start``
when the group starts moving partitions, ``on_rebalance_end`` once recovery is
done and consumption resumes). These two small adapters forward them to the
:class:`~worker.observability.partitions.PartitionTracker` and the
:class:`~worker.observability.health.Health` of the worker.

Faust's own Prometheus sensor (``faust.sensors.prometheus``) is not used: it
observes every message and event one at a time, in milliseconds, on the stream
path that the worker's batch intake bypasses, so most of its series would stay
empty while the rest cost time per message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from faust.sensors import Monitor, Sensor
from faust.types import TP

from worker.observability.health import Gate
from worker.observability.metrics import REBALANCES, RECOVERY_SECONDS
from worker.observability.partitions import PartitionTracker

log = logging.getLogger(__name__)


class CommitMonitor(Monitor):
    """Faust's monitor, also telling the tracker the moment offsets are committed."""

    def __init__(self, tracker: PartitionTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracker = tracker

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        topic = self._tracker.topic
        self._tracker.committed(
            {tp.partition: offset for tp, offset in tp_offsets.items() if tp.topic == topic}
        )


class RebalanceSensor(Sensor):
    """Counts rebalances, times recovery, and holds readiness closed while they last."""

    def __init__(self, tracker: PartitionTracker, recovery: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracker = tracker
        self._recovery = recovery

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        REBALANCES.inc()
        self._recovery.close("rebalancing: partitions are moving between workers")
        return {"time_start": time.monotonic()}

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        seconds = time.monotonic() - state.get("time_start", time.monotonic())
        RECOVERY_SECONDS.observe(seconds)
        topic = self._tracker.topic
        assigned = [tp.partition for tp in app.consumer.assignment() if tp.topic == topic]
        self._tracker.assign(assigned)
        self._recovery.open(f"recovered in {seconds:.3f}s; {len(assigned)} partitions assigned")
        log.info(
            "recovery done in %.3fs, consuming %d partitions of %s", seconds, len(assigned), topic
        )


class ConsumerOffsets:
    """The requests topic's offsets, read through Faust's consumer."""

    def __init__(self, app: Any, topic: str) -> None:
        self._app = app
        self._topic = topic

    def _tps(self, partitions: Sequence[int]) -> list[Any]:
        return [TP(self._topic, partition) for partition in partitions]

    async def end_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        ends = await self._app.consumer.highwaters(*self._tps(partitions))
        return {tp.partition: int(offset) for tp, offset in ends.items() if offset is not None}

    async def start_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        starts = await self._app.consumer.earliest_offsets(*self._tps(partitions))
        return {tp.partition: int(offset) for tp, offset in starts.items() if offset is not None}

    def committed_offsets(self) -> Mapping[int, int | None]:
        committed = self._app.consumer.committed_offsets()
        return {tp.partition: offset for tp, offset in committed.items() if tp.topic == self._topic}
