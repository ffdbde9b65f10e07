"""ClickHouse failing for 5 s and for 60 s under load: the worker pauses, resumes, loses nothing.

A worker process on the real broker and chDB, with the ClickHouse client wrapped
by the fault hook (``WORKER_FAULT_CLICKHOUSE_DOWN_FILE``): every call fails while
the file exists, as unreachable or, in one run, answering TOO_MANY_PARTS.
Requests keep arriving during the outage. While it lasts: the batches answered
before the first failed insert wait for their rows (at most
``WORKER_UNSTORED_MAX`` requests), nothing more is answered, the group commits
nothing, the lag grows by everything produced, Faust stops fetching once its
small buffer is full, and the process's memory stays flat. Afterwards every
request has its response and exactly one
row, raw and with FINAL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.kafka import GroupPositions, group_positions, produce, read_topics
from tests.support.worker import WorkerStack
from worker.loadgen import TENANTS, workload

pytestmark = pytest.mark.e2e

BATCH = 100
BUFFER = 200
#: WORKER_UNSTORED_MAX: requests answered before their rows are stored, at most.
UNSTORED = 2 * BATCH
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    at_s: float
    positions: GroupPositions
    #: Events the agent's stream took from Faust's buffer (sum of read offsets + 1).
    taken: int
    #: Times Faust's conductor found the requests buffer full and paused fetching.
    buffer_full: int
    rss: int


def observe(stack: WorkerStack, topic: str, at_s: float, positions: GroupPositions) -> Sample:
    monitor = stack.monitor()
    taken = sum(offset + 1 for offset in monitor["topic_read_offsets"].get(topic, {}).values())
    # Keyed by a label that does not name the topic; the worker consumes only this one.
    full = sum(monitor["topic_buffer_full"].values())
    return Sample(at_s, positions, taken, full, stack.rss_bytes())


def wait_for(condition: Callable[[], bool], timeout_s: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert alive(), "the worker process exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("failure", "outage_s"),
    [("unreachable", 5), ("unreachable", 60), ("too_many_parts", 5)],
    ids=["down-5s", "down-60s", "too-many-parts-5s"],
)
def test_clickhouse_down_pauses_consumption_with_bounded_memory_and_loses_nothing(
    worker_stack: Callable[..., WorkerStack], tmp_path: Path, failure: str, outage_s: int
) -> None:
    flag = tmp_path / "clickhouse-down"
    stack = worker_stack(
        WORKER_FAULT_CLICKHOUSE_DOWN_FILE=str(flag),
        WORKER_BATCH_MAX=str(BATCH),
        WORKER_STREAM_BUFFER_MAX=str(BUFFER),
        WORKER_UNSTORED_MAX=str(UNSTORED),
        CLICKHOUSE_INSERT_RETRY_MAX_S="1",
        WORKER_WEB_STATS="true",
    )
    topics = stack.topics

    def positions() -> GroupPositions:
        return group_positions(stack.bootstrap, stack.run_id, topics.requests, topics.responses)

    before = stack.sign(workload(400, 20, run_id=f"{stack.run_id}a"), *TENANTS)
    during = stack.sign(workload(2400, 60, run_id=f"{stack.run_id}b", seed=3), *TENANTS)
    everything = [*before, *during]

    produce(stack.bootstrap, topics.requests, before)
    stack.start()
    wait_for(lambda: positions().published >= len(before), 120, stack.alive)
    # Let the commit of the last batches land before ClickHouse goes away.
    wait_for(lambda: positions().lag == 0, 60, stack.alive)
    rss_before = stack.rss_bytes()

    # The file's content picks the failure (see worker/faults.py): empty for an
    # unreachable server, or an overload error ClickHouse answers with.
    flag.write_text("" if failure == "unreachable" else failure)
    started = time.monotonic()
    produce(stack.bootstrap, topics.requests, during)
    samples: list[Sample] = []
    while time.monotonic() - started < outage_s:
        time.sleep(1.0)
        samples.append(observe(stack, topics.requests, time.monotonic() - started, positions()))
        assert stack.alive(), stack.logs()
    flag.unlink()

    wanted = {sample.key for sample in everything}
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: wanted <= {r.key for r in seen},
        timeout_s=180,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    logs = stack.logs(tail=None)

    # While ClickHouse was down: the batches answered before the first insert failed
    # waited for their rows (at most UNSTORED requests), nothing more was answered,
    # nothing committed, the lag grew by everything produced; one batch was being
    # delivered, the next one processed and waiting, the feed held one fetch of at
    # most a batch, the fetch loop one more waiting to enter it, and fetching stopped
    # (the read offsets stood still); memory stayed flat.
    steady = [s for s in samples if s.at_s >= 2.0]
    assert steady, samples
    [published] = {s.positions.published for s in steady}
    unstored = published - len(before)
    assert 0 <= unstored <= UNSTORED, samples
    assert {s.positions.committed for s in steady} == {len(before)}, samples
    assert steady[-1].positions.lag == len(during), samples
    assert len({s.taken for s in steady}) == 1, samples
    assert 0 < steady[-1].taken - len(before) - unstored <= 4 * BATCH, samples
    growth = max(s.rss for s in samples) - rss_before
    assert growth < 64 * MiB, f"memory grew by {growth / MiB:.1f} MiB during the outage"
    assert "failed (attempt" in logs, "the fault hook never failed an insert"
    if failure == "too_many_parts":
        assert "ClickHouse is overloaded (TOO_MANY_PARTS)" in logs
    assert "consuming again" in logs

    assert wanted <= {r.key for r in received}, "every request answered"
    [raw] = stack.query(
        "SELECT count() AS rows, count() - uniqExact(request_id) AS duplicates FROM requests"
    )
    [final] = stack.query(
        "SELECT count() AS rows, count() - uniqExact(request_id) AS duplicates FROM requests FINAL"
    )
    assert raw == final == {"rows": len(everything), "duplicates": 0}
    [dead] = stack.query(
        "SELECT count() AS n, uniqExact(source_partition, source_offset) AS u FROM dead_letters"
    )
    expected_dead = sum(sample.dead_letter for sample in everything)
    assert dead == {"n": expected_dead, "u": expected_dead}
