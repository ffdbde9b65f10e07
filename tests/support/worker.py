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
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from worker.app import TopicNames
from worker.auth.credentials.redis import RedisCredentialStore
from worker.auth.keys import KeyManager, KeyMaterial
from worker.auth.secrets import SecretBox, new_master_key
from worker.clickhouse.endpoint.discovery import EndpointInfo, endpoint_file, running
from worker.kafka_admin import create_topics
from worker.loadgen import SampleRequest, sign_samples
from worker.operations.registry import default_registry
from worker.reference.publish import ReferenceData, demo_reference_data, publish_reference
from worker.settings import KafkaSettings, RedisSettings, SecuritySettings
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
    http_port: int = field(default_factory=free_port)
    master_key: str = field(default_factory=new_master_key)
    keys: dict[str, KeyMaterial] = field(default_factory=dict)
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
            "CLICKHOUSE_HTTP_PORT": str(self.http_port),
            "WORKER_LOG_LEVEL": "info",
            "SECURITY_MASTER_KEY": self.master_key,
            **self.extra_env,
        }

    def key_manager_run(self, action: Any) -> Any:
        """Run ``action(manager)`` against this stack's credential store (real Redis)."""
        redis = RedisSettings(url=self.redis_url, key_prefix=f"{self.run_id}:")
        box = SecretBox(SecuritySettings(master_key=self.master_key).master_key_bytes())

        async def run() -> Any:
            store = RedisCredentialStore(redis)
            try:
                return await action(KeyManager(store, box))
            finally:
                await store.close()

        return asyncio.run(run())

    def key_for(self, tenant: str, scopes: frozenset[str] | None = None) -> KeyMaterial:
        """An API key for ``tenant`` (every scope unless told), created once per tenant."""
        if tenant not in self.keys or scopes is not None:
            wanted = default_registry().scopes() if scopes is None else scopes
            issued = self.key_manager_run(lambda m: m.create(tenant, wanted))
            if scopes is not None:
                return issued.material()  # type: ignore[no-any-return]
            self.keys[tenant] = issued.material()
        return self.keys[tenant]

    def sign(self, samples: list[SampleRequest], *tenants: str) -> list[SampleRequest]:
        """``samples`` signed with a key of the tenant each names (``acme``'s otherwise)."""
        for tenant in {"acme", *tenants}:
            self.key_for(tenant)
        return sign_samples(samples, self.keys)

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

    def wait(self, timeout_s: float) -> int:
        """Wait for the process to exit on its own; its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL: no chance to flush, commit or close anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self._close_log()

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for the process to end by itself (a fault point); return its exit status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._close_log()

    def rss_bytes(self) -> int:
        """The worker process's resident memory, from /proc."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def monitor(self) -> dict[str, Any]:
        """Faust's monitor statistics from the worker's web server (needs WORKER_WEB_STATS)."""
        url = f"http://127.0.0.1:{self.web_port}/"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats = orjson.loads(response.read())
        for sensor in stats.values():
            if isinstance(sensor, dict) and "topic_read_offsets" in sensor:
                return sensor
        raise AssertionError(f"no monitor in the worker's stats: {stats}")

    def logs(self, tail: int | None = None) -> str:
        """The worker's logs, every run in start order, each cut to its last ``tail`` characters.

        Whole files by default: tests search them for specific lines, which a tail can
        miss now that every record is a JSON object.
        """
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

    def endpoint(self, timeout_s: float = 120.0) -> EndpointInfo:
        """The running worker's ClickHouse HTTP endpoint, once it answers ``/ping``."""
        path = endpoint_file(self.root / "data")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.alive(), f"the worker exited:\n{self.logs()}"
            info = running(path, self.root / "chdb")
            if info is not None:
                try:
                    with urllib.request.urlopen(f"{info.url}/ping", timeout=5) as answer:  # noqa: S310
                        if answer.read() == b"Ok.\n":
                            return info
                except OSError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"no ClickHouse HTTP endpoint within {timeout_s}s:\n{self.logs()}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run ``worker ARGS`` with this stack's environment.

        ``worker db query`` goes through the running worker's endpoint; commands that
        open chDB themselves need the worker stopped.
        """
        return subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            check=False,
            timeout=120,
        )

    def query(self, sql: str, **params: str) -> list[dict[str, Any]]:
        """Run read-only SQL through ``worker db query`` (chDB is one process at a time)."""
        bound = [arg for name, value in params.items() for arg in ("-p", f"{name}={value}")]
        done = self.cli("db", "query", sql, "--format", "json", *bound)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
