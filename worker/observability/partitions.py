"""Consumer positions of the requests topic, per assigned partition: lag, commits, stalls.

A partition is *stalled* when it has lag (its end offset is past the group's
committed offset) and the committed offset has not moved for
``WORKER_STALL_TIMEOUT_S``, counted from the later of the last commit and the
moment the lag appeared (so a partition that was idle for an hour and just
received a message is not stalled at once). Stalls make the worker not ready;
see :mod:`worker.observability.health`.

The tracker knows nothing of Faust: the health monitor feeds it end offsets
and committed offsets, the Faust monitor hook feeds it commits as they happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from worker.observability.metrics import partition_families


@dataclass(slots=True)
class PartitionState:
    """What is known of one assigned partition. Times are monotonic seconds."""

    partition: int
    assigned_at: float
    committed_at: float
    committed: int | None = None
    end: int | None = None
    lag_since: float | None = None
    stalled: bool = False

    @property
    def lag(self) -> int | None:
        """Messages past the committed offset, or None while either offset is unknown."""
        if self.committed is None or self.end is None:
            return None
        return max(0, self.end - self.committed)


@dataclass(frozen=True, slots=True)
class StallChange:
    """A partition that stalled (``stalled``) or resumed (not ``stalled``) at this update."""

    topic: str
    partition: int
    stalled: bool
    lag: int
    seconds: float


class PartitionTracker(Collector):
    """The assigned partitions of one topic, and whether each makes progress."""

    def __init__(
        self,
        topic: str,
        stall_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.stall_timeout_s = stall_timeout_s
        self._clock = clock
        self._states: dict[int, PartitionState] = {}
        self.assigned_once = False

    # ------------------------------------------------------------------ updates

    def assign(self, partitions: Iterable[int]) -> None:
        """The group gave this worker ``partitions`` (kept ones keep their history)."""
        now = self._clock()
        wanted = set(partitions)
        self._states = {
            p: self._states.get(p) or PartitionState(p, assigned_at=now, committed_at=now)
            for p in sorted(wanted)
        }
        self.assigned_once = True

    def committed(self, offsets: Mapping[int, int]) -> None:
        """The worker committed ``offsets`` (partition -> next offset to read) just now."""
        now = self._clock()
        for partition, offset in offsets.items():
            state = self._states.get(partition)
            if state is not None:
                self._advance(state, offset, now)

    @staticmethod
    def _advance(state: PartitionState, offset: int, now: float) -> None:
        if state.committed is None or offset > state.committed:
            state.committed = offset
            state.committed_at = now
            state.lag_since = None

    def update(
        self,
        *,
        ends: Mapping[int, int],
        committed: Mapping[int, int | None],
        starts: Mapping[int, int] | None = None,
    ) -> list[StallChange]:
        """Take fresh end and committed offsets; return the partitions whose stall state changed.

        ``starts`` (the log start offsets) stand in for the committed offset of a
        partition the group never committed: the worker reads it from there.
        """
        now = self._clock()
        changes = []
        for partition, state in self._states.items():
            if partition in ends:
                state.end = ends[partition]
            known = committed.get(partition)
            if known is not None:
                if state.committed is None:
                    state.committed = known  # learnt, not progress made by this worker
                else:
                    self._advance(state, known, now)
            elif state.committed is None and starts and partition in starts:
                state.committed = starts[partition]
            lag = state.lag
            if not lag:
                state.lag_since = None
            elif state.lag_since is None:
                state.lag_since = now
            stuck_for = now - max(state.committed_at, state.lag_since or now)
            stalled = bool(lag) and stuck_for >= self.stall_timeout_s
            if stalled != state.stalled:
                state.stalled = stalled
                changes.append(StallChange(self.topic, partition, stalled, lag or 0, stuck_for))
        return changes

    # ------------------------------------------------------------------ reading

    @property
    def partitions(self) -> list[int]:
        """The assigned partitions, in order."""
        return list(self._states)

    def stalled(self) -> list[PartitionState]:
        """The partitions stalled at the last update."""
        return [state for state in self._states.values() if state.stalled]

    def unknown_committed(self) -> list[int]:
        """Assigned partitions whose committed offset is not known yet."""
        return [p for p, state in self._states.items() if state.committed is None]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every assigned partition, as the readiness report shows it."""
        now = self._clock()
        return [
            {
                "topic": self.topic,
                "partition": state.partition,
                "end_offset": state.end,
                "committed_offset": state.committed,
                "lag": state.lag,
                "seconds_since_commit": round(now - state.committed_at, 3),
                "stalled": state.stalled,
            }
            for state in self._states.values()
        ]

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        families = partition_families()
        for state in self._states.values():
            labels = [self.topic, str(state.partition)]
            if state.lag is not None:
                families["worker_consumer_lag_messages"].add_metric(labels, state.lag)
            if state.end is not None:
                families["worker_consumer_end_offset"].add_metric(labels, state.end)
            if state.committed is not None:
                families["worker_consumer_committed_offset"].add_metric(labels, state.committed)
            families["worker_consumer_last_commit_age_seconds"].add_metric(
                labels, now - state.committed_at
            )
        families["worker_assigned_partitions"].add_metric([], len(self._states))
        families["worker_stalled_partitions"].add_metric([], len(self.stalled()))
        return list(families.values())
