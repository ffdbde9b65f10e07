"""The group coordinator state of a consumer whose coordination task ended."""

from __future__ import annotations

import asyncio

import pytest

from worker.observability.group import as_text, described, group_state


@pytest.mark.asyncio
async def test_a_task_that_ended_with_an_error_says_so() -> None:
    class Coordinator:
        coordinator_id = None

    async def fails() -> None:
        raise RuntimeError("lookup failed")

    coordinator = Coordinator()
    task = asyncio.create_task(fails())
    await asyncio.wait([task])
    coordinator._coordination_task = task  # type: ignore[attr-defined]

    class Consumer:
        _coordinator = coordinator

    state = group_state(Consumer())
    assert state["coordinator_id"] is None
    assert state["coordination_task"] == "ended: RuntimeError('lookup failed')"
    assert state["heartbeat_task"] is None
    assert state["metadata_task"] is None


def test_a_state_reads_as_name_value_pairs() -> None:
    assert as_text({"coordinator_id": None, "generation": 3}) == "coordinator_id=None, generation=3"


def test_describers_are_merged_and_one_that_fails_says_so() -> None:
    def broken() -> dict[str, object]:
        raise AttributeError("_coordinator")

    state = described(lambda: {"coordinator_id": 1}, broken)
    assert state == {"coordinator_id": 1, "described": "failed: AttributeError('_coordinator')"}
