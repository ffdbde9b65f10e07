"""The batch feed: bounded by records, small fetches packed into one batch."""

from __future__ import annotations

import asyncio

import pytest

from worker.intake import BatchFeed, BatchTaker


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


def test_the_feed_is_full_when_a_fetch_waits_for_room() -> None:
    async def run() -> None:
        feed = BatchFeed(["requests"], max_records=10)
        await feed.put(_fetch(0, 6))
        assert not feed.full()
        blocked = asyncio.create_task(feed.put(_fetch(6, 6)))
        await asyncio.wait_for(feed.wait_until(feed.full), 1)
        await feed.take(10)
        await asyncio.wait_for(blocked, 1)
        assert not feed.full()

    asyncio.run(run())


class Backlog:
    """What the broker holds beyond the read offsets, as the consumer would report it."""

    def __init__(self) -> None:
        self.records = 0

    def __call__(self) -> int:
        return self.records


def _taker(max_records: int = 100) -> tuple[BatchFeed, BatchTaker, Backlog]:
    feed = BatchFeed(["requests"], max_records=max_records)
    backlog = Backlog()
    return feed, BatchTaker(feed, max_records, backlog), backlog


def test_with_nothing_delivering_a_batch_is_taken_at_once() -> None:
    async def run() -> list[int]:
        feed, taker, _ = _taker()
        await feed.put([1, 2])
        return await asyncio.wait_for(taker.take(), 1)

    assert asyncio.run(run()) == [1, 2]


def test_while_a_batch_is_delivered_the_next_one_gathers_until_delivery_ends() -> None:
    async def run() -> list[int]:
        feed, taker, _ = _taker()
        taker.delivering()
        await feed.put([1, 2])
        taking = asyncio.create_task(taker.take())
        await asyncio.sleep(0.01)
        assert not taking.done(), "two records and no backlog: wait for the delivery"
        await feed.put([3])
        await asyncio.sleep(0.01)
        assert not taking.done()
        taker.delivered()
        return await asyncio.wait_for(taking, 1)

    assert asyncio.run(run()) == [1, 2, 3]


def test_a_backlog_on_the_broker_makes_the_batch_go_while_another_is_delivered() -> None:
    async def run() -> list[int]:
        feed, taker, backlog = _taker()
        taker.delivering()
        await feed.put([1, 2])
        taking = asyncio.create_task(taker.take())
        await asyncio.sleep(0.01)
        assert not taking.done()
        backlog.records = 98  # with the feed's two: a whole batch waiting
        await feed.put([3])  # the next fetch arriving is when it is noticed
        return await asyncio.wait_for(taking, 1)

    assert asyncio.run(run()) == [1, 2, 3]


def test_a_full_feed_makes_the_batch_go_while_another_is_delivered() -> None:
    async def run() -> list[int]:
        feed, taker, _ = _taker(max_records=4)
        taker.delivering()
        await feed.put([1, 2, 3])
        taking = asyncio.create_task(taker.take())
        await asyncio.sleep(0.01)
        assert not taking.done()
        blocked = asyncio.create_task(feed.put([4, 5]))  # no room: the feed is full
        taken = await asyncio.wait_for(taking, 1)
        await asyncio.wait_for(blocked, 1)
        return taken

    assert asyncio.run(run()) == [1, 2, 3]
