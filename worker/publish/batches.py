"""Producing a batch of records as one record batch per topic-partition.

``producer.send()`` costs per message: the partitioner (murmur2 in Python),
a metadata lookup, the accumulator, and a delivery future with a callback that
the event loop runs. The worker produces a whole batch of answers (and cache
changelog records) at once, so it builds aiokafka record batches itself, one
per topic-partition (``create_batch()`` / ``send_batch()``), and waits on one
future per batch. Records keep their order within a partition.

Where a record goes: an explicit partition is used as given; a *partition
hint* (the partition of the request it answers) picks ``hint % partitions``,
so answers are co-partitioned with their requests when both topics have the
same partition count; a record with neither goes where Kafka's default
partitioner puts its key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka.partitioner import DefaultPartitioner

Headers = Sequence[tuple[str, bytes | None]]


class Record(NamedTuple):
    """One record to produce. ``partition`` is exact; ``hint`` is taken modulo the count.

    A tuple: thousands are made per batch, and a frozen dataclass costs several
    times as much to build.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None
    hint: int | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """One record batch handed to the producer: where, how many, and its delivery."""

    topic: str
    partition: int
    #: Where the batch's records were in the sequence given to :meth:`BatchProducer.send`.
    positions: tuple[int, ...]
    #: Resolves to the batch's metadata (``offset`` is its first record's) once the
    #: broker has the batch.
    delivery: asyncio.Future[Any]

    @property
    def count(self) -> int:
        return len(self.positions)

    async def last_offset(self) -> int:
        """The offset of the batch's last record, once delivered."""
        metadata = await self.delivery
        return int(metadata.offset) + self.count - 1


class BatchProducer:
    """Produces records through an aiokafka producer, one record batch per topic-partition.

    ``producer`` returns the started ``AIOKafkaProducer`` (for the worker: the
    Faust app's own, so that one producer, one connection pool and one set of
    settings serve everything the worker publishes).
    """

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()

    async def _partition_count(self, producer: Any, topic: str) -> int:
        partitions = producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            partitions = await producer.partitions_for(topic)  # waits for the metadata
        return len(partitions)

    async def send(self, records: Sequence[Record]) -> list[Sent]:
        """Hand every record to the producer; the deliveries resolve when the broker has them."""
        producer = self._producer()
        grouped: dict[tuple[str, int], list[int]] = {}
        counts: dict[str, int] = {}
        for position, record in enumerate(records):
            partition = record.partition
            if partition is None:
                count = counts.get(record.topic)
                if count is None:
                    count = counts[record.topic] = await self._partition_count(
                        producer, record.topic
                    )
                if record.hint is not None:
                    partition = record.hint % count
                else:
                    partition = self._partitioner(record.key, list(range(count)), None)
            grouped.setdefault((record.topic, partition), []).append(position)
        sent: list[Sent] = []
        for (topic, partition), positions in grouped.items():
            sent.extend(await _send_partition(producer, topic, partition, records, positions))
        return sent


async def _send_partition(
    producer: Any, topic: str, partition: int, records: Sequence[Record], positions: list[int]
) -> list[Sent]:
    sent: list[Sent] = []
    batch = producer.create_batch()
    start = 0
    for index, position in enumerate(positions):
        record = records[position]
        headers = list(record.headers)
        while (
            batch.append(key=record.key, value=record.value, timestamp=None, headers=headers)
            is None
        ):
            # Full (a batch is bounded by the producer's max_batch_size): send it and
            # go on in a new one. A record alone in a batch always fits.
            sent.append(await _submit(producer, batch, topic, partition, positions[start:index]))
            batch, start = producer.create_batch(), index
    if start < len(positions):
        sent.append(await _submit(producer, batch, topic, partition, positions[start:]))
    return sent


def of_faust(app: Any) -> BatchProducer:
    """A :class:`BatchProducer` on the Faust app's aiokafka producer, once the app started it."""
    # Private to Faust's aiokafka driver, which has no public way to its producer.
    return BatchProducer(app.producer._ensure_producer)


async def _submit(
    producer: Any, batch: Any, topic: str, partition: int, positions: list[int]
) -> Sent:
    batch.close()
    delivery = await producer.send_batch(batch, topic, partition=partition)
    return Sent(topic, partition, tuple(positions), delivery)


Send = Callable[[Sequence[Record]], Awaitable[list[Sent]]]
