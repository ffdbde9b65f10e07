"""The bound on answered batches whose rows wait for ClickHouse."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from worker.agents import UnstoredBatches
from worker.flow.deliver import Answered


def answered(name: str) -> Answered:
    # The bound only counts messages; the answered batch is carried through as is.
    return cast("Answered", name)


async def finishes(awaitable: Any, within_s: float = 0.05) -> bool:
    """Whether ``awaitable`` completes within ``within_s`` (it is cancelled otherwise)."""
    try:
        await asyncio.wait_for(awaitable, within_s)
    except TimeoutError:
        return False
    return True


@pytest.mark.asyncio
async def test_answering_waits_past_the_bound_until_batches_are_stored() -> None:
    unstored = UnstoredBatches(limit=10)
    assert await finishes(unstored.room_for(6))
    unstored.add(answered("a"), [1] * 6)
    assert await finishes(unstored.room_for(4))
    unstored.add(answered("b"), [1] * 4)
    assert unstored.held == 10

    blocked = asyncio.ensure_future(unstored.room_for(1))
    await asyncio.sleep(0.01)
    assert not blocked.done(), "no room past the bound"
    taken = unstored.take()
    assert [name for name, _ in taken] == ["a", "b"]
    assert not blocked.done(), "taken for storing is still held"
    unstored.stored(taken)
    assert await finishes(blocked)
    assert unstored.held == 0


@pytest.mark.asyncio
async def test_a_batch_larger_than_the_bound_fits_when_nothing_is_held() -> None:
    unstored = UnstoredBatches(limit=10)
    assert await finishes(unstored.room_for(25))
    unstored.add(answered("big"), [1] * 25)
    assert not await finishes(unstored.room_for(1))


@pytest.mark.asyncio
async def test_store_first_waits_until_every_answered_batch_is_stored() -> None:
    unstored = UnstoredBatches(limit=10)
    assert await finishes(unstored.emptied())
    unstored.add(answered("a"), [1, 2])
    emptied = asyncio.ensure_future(unstored.emptied())
    waiting = asyncio.ensure_future(unstored.waiting())
    assert await finishes(waiting)
    batches = unstored.take()
    assert not await finishes(asyncio.shield(emptied))
    unstored.stored(batches)
    assert await finishes(emptied)
    assert not await finishes(unstored.waiting()), "nothing waits to be stored"
