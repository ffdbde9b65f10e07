"""Producing to and reading from the real broker in tests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from worker.connections.kafka import client_options
from worker.loadgen import SampleRequest
from worker.settings import KafkaSettings

#: A broker: its bootstrap address (plaintext), or full client settings (TLS, SASL).
Broker = str | KafkaSettings


def _options(broker: Broker) -> dict[str, Any]:
    if isinstance(broker, KafkaSettings):
        return client_options(broker)
    return {"bootstrap_servers": broker}


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def produce(bootstrap: Broker, topic: str, requests: Sequence[SampleRequest]) -> None:
    """Publish ``requests`` and wait for every acknowledgement."""

    async def run() -> None:
        producer = AIOKafkaProducer(**_options(bootstrap), linger_ms=5, acks="all")
        await producer.start()
        try:
            futures = [
                await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
                for r in requests
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def counts_reach(wanted: dict[str, int]) -> Callable[[list[Received]], bool]:
    """An ``until`` for :func:`read_topics`: each topic of ``wanted`` has that many records."""

    def reached(seen: list[Received]) -> bool:
        counts = Counter(record.topic for record in seen)
        return all(counts[topic] >= n for topic, n in wanted.items())

    return reached


def read_topics(
    bootstrap: Broker,
    topics: Sequence[str],
    *,
    until: Callable[[list[Received]], bool],
    timeout_s: float,
    settle_s: float = 0.0,
    alive: Callable[[], bool] = lambda: True,
) -> list[Received]:
    """Read ``topics`` from the beginning until ``until(records)`` holds or time runs out.

    ``settle_s`` keeps reading that long after the condition first holds, so that
    a test can also assert that nothing more arrives.
    """

    async def run() -> list[Received]:
        consumer = AIOKafkaConsumer(**_options(bootstrap), enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partitions: list[TopicPartition] = []
            for topic in topics:
                found = consumer.partitions_for_topic(topic)
                if not found:
                    await consumer._client.force_metadata_update()
                    found = consumer.partitions_for_topic(topic) or set()
                partitions.extend(TopicPartition(topic, p) for p in found)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            seen: list[Received] = []
            deadline = time.monotonic() + timeout_s
            settle_until: float | None = None
            while time.monotonic() < deadline:
                if settle_until is None and until(seen):
                    settle_until = time.monotonic() + settle_s
                if settle_until is not None and time.monotonic() >= settle_until:
                    break
                if not alive():
                    raise AssertionError("the worker process exited while the test waited")
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    seen.extend(
                        Received(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.key,
                            r.value,
                            {k: bytes(v) for k, v in r.headers},
                        )
                        for r in records
                    )
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(run())


@dataclass(frozen=True, slots=True)
class GroupPositions:
    """Where a consumer group stands on its input, and how much output exists."""

    #: Records ever written to the input topic (sum of its end offsets).
    produced: int
    #: Offsets the group committed on the input topic (sum over partitions).
    committed: int
    #: Records ever written to the output topic.
    published: int

    @property
    def lag(self) -> int:
        """Input records the group has not committed yet."""
        return self.produced - self.committed


def group_positions(bootstrap: str, group: str, source: str, output: str) -> GroupPositions:
    """The group's committed offsets on ``source`` and the end offsets of both topics."""

    async def run() -> GroupPositions:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            ends = {}
            for topic in (source, output):
                found = consumer.partitions_for_topic(topic)
                if not found:
                    await consumer._client.force_metadata_update()
                    found = consumer.partitions_for_topic(topic) or set()
                offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in found])
                ends[topic] = sum(offsets.values())
            committed = await admin.list_consumer_group_offsets(group)
            done = sum(
                meta.offset
                for tp, meta in committed.items()
                if tp.topic == source and meta.offset > 0
            )
            return GroupPositions(ends[source], done, ends[output])
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(run())
