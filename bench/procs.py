"""The processes under test: workers and baselines, each with its own log file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from bench.stack import REPO, RunStack, free_port


@dataclass
class Proc:
    """A process the benchmark started and must stop."""

    label: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    async def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL after ``timeout_s``)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.popen.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = await asyncio.to_thread(self.popen.wait, 30)
        self._log.close()
        return code


def spawn(label: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> Proc:
    log = log_path.open("wb")
    popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    return Proc(label, popen, log_path, log)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker process of an arm: where its code, chDB and state live."""

    arm: str
    index: int
    src: Path
    chdb: Path
    env: dict[str, str]


def worker_specs(
    stack: RunStack, arm: str, src: Path, topics_file: Path, processes: int
) -> list[WorkerSpec]:
    """The environment of each worker process of an arm: one consumer group, own chDB each."""
    specs = []
    # Nothing of the caller's worker configuration leaks in: chDB, not a server URL.
    ours = (
        "KAFKA_",
        "CLICKHOUSE_",
        "WORKER_",
        "LIMITS_",
        "REDIS_KEY_PREFIX",
        "SECURITY_",
        "CACHE_",
    )
    if stack.master_key is None:
        auth = {"SECURITY_AUTH_MODES": "none"}
    else:
        # One run signs its requests once; arms that drain them minutes later must
        # not find them stale (the idempotency TTL has to stay above the skew).
        auth = {
            "SECURITY_MASTER_KEY": stack.master_key,
            "SECURITY_CLOCK_SKEW_S": "3600",
            "SECURITY_IDEMPOTENCY_TTL_S": "7200",
        }
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for index in range(processes):
        home = stack.workdir / arm / f"p{index}"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **base,
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "KAFKA_TOPIC_PREFIX": f"{stack.run_id}.",
            "REDIS_KEY_PREFIX": stack.redis(arm).key_prefix,
            **auth,
            "CLICKHOUSE_PATH": str(home / "chdb"),
            "WORKER_APP_ID": f"{stack.run_id}-{arm}",
            "WORKER_DATA_DIR": str(home / "data"),
            "WORKER_TOPICS_FILE": str(topics_file),
            "WORKER_WEB_PORT": str(free_port()),
            # Each process serves its own chDB over HTTP: ports of their own.
            "CLICKHOUSE_HTTP_PORT": str(free_port()),
            "WORKER_LOG_LEVEL": "warning",
            # The limiter still takes its Redis round trip per batch, but grants
            # everything: a benchmark of rate_limited answers would measure nothing.
            "LIMITS_RATE_PER_SECOND": "1000000000",
            "LIMITS_RATE_BURST": "1000000000",
            "PYTHONDONTWRITEBYTECODE": "1",
            **dict(stack.worker_env),
        }
        specs.append(WorkerSpec(arm, index, src, home / "chdb", env))
    return specs


def spawn_worker(spec: WorkerSpec, stack: RunStack) -> Proc:
    return spawn(
        f"{spec.arm}#{spec.index}",
        [sys.executable, "-m", "worker", "run"],
        spec.env,
        spec.src,
        stack.workdir / spec.arm / f"p{spec.index}" / "worker.log",
    )


def query_rows(spec: WorkerSpec) -> dict[str, object]:
    """What the worker's chDB holds, read with ``worker db query`` once the worker stopped."""
    sql = (
        "SELECT count() AS rows, uniqExact(source_partition, source_offset) AS positions, "
        "toUnixTimestamp64Milli(min(received_at)) AS first_received_ms, "
        "toUnixTimestamp64Milli(max(processed_at)) AS last_processed_ms, "
        "arraySort(groupUniqArray(source_partition)) AS partitions FROM requests"
    )
    done = subprocess.run(
        [sys.executable, "-m", "worker", "db", "query", sql, "--format", "json"],
        env=spec.env,
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker db query failed: {done.stderr.decode(errors='replace')}")
    row: dict[str, object] = orjson.loads(done.stdout.splitlines()[0])
    return row


def _metrics(spec: WorkerSpec) -> list[str]:
    """The lines of the worker's ``/metrics``."""
    url = f"http://127.0.0.1:{spec.env['WORKER_WEB_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode()).splitlines()


def rows_stored(spec: WorkerSpec) -> tuple[int, float]:
    """``requests`` rows ClickHouse confirmed so far, and when it confirmed the last insert."""
    rows, last = 0, 0.0
    for line in _metrics(spec):
        if line.startswith('worker_clickhouse_inserted_rows_total{table="requests"}'):
            rows = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith('worker_clickhouse_last_insert_timestamp_seconds{table="requests"}'):
            last = float(line.rsplit(" ", 1)[1])
    return rows, last


def stage_seconds(spec: WorkerSpec) -> dict[str, float]:
    """Seconds the worker spent in each stage so far, from its ``/metrics`` (all batches)."""
    out: dict[str, float] = {}
    for line in _metrics(spec):
        if line.startswith("worker_stage_duration_seconds_sum{"):
            labels, value = line.rsplit(" ", 1)
            stage = labels.split('stage="', 1)[1].split('"', 1)[0]
            out[stage] = round(float(value), 3)
    return dict(sorted(out.items(), key=lambda item: -item[1]))
