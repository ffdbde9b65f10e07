"""``worker doctor`` and ``worker load`` against the real broker, Redis and chDB.

They run as processes, as an operator runs them (and because chDB allows one
directory per process, which the unit session already holds).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.support.kafka import read_topics
from tests.support.worker import REPO, WorkerStack, free_port
from worker.topology import load_topology

pytestmark = pytest.mark.integration


#: The topic declarations the doctor checks, one row each.
DECLARED = load_topology(REPO / "topics" / "topics.toml")


def worker_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**env, "COLUMNS": "300"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def rows(output: str) -> list[str]:
    """The table rows of doctor's output, whitespace collapsed."""
    return [" ".join(line.replace("│", " ").split()) for line in output.splitlines() if "│" in line]


def test_doctor_passes_on_a_complete_setup(worker_stack: Callable[..., WorkerStack]) -> None:
    stack = worker_stack()
    fresh = worker_cli(stack.env, "doctor")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    [pending] = [row for row in rows(fresh.stdout) if row.startswith("clickhouse warn")]
    assert "worker db migrate" in pending
    assert worker_cli(stack.env, "db", "migrate").returncode == 0
    done = worker_cli(stack.env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    checks = Counter(row.split()[0] for row in table)
    assert checks == {
        "configuration": 1,
        "kafka": 1,
        "topics": len(DECLARED.topic),
        "redis": 1,
        "clickhouse": 2,
        "worker": 1,
    }
    assert all(row.split()[1] == "ok" for row in table), table
    assert any("schema of worker is current" in row for row in table)
    assert "everything the worker needs is in place" in done.stdout


def test_doctor_names_each_broken_dependency_and_what_to_do(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack()
    env = {
        **stack.env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LIMITS_ON_REDIS_UNAVAILABLE": "reject",
    }
    done = worker_cli(env, "doctor", "--timeout", "3")
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    kafka = next(row for row in table if row.startswith("kafka "))
    assert kafka.split()[1] == "fail"
    assert "KAFKA_BOOTSTRAP_SERVERS" in kafka
    redis = next(row for row in table if row.startswith("redis "))
    assert redis.split()[1] == "fail"
    assert "REDIS_URL" in redis
    assert any(row.startswith("clickhouse ok") for row in table), "the others are still checked"


def test_doctor_tells_to_create_missing_topics(worker_stack: Callable[..., WorkerStack]) -> None:
    stack = worker_stack()
    done = worker_cli({**stack.env, "KAFKA_TOPIC_PREFIX": f"{stack.run_id}-none."}, "doctor")
    assert done.returncode == 1
    missing = [row for row in rows(done.stdout) if row.startswith("topics fail")]
    assert len(missing) == len(DECLARED.topic)
    assert all("worker topics create" in row for row in missing)


def test_doctor_lists_every_invalid_setting(worker_stack: Callable[..., WorkerStack]) -> None:
    stack = worker_stack()
    env = {**stack.env, "WORKER_BATCH_MAX": "lots", "KAFKA_SESSION_TIMEOUT_S": "1"}
    done = worker_cli(env, "doctor")
    assert done.returncode == 1
    failing = [row for row in rows(done.stdout) if row.startswith("configuration fail")]
    assert len(failing) == 2
    assert any("WORKER_BATCH_MAX" in row for row in failing)
    assert any("KAFKA_SESSION_TIMEOUT_S" in row for row in failing)


def test_load_publishes_the_requested_count_with_the_share_of_broken_ones(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack()
    done = worker_cli(stack.env, "load", "--count", "60", "--rate", "400", "--invalid", "0.1")
    assert done.returncode == 0, done.stderr
    assert f"published 60 requests (6 broken) to {stack.topics.requests}" in done.stdout
    published = read_topics(
        stack.bootstrap,
        [stack.topics.requests],
        until=lambda seen: len(seen) >= 60,
        timeout_s=60,
        settle_s=1,
    )
    assert len(published) == 60
    parsed = 0
    for record in published:
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        parsed += isinstance(body, dict) and body.get("operation") in ("price.quote", "text.stats")
    assert parsed >= 54
