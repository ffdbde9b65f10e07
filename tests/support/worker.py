"""A worker process under test, with its own topics, consumer group and chDB directory."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from worker.app import TopicNames
from worker.kafka_admin import create_topics
from worker.reference.publish import ReferenceData, demo_reference_data, publish_reference
from worker.settings import KafkaSettings
from worker.topology import load_topology

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now (for the worker's web server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WorkerStack:
    """Everything one test's worker uses, isolated from other tests by a unique prefix."""

    bootstrap: str
    redis_url: str
    root: Path
    run_id: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    web_port: int = field(default_factory=free_port)
    _log: BinaryIO | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": f"{self.run_id}.",
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": f"{self.run_id}:",
            "CLICKHOUSE_PATH": str(self.root / "chdb"),
            "WORKER_APP_ID": self.run_id,
            "WORKER_DATA_DIR": str(self.root / "data"),
            "WORKER_TOPICS_FILE": str(REPO / "topics" / "topics.toml"),
            "WORKER_WEB_PORT": str(self.web_port),
            "WORKER_LOG_LEVEL": "info",
            **self.extra_env,
        }

    @property
    def topics(self) -> TopicNames:
        topology = load_topology(REPO / "topics" / "topics.toml")
        settings = KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=f"{self.run_id}.")
        return TopicNames(
            requests=settings.topic(topology.by_role("requests").name),
            responses=settings.topic(topology.by_role("responses").name),
            dead_letters=settings.topic(topology.by_role("dead_letters").name),
        )

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=f"{self.run_id}.")

    def create_topics(self) -> None:
        """Create the stack's topics and seed the reference data the sample requests use."""
        topology = load_topology(REPO / "topics/topics.toml")
        reports = asyncio.run(create_topics(self.kafka, topology))
        assert all(report.ok for report in reports), reports
        self.load_reference(demo_reference_data())

    def load_reference(self, data: ReferenceData) -> None:
        """Publish reference records to this stack's topics."""
        asyncio.run(publish_reference(self.kafka, load_topology(REPO / "topics/topics.toml"), data))

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        self._close_log()
        self._log = (self.root / f"worker-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=self.env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, and wait for a graceful exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._close_log()

    def kill(self) -> None:
        """SIGKILL: no chance to flush, commit or close anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self._close_log()

    def logs(self, tail: int | None = 4000) -> str:
        """The worker's logs, every run, each cut to its last ``tail`` characters (None: all)."""
        texts = [path.read_text(errors="replace") for path in sorted(self.root.glob("*.log"))]
        return "\n".join(text if tail is None else text[-tail:] for text in texts)

    def wait_for_log(self, pattern: str, *, count: int = 1, timeout_s: float = 120) -> str:
        """Until ``pattern`` (a regex) matched ``count`` times in the current run's log."""
        deadline = time.monotonic() + timeout_s
        path = self.root / f"worker-{self.starts}.log"
        text = ""
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace") if path.exists() else ""
            if len(re.findall(pattern, text)) >= count:
                return text
            assert self.alive(), f"the worker exited while waiting for {pattern!r}:\n{text[-4000:]}"
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not logged {count}x in {timeout_s}s:\n{text[-4000:]}")

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run read-only SQL through ``worker db query`` (chDB is one process at a time)."""
        assert not self.alive(), "stop the worker before opening its chDB directory"
        done = subprocess.run(
            [sys.executable, "-m", "worker", "db", "query", sql, "--format", "json"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
