"""One fetch through the intake: the feed's records as one batch, checked per partition."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP

from worker.intake import BatchConsumer, SeekLedger

R0, R1, R2 = TP("requests", 0), TP("requests", 1), TP("requests", 2)
CATALOG = TP("catalog", 0)


def record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 1_700_000_000_000 + offset, 0, b"k", b"v", None, 1, 1, []
    )


class Fetching:
    """A BatchConsumer with only what one fetch touches, and a log of what it did."""

    def __init__(self, records: dict[TP, list[int]], active: set[TP] | None = None) -> None:
        consumer: Any = object.__new__(_Running)
        self.consumer = consumer
        self.end_offsets: list[tuple[TP, int]] = []
        self.gaps: list[tuple[TP, int, int]] = []
        self.dispatched: list[tuple[TP, int]] = []
        self.seeks = 0
        consumer.app = SimpleNamespace(
            batch_feed=SimpleNamespace(topics=frozenset({"requests"})),
            consumer_generation_id=7,
            monitor=SimpleNamespace(
                track_tp_end_offset=lambda tp, offset: self.end_offsets.append((tp, offset))
            ),
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        )
        consumer.flow_active = True
        consumer._buffered_partitions = set()
        consumer._read_offset = defaultdict(lambda: None)
        consumer._thread = SimpleNamespace(ledger=SeekLedger())
        consumer._drained_at = 0
        consumer.highwater = lambda tp: 1000 + tp.partition
        fetched = {
            tp: [record(tp, offset) for offset in offsets] for tp, offsets in records.items()
        }

        async def wait_next_records(timeout: float) -> Any:  # noqa: ASYNC109
            return fetched, active

        async def add_gap(tp: TP, begin: int, end: int) -> None:
            self.gaps.append((tp, begin, end))
            await asyncio.sleep(0)

        async def callback(message: Any) -> None:
            self.dispatched.append((message.tp, message.offset))

        async def wait_first(*coros: Any) -> None:
            await coros[0]
            for coro in coros[1:]:
                coro.close()

        async def perform_seek() -> None:
            self.seeks += 1

        consumer._wait_next_records = wait_next_records
        consumer._add_gap = add_gap
        consumer.callback = callback
        consumer.wait_first = wait_first
        consumer.suspend_flow = SimpleNamespace(wait=lambda: asyncio.sleep(0))
        consumer.perform_seek = perform_seek

    def drain(self) -> list[Any]:
        batch: list[Any] = asyncio.run(self.consumer._drain_fetch(frozenset({"requests"})))
        return batch


class _Running(BatchConsumer):
    """A consumer that is not stopping (Faust's ``should_stop`` reads the service's state)."""

    @property
    def should_stop(self) -> bool:
        return False


def positions(batch: list[Any]) -> list[tuple[TP, int]]:
    return [(message.tp, message.offset) for message in batch]


def test_a_fetch_becomes_one_batch_of_faust_messages_and_other_topics_go_to_the_callback() -> None:
    fetching = Fetching({R0: [5, 6, 7], CATALOG: [3, 4], R1: [0, 1]})
    batch = fetching.drain()
    assert positions(batch) == [(R0, 5), (R0, 6), (R0, 7), (R1, 0), (R1, 1)]
    first = batch[0]
    assert (first.topic, first.partition, first.key, first.value) == ("requests", 0, b"k", b"v")
    assert first.timestamp == 1_700_000_000.005
    assert first.generation_id == 7
    assert not first.acked
    assert fetching.dispatched == [(CATALOG, 3), (CATALOG, 4)]
    # Each partition's end offset is told to Faust's monitor once per fetch.
    assert fetching.end_offsets == [(R0, 1000), (CATALOG, 1000), (R1, 1001)]
    assert dict(fetching.consumer._read_offset) == {R0: 7, CATALOG: 4, R1: 1}


def test_records_before_the_read_offset_are_skipped_and_missing_offsets_are_gaps() -> None:
    fetching = Fetching({R0: [3, 4, 6, 9, 10]})
    fetching.consumer._read_offset[R0] = 5
    batch = fetching.drain()
    assert positions(batch) == [(R0, 6), (R0, 9), (R0, 10)]
    assert fetching.gaps == [(R0, 7, 9)]


def test_partitions_neither_active_nor_buffered_are_left_unread() -> None:
    fetching = Fetching({R0: [1], R1: [1], R2: [1]}, active={R0})
    fetching.consumer._buffered_partitions = {R2}
    assert positions(fetching.drain()) == [(R0, 1), (R2, 1)]
    assert fetching.consumer._read_offset[R1] is None


def test_records_drained_before_their_partition_was_sought_are_dropped() -> None:
    fetching = Fetching({R0: [1, 2], R1: [8]})
    fetching.consumer._thread.ledger.sought([R1])  # after the drain (stamped 0)
    assert positions(fetching.drain()) == [(R0, 1), (R0, 2)]
    assert fetching.consumer._read_offset[R1] is None


def test_a_rebalance_during_the_fetch_stops_it_where_it_began() -> None:
    fetching = Fetching({R0: [1, 2, 6, 7], R1: [1]})
    consumer = fetching.consumer
    add_gap = consumer._add_gap

    async def gap_then_rebalance(tp: TP, begin: int, end: int) -> None:
        await add_gap(tp, begin, end)
        consumer.app.consumer_generation_id = 8

    consumer._add_gap = gap_then_rebalance
    # What came before the new generation is handed over (the batch loop drops it
    # by generation); nothing after it is read.
    assert positions(fetching.drain()) == [(R0, 1), (R0, 2)]
    assert consumer._read_offset[R0] == 2
    assert consumer._read_offset[R1] is None


def test_a_fetch_while_the_flow_is_stopped_seeks_back_and_hands_over_nothing() -> None:
    fetching = Fetching({R0: [1, 2]})
    fetching.consumer.flow_active = False
    assert fetching.drain() == []
    assert fetching.seeks == 1
    assert fetching.consumer._read_offset[R0] is None


def test_messages_are_faust_s_own() -> None:
    fetching = Fetching({R0: [1]})
    (message,) = fetching.drain()
    expected = FaustConsumer._to_message(fetching.consumer, R0, record(R0, 1))
    assert type(message) is type(expected)
    assert positions([message]) == positions([expected])


def test_a_rebalance_during_a_callback_stops_the_other_topics_records_too() -> None:
    fetching = Fetching({CATALOG: [3, 4, 5], R0: [1]})
    consumer = fetching.consumer

    async def callback_then_rebalance(message: Any) -> None:
        fetching.dispatched.append((message.tp, message.offset))
        consumer.app.consumer_generation_id = 8

    consumer.callback = callback_then_rebalance
    assert fetching.drain() == []
    assert fetching.dispatched == [(CATALOG, 3)]
    assert consumer._read_offset[CATALOG] == 3
    assert consumer._read_offset[R0] is None
