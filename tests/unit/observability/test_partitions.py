"""The partition tracker: lag, commits and stalls, on a clock the test turns."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from worker.observability.partitions import PartitionTracker

TIMEOUT_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tracker_on(clock: Clock, partitions: list[int]) -> PartitionTracker:
    tracker = PartitionTracker("requests", TIMEOUT_S, clock=clock)
    tracker.assign(partitions)
    return tracker


def stalled(tracker: PartitionTracker) -> list[int]:
    return [state.partition for state in tracker.stalled()]


def test_lag_without_commits_stalls_after_the_timeout_and_resumes_on_a_commit() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0, 1])
    assert tracker.update(ends={0: 100, 1: 50}, committed={0: 40, 1: 50}) == []
    clock.advance(TIMEOUT_S - 1)
    assert tracker.update(ends={0: 100, 1: 50}, committed={0: 40, 1: 50}) == []
    clock.advance(1)
    [change] = tracker.update(ends={0: 100, 1: 50}, committed={0: 40, 1: 50})
    assert (change.partition, change.stalled, change.lag) == (0, True, 60)
    assert stalled(tracker) == [0]
    clock.advance(5)
    tracker.committed({0: 41})
    [change] = tracker.update(ends={0: 100}, committed={0: 41})
    assert (change.partition, change.stalled) == (0, False)
    assert stalled(tracker) == []


def test_a_partition_without_lag_never_stalls_however_long_it_idles() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0])
    for _ in range(10):
        clock.advance(TIMEOUT_S)
        assert tracker.update(ends={0: 7}, committed={0: 7}) == []
    assert stalled(tracker) == []


def test_an_idle_partition_that_receives_messages_gets_the_full_timeout() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0])
    tracker.update(ends={0: 7}, committed={0: 7})
    clock.advance(3600)  # idle for an hour: no commit, no lag
    assert tracker.update(ends={0: 9}, committed={0: 7}) == []  # lag appears now
    clock.advance(TIMEOUT_S - 1)
    assert tracker.update(ends={0: 9}, committed={0: 7}) == []
    clock.advance(1)
    assert [c.partition for c in tracker.update(ends={0: 9}, committed={0: 7})] == [0]


def test_commits_keep_a_busy_partition_from_stalling() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0])
    for step in range(1, 20):
        clock.advance(TIMEOUT_S / 2)
        tracker.committed({0: step * 10})
        assert tracker.update(ends={0: 10_000}, committed={0: step * 10}) == []


def test_a_never_committed_partition_counts_its_lag_from_the_log_start() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0])
    assert tracker.unknown_committed() == [0]
    tracker.update(ends={0: 30}, committed={}, starts={0: 10})
    [snapshot] = tracker.snapshot()
    assert snapshot["lag"] == 20
    clock.advance(TIMEOUT_S)
    assert [c.partition for c in tracker.update(ends={0: 30}, committed={})] == [0]


def test_reassignment_keeps_kept_partitions_and_drops_revoked_ones() -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0, 1])
    tracker.update(ends={0: 5, 1: 5}, committed={0: 1, 1: 1})
    tracker.assign([1, 2])
    assert tracker.partitions == [1, 2]
    kept = {s["partition"]: s for s in tracker.snapshot()}
    assert kept[1]["lag"] == 4
    assert kept[2]["lag"] is None


def test_collect_serves_per_partition_gauges(
    registry_with: Callable[..., CollectorRegistry],
) -> None:
    clock = Clock()
    tracker = tracker_on(clock, [0, 3])
    tracker.update(ends={0: 12, 3: 5}, committed={0: 2, 3: 5})
    clock.advance(7)
    registry = registry_with(tracker)

    def value(name: str, partition: int | None = None) -> float | None:
        labels = {} if partition is None else {"topic": "requests", "partition": str(partition)}
        return registry.get_sample_value(name, labels)

    assert value("worker_consumer_lag_messages", 0) == 10
    assert value("worker_consumer_lag_messages", 3) == 0
    assert value("worker_consumer_end_offset", 0) == 12
    assert value("worker_consumer_committed_offset", 3) == 5
    assert value("worker_consumer_last_commit_age_seconds", 0) == 7
    assert value("worker_assigned_partitions") == 2
    assert value("worker_stalled_partitions") == 0
