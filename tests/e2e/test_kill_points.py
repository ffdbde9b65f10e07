"""A worker killed with SIGKILL at each point of delivery, then restarted: nothing lost or doubled.

Each run starts a worker process with the fault hook set to one point
(``WORKER_FAULT_POINT``) and a number of batches to let through
(``WORKER_FAULT_AFTER_BATCHES``); the worker kills itself there, mid-stream, with
SIGKILL: no ``finally``, no flush, no commit. The test looks at what the kill
left behind (chDB is free once the process is gone), restarts the worker without
the fault, and checks the outcome on the real broker and chDB: one row per
request, raw and with FINAL, one dead-letter row per rejected message, and at
least one response per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.kafka import group_positions, produce, read_topics
from tests.support.worker import WorkerStack
from worker.loadgen import TENANTS, workload

pytestmark = pytest.mark.e2e

BATCH = 100
LET_THROUGH = 4

# What each point leaves at the moment of the kill: are the killed batch's rows
# stored, and were its responses published?
POINTS = {
    "before_insert": (False, False),
    "after_insert": (True, False),
    "after_publish": (True, True),
    # Acknowledged, not yet committed: Faust commits from its own task later.
    "after_ack": (True, True),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_a_worker_killed_at_a_fault_point_and_restarted_stores_each_request_once(
    worker_stack: Callable[..., WorkerStack], point: str
) -> None:
    stored, published = POINTS[point]
    stack = worker_stack(
        WORKER_BATCH_MAX=str(BATCH),
        WORKER_FAULT_POINT=point,
        WORKER_FAULT_AFTER_BATCHES=str(LET_THROUGH),
    )
    topics = stack.topics
    samples = stack.sign(workload(1000, 60, run_id=stack.run_id), *TENANTS)
    produce(stack.bootstrap, topics.requests, samples)

    stack.start()
    assert stack.wait_exit(timeout_s=180) == -9, stack.logs()
    assert f"reached {point}, killing the worker with SIGKILL" in stack.logs(tail=None)

    # What the kill left: the batches before the killed one are complete.
    at_kill = group_positions(stack.bootstrap, stack.run_id, topics.requests, topics.responses)
    [rows] = stack.query("SELECT count() AS n FROM requests")
    assert 0 < at_kill.published < len(samples), "killed mid-stream"
    if stored and not published:
        assert rows["n"] > at_kill.published, "the killed batch's rows were stored"
    else:
        assert rows["n"] == at_kill.published
    assert at_kill.committed < len(samples)

    for name in ("WORKER_FAULT_POINT", "WORKER_FAULT_AFTER_BATCHES"):
        stack.extra_env.pop(name)
    stack.start()
    wanted = Counter(sample.key for sample in samples)
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: set(wanted) <= {r.key for r in seen},
        timeout_s=180,
        settle_s=2,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()

    answered = Counter(r.key for r in received)
    assert set(answered) == set(wanted), "every request got at least one response"
    if published:
        # The killed batch had been answered but not committed: consumed and answered again.
        assert len(received) > len(samples)
        assert "skipping" in stack.logs(tail=None), "the redelivered rows were found stored"
    [outcome] = stack.query(
        "SELECT (SELECT count() FROM requests) AS rows, "
        "(SELECT count() - uniqExact(request_id) FROM requests) AS duplicates, "
        "(SELECT count() FROM requests FINAL) AS final_rows, "
        "(SELECT count() - uniqExact(request_id) FROM requests FINAL) AS final_duplicates, "
        "(SELECT count() FROM dead_letters) AS dead, "
        "(SELECT count() - uniqExact(source_partition, source_offset) FROM dead_letters) "
        "AS dead_duplicates, "
        "(SELECT count() FROM dead_letters FINAL) AS final_dead, "
        "(SELECT sum(requests) FROM usage_per_minute) AS counted"
    )
    expected_dead = sum(sample.dead_letter for sample in samples)
    assert outcome == {
        "rows": len(samples),
        "duplicates": 0,
        "final_rows": len(samples),
        "final_duplicates": 0,
        "dead": expected_dead,
        "dead_duplicates": 0,
        "final_dead": expected_dead,
        # The usage views counted each request once, redelivery or not.
        "counted": len(samples),
    }
