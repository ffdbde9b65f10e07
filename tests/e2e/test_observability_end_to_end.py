"""What operators see of a running worker: metrics after a known workload, readiness, logs.

Each test runs worker processes on the real broker, Redis and chDB, and asks them
over HTTP as Prometheus and a supervisor would.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.support.kafka import counts_reach, group_positions, produce, read_topics
from tests.support.metrics import (
    PENDING,
    dashboard_queries,
    load_dashboard,
    metric_names,
    samples,
    series_names,
    value,
)
from tests.support.web import get, metrics_text, readiness, wait_for
from tests.support.worker import REPO, WorkerStack
from worker.app import TopicNames
from worker.loadgen import TENANTS, SampleRequest, workload
from worker.shutdown import EXIT_SHUTDOWN_TIMEOUT, EXIT_STALLED

pytestmark = pytest.mark.e2e

STAGES = ("decode", "validate", "ratelimit", "process", "respond", "persist", "publish")
#: An insert that never finishes while the test runs: ClickHouse as good as gone.
HUNG_INSERT = {"WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S": "600"}


def log_lines(stack: WorkerStack) -> list[str]:
    """Every line the worker process wrote, from its first start on."""
    return [
        line
        for path in sorted(stack.root.glob("worker-*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if line.strip()
    ]


def json_logs(stack: WorkerStack) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in log_lines(stack)]


def assert_workload_counts(
    parsed: dict[Any, float], batch: list[SampleRequest], topics: TopicNames
) -> None:
    """The metrics count exactly the workload ``batch``, by topic, status, code and stage."""
    dead = [s for s in batch if s.dead_letter]
    assert value(parsed, "worker_events_in_total", topic=topics.requests) == len(batch)
    assert value(parsed, "worker_events_out_total", topic=topics.responses) == len(batch)
    assert value(parsed, "worker_events_out_total", topic=topics.dead_letters) == len(dead)
    statuses = Counter(s.status for s in batch)
    for status in ("ok", "error"):
        assert value(parsed, "worker_responses_total", status=status) == statuses[status]
    for code, count in Counter(s.code for s in batch if s.code).items():
        assert value(parsed, "worker_errors_total", code=code) == count, code
    for reason, count in Counter(s.code for s in dead if s.code).items():
        assert value(parsed, "worker_dead_letters_total", reason=reason) == count, reason
    for milestone in ("stored", "published"):
        count = value(parsed, "worker_end_to_end_latency_seconds_count", milestone=milestone)
        assert count == len(batch), milestone
    assert value(parsed, "worker_batch_events_sum") == len(batch)
    batches = value(parsed, "worker_batch_events_count")
    assert batches >= 1
    for stage in STAGES:
        assert value(parsed, "worker_stage_duration_seconds_count", stage=stage) == batches, stage
    ends = [v for (name, _), v in parsed.items() if name == "worker_consumer_end_offset"]
    committed = [v for (name, _), v in parsed.items() if name == "worker_consumer_committed_offset"]
    assert sum(ends) == sum(committed) == len(batch)
    assert value(parsed, "worker_assigned_partitions") == 4
    assert value(parsed, "worker_rebalances_total") >= 1
    assert value(parsed, "worker_recovery_duration_seconds_count") >= 1
    assert value(parsed, "worker_events_in_flight") == 0


def test_metrics_report_a_known_workload(worker_stack: Callable[..., WorkerStack]) -> None:
    stack = worker_stack(WORKER_HEALTH_INTERVAL_S="0.5")
    topics = stack.topics
    batch = stack.sign(workload(800, 90, run_id=stack.run_id), *TENANTS)
    dead = [s for s in batch if s.dead_letter]
    produce(stack.bootstrap, topics.requests, batch)
    stack.start()

    read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=counts_reach({topics.responses: len(batch), topics.dead_letters: len(dead)}),
        timeout_s=180,
        alive=stack.alive,
    )

    def settled() -> dict[Any, float] | None:
        # Offsets are committed every few seconds after the responses: wait for the lag to go.
        parsed = samples(metrics_text(stack.web_port))
        lags = [v for (name, _), v in parsed.items() if name == "worker_consumer_lag_messages"]
        done = len(lags) == 4 and not any(lags)
        return parsed if done and value(parsed, "worker_ready") == 1 else None

    parsed = wait_for(settled, timeout_s=60, alive=stack.alive, what="lag 0 on 4 partitions")
    text = metrics_text(stack.web_port)
    live = get(stack.web_port, "/health/live")
    doctor = subprocess.run(
        [sys.executable, "-m", "worker", "doctor"],
        env={**stack.env, "COLUMNS": "300"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert stack.stop() == 0, stack.logs()
    # The doctor sees the running worker, and asks it about the chDB it holds.
    assert doctor.returncode == 0, doctor.stdout
    assert "is ready" in doctor.stdout
    assert "held by the running worker" in doctor.stdout

    assert_workload_counts(parsed, batch, topics)
    for dependency in ("kafka", "redis", "clickhouse"):
        assert value(parsed, "worker_dependency_up", dependency=dependency) == 1

    # The dashboard reads only what a running worker serves (or what is announced as pending).
    used = {name for _, expr in dashboard_queries(load_dashboard()) for name in metric_names(expr)}
    assert not used - series_names(text) - set(PENDING)

    assert live is not None
    assert live[0] == 200
    assert orjson.loads(live[1])["status"] == "alive"

    # Logs: one JSON object per line, Faust's own included; dead letters carry their ids.
    logs = json_logs(stack)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in logs)
    assert any(line["logger"].startswith("faust.") for line in logs)
    claimed = {s.request_id for s in dead if s.request_id}
    logged = {line.get("request_id") for line in logs if "dead-lettered" in line["message"]}
    assert logged & claimed


def test_readiness_moves_to_ready_and_back_on_a_stalled_partition(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(
        **HUNG_INSERT,
        WORKER_STALL_TIMEOUT_S="3",
        WORKER_HEALTH_INTERVAL_S="0.5",
        WORKER_SHUTDOWN_TIMEOUT_S="5",
    )
    topics = stack.topics
    stack.start()
    seen: list[tuple[int, dict[str, Any]]] = []

    def ready() -> bool:
        answer = readiness(stack.web_port)
        if answer is not None:
            seen.append(answer)
        return answer is not None and answer[0] == 200

    wait_for(ready, timeout_s=120, alive=stack.alive, interval_s=0.05, what="readiness")
    first_status, first = seen[0]
    assert first_status == 503, "the web server answers before the worker is ready"
    assert first["status"] == "not_ready"
    waiting = {name for name, check in first["checks"].items() if not check["ok"]}
    assert waiting & {"recovery", "partitions", "kafka", "clickhouse"}
    _, report = seen[-1]
    assert report["status"] == "ready"
    assert all(check["ok"] for check in report["checks"].values()), report

    # Requests arrive; their insert hangs: lag is present and nothing is committed.
    batch = stack.sign(workload(40, 0, run_id=stack.run_id), *TENANTS)
    produce(stack.bootstrap, topics.requests, batch)

    def stalled() -> dict[str, Any] | None:
        answer = readiness(stack.web_port)
        if answer is None or answer[0] != 503 or answer[1]["checks"]["stalls"]["ok"]:
            return None
        return answer[1]

    report = wait_for(stalled, timeout_s=120, alive=stack.alive, what="a stalled partition")
    assert report["status"] == "not_ready"
    stuck = report["checks"]["stalls"]["stalled"]
    assert stuck
    assert all(p["lag"] > 0 and p["topic"] == topics.requests for p in stuck)
    parsed = samples(metrics_text(stack.web_port))
    assert value(parsed, "worker_ready") == 0
    assert value(parsed, "worker_stalled_partitions") == len(stuck)
    stalls = sum(v for (n, _), v in parsed.items() if n == "worker_partition_stalls_total")
    assert stalls >= len(stuck)
    errors = [line for line in json_logs(stack) if line["level"] == "error"]
    assert any("stalled" in e["message"] and "Operator action" in e["message"] for e in errors)

    # SIGTERM cannot finish the hung batch: the stop is bounded, the batch not committed.
    assert stack.stop(timeout_s=120) == EXIT_SHUTDOWN_TIMEOUT
    assert any("graceful stop did not finish" in line for line in log_lines(stack))

    # Without the fault the next worker consumes the same requests again: nothing is lost.
    # (The hung worker had answered them already: responses go out before the insert.)
    del stack.extra_env["WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S"]
    stack.start()

    def committed() -> bool | None:
        positions = group_positions(
            stack.bootstrap, stack.run_id, topics.requests, topics.responses
        )
        return positions.committed == len(batch) or None

    wait_for(committed, timeout_s=120, alive=stack.alive, what="the batch committed")
    assert stack.stop() == 0, stack.logs()
    [totals] = stack.query("SELECT count() AS rows, uniqExact(request_id) AS ids FROM requests")
    assert totals == {"rows": len(batch), "ids": len(batch)}


def test_a_stalled_worker_exits_for_its_supervisor_when_configured(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(
        **HUNG_INSERT,
        WORKER_STALL_TIMEOUT_S="2",
        WORKER_HEALTH_INTERVAL_S="0.5",
        WORKER_SHUTDOWN_TIMEOUT_S="3",
        WORKER_EXIT_ON_STALL="true",
    )
    produce(
        stack.bootstrap,
        stack.topics.requests,
        stack.sign(workload(10, 0, run_id=stack.run_id), *TENANTS),
    )
    stack.start()
    code = stack.wait(timeout_s=180)
    assert code == EXIT_STALLED, stack.logs()
    messages = [line["message"] for line in json_logs(stack)]
    assert any("WORKER_EXIT_ON_STALL" in m for m in messages)


def test_sigterm_with_rows_still_buffered_loses_nothing(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    # Every insert takes a second: when SIGTERM arrives, a batch's rows sit in the sink.
    stack = worker_stack(WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S="1", WORKER_HEALTH_INTERVAL_S="1")
    topics = stack.topics
    first = stack.sign(workload(2000, 0, run_id=f"{stack.run_id}a"), *TENANTS)
    produce(stack.bootstrap, topics.requests, first)
    stack.start()

    def in_flight() -> float | None:
        answer = get(stack.web_port, "/metrics")  # None while the web server starts
        if answer is None:
            return None
        return value(samples(answer[1].decode()), "worker_events_in_flight") or None

    buffered = wait_for(in_flight, timeout_s=120, alive=stack.alive, interval_s=0.05)
    assert buffered > 0
    assert stack.stop(timeout_s=120) == 0, stack.logs()
    assert any("stopping: no new messages" in line for line in log_lines(stack))

    # Whatever was taken in was stored and answered before the process ended.
    [stored] = stack.query("SELECT count() AS rows FROM requests")
    answered = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda records: len(records) >= stored["rows"],
        timeout_s=60,
        settle_s=2,
    )
    assert stored["rows"] >= buffered
    assert len(answered) == stored["rows"], "every stored row answered, and only those"

    # More requests while it is down; the next worker resumes after the committed offsets.
    second = stack.sign(workload(500, 0, run_id=f"{stack.run_id}b", seed=3), *TENANTS)
    produce(stack.bootstrap, topics.requests, second)
    del stack.extra_env["WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S"]
    stack.start()
    want = {s.key for s in (*first, *second)}
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda records: want <= {r.key for r in records},
        timeout_s=180,
        settle_s=3,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    [totals] = stack.query("SELECT count() AS rows, uniqExact(request_id) AS ids FROM requests")
    assert totals == {"rows": len(want), "ids": len(want)}, "every request stored, once"
    answers = Counter(r.key for r in received)
    assert set(answers) == want
    assert set(answers.values()) == {1}, "committed on SIGTERM: nothing was consumed twice"
