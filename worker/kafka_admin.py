"""Creates the declared topics on a broker and checks a broker against them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from worker.connections.kafka import client_options, start_client
from worker.errors import ConfigurationError
from worker.settings import KafkaSettings
from worker.topology import Topology

_SETTLE_S = 15.0


@dataclass(frozen=True, slots=True)
class TopicReport:
    """How one declared topic compares with the broker."""

    name: str
    exists: bool
    problems: tuple[str, ...] = ()
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.exists and not self.problems


def _admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **client_options(settings),
        client_id="request-worker-admin",
        request_timeout_ms=15000,
    )


async def check_topics(settings: KafkaSettings, topology: Topology) -> list[TopicReport]:
    """Compare every declared topic with what the broker has."""
    admin = _admin(settings)
    await start_client(admin, settings)
    try:
        return await _check(admin, settings, topology)
    finally:
        await admin.close()


async def _check(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topology: Topology
) -> list[TopicReport]:
    existing = set(await admin.list_topics())
    names = [settings.topic(spec.name) for spec in topology.topic]
    present = [name for name in names if name in existing]
    described = {d["topic"]: d for d in await admin.describe_topics(present)} if present else {}
    configs: dict[str, dict[str, str]] = {}
    if present:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                # (error_code, error_message, type, name, configs)
                configs[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    reports = []
    for spec, name in zip(topology.topic, names, strict=True):
        if name not in existing:
            reports.append(TopicReport(name, exists=False, problems=("missing",)))
            continue
        problems = []
        partitions = described[name]["partitions"]
        if len(partitions) != spec.partitions:
            problems.append(f"partitions {len(partitions)} != declared {spec.partitions}")
        replicas = len(partitions[0]["replicas"]) if partitions else 0
        if replicas != spec.replication_factor:
            problems.append(f"replication {replicas} != declared {spec.replication_factor}")
        for key, want in spec.config().items():
            have = configs.get(name, {}).get(key)
            if have != want:
                problems.append(f"{key} {have} != declared {want}")
        reports.append(TopicReport(name, exists=True, problems=tuple(problems)))
    return reports


async def create_topics(settings: KafkaSettings, topology: Topology) -> list[TopicReport]:
    """Create the declared topics that are missing; report on all of them."""
    admin = _admin(settings)
    await start_client(admin, settings)
    try:
        before = await _check(admin, settings, topology)
        missing = {report.name for report in before if not report.exists}
        new = [
            NewTopic(
                name=settings.topic(spec.name),
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=spec.config(),
            )
            for spec in topology.topic
            if settings.topic(spec.name) in missing
        ]
        if new:
            await admin.create_topics(new, timeout_ms=30000)
        after = await _check(admin, settings, topology)
        # Metadata of new topics reaches every broker a moment after creation.
        deadline = asyncio.get_running_loop().time() + _SETTLE_S
        while not all(r.ok for r in after) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            after = await _check(admin, settings, topology)
    finally:
        await admin.close()
    return [
        TopicReport(r.name, r.exists, r.problems, created=r.name in missing and r.exists)
        for r in after
    ]


async def ensure_topics(settings: KafkaSettings, topology: Topology, *, create: bool) -> None:
    """Fail start-up unless every declared topic exists as declared."""
    reports = await (create_topics if create else check_topics)(settings, topology)
    bad = [report for report in reports if not report.ok]
    if bad:
        lines = "; ".join(f"{r.name}: {', '.join(r.problems)}" for r in bad)
        raise ConfigurationError(
            f"topics do not match topics/ declarations: {lines}. "
            "Operator action: run `worker topics create` (or fix the broker)."
        )


async def ensure_reply_topics(settings: KafkaSettings) -> None:
    """Fail start-up if a ``KAFKA_REPLY_TO_ALLOWLIST`` topic does not exist.

    A response routed to a missing topic could never be confirmed, and the batch
    would stall on its publish; refusing to start names the problem instead.
    """
    wanted = settings.reply_to_topics
    if not wanted:
        return
    admin = _admin(settings)
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = sorted(wanted - existing)
    if missing:
        raise ConfigurationError(
            f"KAFKA_REPLY_TO_ALLOWLIST names topics the broker does not have: {missing}. "
            "Operator action: create them, or remove them from the allowlist."
        )
