"""The services, topics and working directory of one benchmark run.

Every run gets a unique prefix, so its topics, consumer groups and Redis keys
never meet those of the tests or other runs sharing the broker. Output topics
are switched to ``LogAppendTime``: the broker then stamps each response with
the moment it was appended, which is "response published" without depending
on when a consumer in this process happened to poll.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bench.keys import copy_keys, create_keys, sign
from bench.load import Signer
from worker.auth.secrets import new_master_key
from worker.kafka_admin import create_topics
from worker.loadgen import TENANTS
from worker.reference.publish import demo_reference_data, publish_reference
from worker.settings import KafkaSettings, RedisSettings
from worker.topology import TopicSpec, Topology, load_topology

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOPICS = REPO / "topics" / "topics.toml"


def services_up() -> None:
    """Start (or find running) the local broker and Redis; idempotent."""
    subprocess.run(["bash", str(REPO / "services" / "run.sh"), "up"], check=True, cwd=REPO)


def service_pids() -> dict[str, int]:
    """The broker's and Redis's process ids, to sample their CPU; empty if unknown."""
    services_dir = Path(os.environ.get("SERVICES_DIR", REPO / ".services"))
    pids = {}
    for name, path in (("broker", "kafka/kafka.pid"), ("redis", "redis/redis.pid")):
        try:
            pids[name] = int((services_dir / path).read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic strings.
    return orjson.dumps(value).decode()


def write_topics_file(path: Path, topology: Topology) -> None:
    """Write ``topology`` as a topics file the worker reads (``WORKER_TOPICS_FILE``)."""
    lines = []
    for spec in topology.topic:
        lines += [
            "[[topic]]",
            f"name = {_toml_string(spec.name)}",
            f"role = {_toml_string(spec.role)}",
            f"partitions = {spec.partitions}",
            f"replication_factor = {spec.replication_factor}",
            f"cleanup_policy = {_toml_string(spec.cleanup_policy)}",
            f"retention_ms = {spec.retention_ms}",
            f"key = {_toml_string(spec.key)}",
            f"value = {_toml_string(spec.value)}",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


@dataclass
class RunStack:
    """Names and places of one run: ``bench-<time>-<hex>`` prefixes everything."""

    bootstrap: str
    run_id: str
    workdir: Path
    #: The run's master key when requests are signed; None runs the worker without
    #: authentication (``SECURITY_AUTH_MODES=none``).
    master_key: str | None = None
    #: Settings given to every worker process of the run (``--worker-env``).
    worker_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def create(
        cls, bootstrap: str, *, signed: bool = True, worker_env: tuple[tuple[str, str], ...] = ()
    ) -> RunStack:
        run_id = f"bench-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
        workdir = REPO / ".data" / "bench" / run_id
        workdir.mkdir(parents=True)
        return cls(bootstrap, run_id, workdir, new_master_key() if signed else None, worker_env)

    def redis(self, arm: str = "keys") -> RedisSettings:
        """Redis as an arm sees it: its own key prefix under the run's."""
        return RedisSettings(key_prefix=f"{self.run_id}:{arm}:")

    async def create_keys(self) -> Signer | None:
        """API keys for the run (if it signs), and the signer of its requests."""
        if self.master_key is None:
            return None
        keys = await create_keys(self.redis(), self.master_key, TENANTS)
        return partial(sign, keys)

    async def share_keys(self, arm: str) -> None:
        """Give ``arm`` the run's API keys (each arm has a Redis key space of its own)."""
        if self.master_key is not None:
            await copy_keys(self.redis(), self.redis(arm))

    async def create_reference_topics(self) -> int:
        """The reference topics, shared by every arm, with the demo catalog published."""
        base = load_topology(DEFAULT_TOPICS)
        topology = Topology(topic=[s for s in base.topic if s.role.startswith("reference_")])
        reports = await create_topics(self.kafka, topology)
        if not all(r.ok for r in reports):
            raise RuntimeError(f"reference topics not created as declared: {reports}")
        return await publish_reference(self.kafka, base, demo_reference_data())

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=f"{self.run_id}.")

    def topic(self, name: str) -> str:
        return self.kafka.topic(name)

    def arm_topology(self, arm: str, requests: str = "requests") -> Topology:
        """The declared topics with the arm's own responses and dead-letter topics.

        Every worker arm reads the shared ``requests`` topic (same messages) and
        answers into topics of its own, so that arms never see each other's output.
        """
        base = load_topology(DEFAULT_TOPICS)

        def name(spec: TopicSpec) -> str:
            if spec.role == "requests":
                return requests
            if spec.role.startswith("reference_"):
                return spec.name  # read-only input, shared like the requests
            return f"{arm}.{spec.name}"

        specs = [spec.model_copy(update={"name": name(spec)}) for spec in base.topic]
        return Topology(topic=specs)

    async def create_requests_topic(self, name: str = "requests") -> str:
        """The requests topic every arm of the run reads, as the worker declares it."""
        spec = load_topology(DEFAULT_TOPICS).by_role("requests").model_copy(update={"name": name})
        reports = await create_topics(self.kafka, Topology(topic=[spec]))
        if not all(r.ok for r in reports):
            raise RuntimeError(f"requests topic not created as declared: {reports}")
        return self.topic(name)

    async def create_arm_topics(self, arm: str, requests: str = "requests") -> Path:
        """Create the arm's topics (through the worker's own admin code) and its topics file."""
        topology = self.arm_topology(arm, requests)
        own = Topology(topic=[s for s in topology.topic if not s.role.startswith("reference_")])
        reports = await create_topics(self.kafka, own)
        bad = [r for r in reports if not r.ok]
        if bad:
            raise RuntimeError(f"topics not created as declared: {bad}")
        outputs = [spec for spec in topology.topic if spec.role in ("responses", "dead_letters")]
        await self._log_append_time(outputs)
        path = self.workdir / f"topics-{arm}.toml"
        write_topics_file(path, topology)
        return path

    async def create_output_topic(self, name: str, partitions: int = 4) -> str:
        """A baseline's output topic, stamped with ``LogAppendTime`` like the worker's."""
        full = self.topic(name)
        admin = self._admin()
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name=full,
                        num_partitions=partitions,
                        replication_factor=1,
                        topic_configs={"message.timestamp.type": "LogAppendTime"},
                    )
                ],
                timeout_ms=30000,
            )
        finally:
            await admin.close()
        return full

    async def _log_append_time(self, specs: list[TopicSpec]) -> None:
        admin = self._admin()
        await admin.start()
        try:
            # AlterConfigs replaces a topic's whole config: restate what is declared.
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        self.topic(spec.name),
                        configs={**spec.config(), "message.timestamp.type": "LogAppendTime"},
                    )
                    for spec in specs
                ]
            )
        finally:
            await admin.close()

    async def delete_topics(self) -> int:
        """Delete every topic of this run (and only those: they carry its prefix)."""
        admin = self._admin()
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(f"{self.run_id}.")]
            if mine:
                await admin.delete_topics(mine, timeout_ms=30000)
            return len(mine)
        finally:
            await admin.close()

    def _admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id="bench-admin", request_timeout_ms=30000
        )
