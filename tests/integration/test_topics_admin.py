"""Topic declarations against the real broker: create, check, refuse to start on a mismatch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import Services
from tests.support.worker import REPO
from worker.errors import ConfigurationError
from worker.kafka_admin import check_topics, create_topics, ensure_reply_topics, ensure_topics
from worker.settings import KafkaSettings
from worker.topology import load_topology

pytestmark = pytest.mark.integration

TOPOLOGY = load_topology(REPO / "topics" / "topics.toml")


def _settings(services: Services) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=services.bootstrap, topic_prefix=f"adm{uuid.uuid4().hex[:8]}."
    )


def test_create_makes_every_declared_topic_and_check_then_agrees(services: Services) -> None:
    settings = _settings(services)
    before = asyncio.run(check_topics(settings, TOPOLOGY))
    assert [r.exists for r in before] == [False] * len(TOPOLOGY.topic)

    created = asyncio.run(create_topics(settings, TOPOLOGY))
    assert all(r.created and r.ok for r in created), created

    again = asyncio.run(create_topics(settings, TOPOLOGY))
    assert all(r.ok and not r.created for r in again), "creating twice changes nothing"
    asyncio.run(ensure_topics(settings, TOPOLOGY, create=False))


def test_check_reports_a_topic_that_differs_from_its_declaration(services: Services) -> None:
    settings = _settings(services)
    spec = TOPOLOGY.by_role("responses")

    async def make_wrong_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=services.bootstrap)
        await admin.start()
        name = settings.topic(spec.name)
        try:
            response = await admin.create_topics(
                [NewTopic(name, num_partitions=1, replication_factor=1)], timeout_ms=30000
            )
            assert [error[1] for error in response.topic_errors] == [0], response
            # The broker answers before every metadata view lists the new topic.
            deadline = asyncio.get_running_loop().time() + 30
            while name not in await admin.list_topics():
                assert asyncio.get_running_loop().time() < deadline, f"{name} never listed"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    asyncio.run(make_wrong_topic())
    reports = {r.name: r for r in asyncio.run(check_topics(settings, TOPOLOGY))}
    wrong = reports[settings.topic(spec.name)]
    assert wrong.exists
    assert any("partitions 1 != declared 4" in p for p in wrong.problems), wrong.problems
    with pytest.raises(ConfigurationError, match="worker topics create"):
        asyncio.run(ensure_topics(settings, TOPOLOGY, create=False))


def test_the_worker_refuses_to_start_without_its_topics(services: Services) -> None:
    prefix = f"none{uuid.uuid4().hex[:8]}."
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        env={
            "PATH": "/usr/bin:/bin",
            "KAFKA_BOOTSTRAP_SERVERS": services.bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "WORKER_TOPICS_FILE": str(REPO / "topics" / "topics.toml"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration_invalid" in done.stderr
    assert f"{prefix}requests: missing" in done.stderr


def test_an_allowlisted_reply_topic_that_does_not_exist_refuses_start_up(
    services: Services,
) -> None:
    settings = _settings(services)
    asyncio.run(create_topics(settings, TOPOLOGY))
    present = settings.topic("requests")
    missing = settings.topic("no-such-replies")
    ok = settings.model_copy(update={"reply_to_allowlist": present})
    asyncio.run(ensure_reply_topics(ok))
    bad = settings.model_copy(update={"reply_to_allowlist": f"{present},{missing}"})
    with pytest.raises(ConfigurationError, match="no-such-replies"):
        asyncio.run(ensure_reply_topics(bad))
