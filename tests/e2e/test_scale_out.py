"""Two worker processes in one consumer group: partitions move, nothing is lost or doubled."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.support.kafka import produce, read_topics
from tests.support.worker import WorkerStack
from worker.loadgen import TENANTS, workload

pytestmark = pytest.mark.e2e


def _wait_for_partitions(stack: WorkerStack, timeout_s: float) -> None:
    """Until the worker logged that the group gave it at least one partition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert stack.alive(), stack.logs()
        if re.search(r"assigned [1-9]\d* partitions", stack.logs()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no partitions assigned within {timeout_s}s:\n{stack.logs()}")


def test_a_second_worker_joins_and_the_first_leaves_under_load(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    first = worker_stack()
    # Same topics and consumer group, its own chDB directory (chDB is one process per
    # directory), as two hosts with embedded ClickHouse would have.
    second = WorkerStack(
        first.bootstrap,
        first.redis_url,
        first.root.parent / "peer",
        run_id=first.run_id,
        master_key=first.master_key,
    )
    second.root.mkdir()
    topics = first.topics
    samples = first.sign(workload(26000, 0, run_id=first.run_id), *TENANTS)
    answered: set[bytes | None] = set()

    def answered_all(count: int, alive: Callable[[], bool]) -> None:
        want = {s.key for s in samples[:count]}
        seen = read_topics(
            first.bootstrap,
            [topics.responses],
            until=lambda records: want <= {r.key for r in records},
            timeout_s=240,
            alive=alive,
        )
        answered.update(r.key for r in seen)
        assert want <= answered

    try:
        produce(first.bootstrap, topics.requests, samples[:3000])
        first.start()
        answered_all(3000, first.alive)

        second.start()  # joins while a backlog arrives: the group rebalances under load
        produce(first.bootstrap, topics.requests, samples[3000:23000])
        _wait_for_partitions(second, timeout_s=120)
        answered_all(23000, second.alive)

        assert first.stop() == 0, first.logs()  # leaves: its partitions move to the second
        produce(first.bootstrap, topics.requests, samples[23000:])
        answered_all(len(samples), second.alive)
        assert second.stop() == 0, second.logs()
    finally:
        for stack in (first, second):
            if stack.alive():
                stack.kill()

    per_worker = [
        [row["request_id"] for row in stack.query("SELECT request_id FROM requests")]
        for stack in (first, second)
    ]
    within = [len(rows) - len(set(rows)) for rows in per_worker]
    assert within == [0, 0], f"duplicates within each worker's rows: {within}"
    ids = per_worker[0] + per_worker[1]
    assert len(ids) == len(set(ids)) == len(samples), "one row per request across both workers"
    assert set(ids) == {s.request_id for s in samples}
    assert all(per_worker), "both workers stored rows"
