"""The group coordinator state read from a real aiokafka consumer in a group on the broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import Services
from worker.observability.group import group_state

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_a_member_of_a_group_shows_its_coordinator_generation_and_waiting_tasks(
    services: Services,
) -> None:
    topic = f"group-state-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=services.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=services.bootstrap,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
    )
    assert group_state(None) == {"coordinator": "none (the consumer has not started)"}
    await consumer.start()
    try:
        for _ in range(600):  # the group's first join takes a few seconds at most
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        assert consumer.assignment()
        state = group_state(consumer)
        assert isinstance(state["coordinator_id"], int)
        assert state["generation"] >= 1
        assert state["member_id"]
        assert state["lookup_locked"] is False
        assert state["commit_locked"] is False
        for task in ("coordination_task", "heartbeat_task", "metadata_task"):
            assert state[task].startswith("waiting in "), (task, state[task])
        # The chain of awaits, outermost first, each with its line.
        assert state["coordination_task"].startswith("waiting in _coordination_routine:")
        assert " > __coordination_routine:" in state["coordination_task"]
    finally:
        await consumer.stop()
    stopped = group_state(consumer)
    assert stopped["coordination_task"] in {"cancelled", "ended"}, stopped
