"""The batch feed: bounded by records, small fetches packed into one batch."""

from __future__ import annotations

import asyncio

import pytest

from worker.intake import BatchFeed


def _fetch(start: int, size: int) -> list[int]:
    return list(range(start, start + size))


def test_small_fetches_are_taken_together_in_order() -> None:
    async def run() -> list[list[int]]:
        feed = BatchFeed(["requests"], max_records=100)
        for start, size in ((0, 3), (3, 2), (5, 4)):
            await feed.put(_fetch(start, size))
        assert feed.records() == 9
        taken = [await feed.take(100)]
        assert feed.records() == 0
        return taken

    assert asyncio.run(run()) == [list(range(9))]


def test_take_stops_before_a_fetch_that_would_pass_the_limit() -> None:
    async def run() -> list[list[int]]:
        feed = BatchFeed(["requests"], max_records=100)
        await feed.put(_fetch(0, 40))
        await feed.put(_fetch(40, 40))
        await feed.put(_fetch(80, 20))
        return [await feed.take(50), await feed.take(60)]

    assert asyncio.run(run()) == [_fetch(0, 40), _fetch(40, 60)]


def test_put_waits_while_the_records_would_pass_the_bound() -> None:
    async def run() -> None:
        feed = BatchFeed(["requests"], max_records=10)
        await feed.put(_fetch(0, 6))
        blocked = asyncio.create_task(feed.put(_fetch(6, 6)))
        await asyncio.sleep(0.01)
        assert not blocked.done(), "12 records would pass the bound of 10"
        assert await feed.take(100) == _fetch(0, 6)
        await asyncio.wait_for(blocked, 1)
        assert feed.records() == 6

    asyncio.run(run())


def test_a_fetch_larger_than_the_bound_enters_an_empty_feed_alone() -> None:
    async def run() -> None:
        feed = BatchFeed(["requests"], max_records=10)
        await asyncio.wait_for(feed.put(_fetch(0, 25)), 1)
        blocked = asyncio.create_task(feed.put(_fetch(25, 1)))
        await asyncio.sleep(0.01)
        assert not blocked.done()
        assert await feed.take(10) == _fetch(0, 25)
        await asyncio.wait_for(blocked, 1)

    asyncio.run(run())


def test_take_waits_for_a_fetch() -> None:
    async def run() -> list[int]:
        feed = BatchFeed(["requests"], max_records=10)
        waiting = asyncio.create_task(feed.take(10))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await feed.put([1, 2])
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(run()) == [1, 2]


def test_the_bound_is_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BatchFeed(["requests"], max_records=0)
