"""The suite's own broker and Redis, which its scenarios may kill.

Other people's tests run on the shared services (9092/6379), so the suite never
touches them: it starts a second pair with ``services/run.sh`` under its own
``SERVICES_DIR`` and free ports, reusing the shared Kafka jar cache
(``KAFKA_LIBS_DIR``), with a small broker heap. Killing the broker is SIGKILL to
its java process (the pid file ``run.sh`` keeps); starting it again is
``run.sh up`` on the same data. Redis keeps its data only in memory (see
``services/redis/redis.conf``), so "unreachable" is SIGSTOP, then SIGCONT: its
clients time out exactly as behind a network partition, and the API keys and
replay outcomes are still there afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_SH = REPO / "services" / "run.sh"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shared_jar_cache() -> Path:
    """Where the shared services keep the Kafka jars (``run.sh``'s default cache)."""
    shared = Path(os.environ.get("SERVICES_DIR", REPO / ".services"))
    return shared / "cache" / "kafka-libs"


@dataclass
class DedicatedServices:
    """A broker and a Redis of the suite's own, under ``root``, on free ports."""

    root: Path
    kafka_port: int
    controller_port: int
    redis_port: int

    @classmethod
    def allocate(cls, root: Path) -> DedicatedServices:
        return cls(root, free_port(), free_port(), free_port())

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SERVICES_DIR": str(self.root),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "REDIS_PORT": str(self.redis_port),
            "KAFKA_LIBS_DIR": str(shared_jar_cache()),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
            "SERVICES_TIMEOUT": "120",
        }

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            ["bash", str(RUN_SH), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"services/run.sh {' '.join(args)} failed:\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-2000:]}"
            )

    def up(self) -> None:
        """Start both (or whichever is not running) and wait until they answer."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._run("up")

    def down(self) -> None:
        """Stop both and delete their data: every run starts from empty services."""
        self._run("down", "--wipe")

    def _pid(self, name: str) -> int:
        return int((self.root / name / f"{name}.pid").read_text().strip())

    def kafka_pid(self) -> int:
        return self._pid("kafka")

    def kill_broker(self) -> None:
        """SIGKILL the broker: no controlled shutdown, no flush; returns once it is gone."""
        pid = self.kafka_pid()
        os.kill(pid, signal.SIGKILL)
        # run.sh started it, so it is not our child to wait for: watch /proc instead.
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    async def start_broker(self) -> None:
        """Start the broker again on the data it left, and wait until it answers."""
        await asyncio.to_thread(self._run, "up")

    def pause_redis(self) -> None:
        os.kill(self._pid("redis"), signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self._pid("redis"), signal.SIGCONT)
