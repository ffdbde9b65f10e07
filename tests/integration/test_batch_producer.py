"""Record batches per topic-partition, against the real broker: placement, order, offsets."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from tests.conftest import Services
from tests.support.kafka import Received, read_topics
from worker.publish.batches import BatchProducer, Record, Sent

pytestmark = pytest.mark.integration


async def _topic(bootstrap: str, partitions: int) -> str:
    name = f"batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def _produce(
    bootstrap: str, records: list[Record], max_batch_size: int
) -> list[tuple[Sent, int]]:
    """The batches sent, each with the offset of its last record."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=max_batch_size, compression_type="lz4"
    )
    await producer.start()
    try:
        sent = await BatchProducer(lambda: producer).send(records)
        await asyncio.gather(*(batch.delivery for batch in sent))
        return [(batch, await batch.last_offset()) for batch in sent]
    finally:
        await producer.stop()


def _read(services: Services, topic: str, count: int) -> list[Received]:
    return read_topics(
        services.bootstrap, [topic], until=lambda seen: len(seen) >= count, timeout_s=60
    )


def test_records_land_where_asked_in_order_with_their_headers(services: Services) -> None:
    topic = asyncio.run(_topic(services.bootstrap, 4))
    records = [
        Record(topic, f"h{i}".encode(), f"hint-{i}".encode(), (("n", str(i).encode()),), hint=i)
        for i in range(12)
    ]
    records += [Record(topic, b"exact", f"exact-{i}".encode(), partition=2) for i in range(5)]
    records += [Record(topic, f"k{i}".encode(), f"keyed-{i}".encode()) for i in range(20)]
    asyncio.run(_produce(services.bootstrap, records, 512 * 1024))

    seen = _read(services, topic, len(records))
    assert len(seen) == len(records)
    by_value = {r.value: r for r in seen}
    for i in range(12):
        got = by_value[f"hint-{i}".encode()]
        assert got.partition == i % 4, "a hint is taken modulo the partition count"
        assert got.headers == {"n": str(i).encode()}
        assert got.key == f"h{i}".encode()
    assert {by_value[f"exact-{i}".encode()].partition for i in range(5)} == {2}
    for i in range(20):
        key = f"k{i}".encode()
        assert by_value[f"keyed-{i}".encode()].partition == (murmur2(key) & 0x7FFFFFFF) % 4, (
            "without a partition or hint, Kafka's default partitioner decides"
        )
    exact = sorted(
        (r.offset, r.value) for r in seen if r.partition == 2 and r.value.startswith(b"exact")
    )
    assert [value for _, value in exact] == [f"exact-{i}".encode() for i in range(5)]


def test_full_batches_are_split_and_report_their_last_offsets(services: Services) -> None:
    topic = asyncio.run(_topic(services.bootstrap, 2))
    value = b"x" * 900
    records = [Record(topic, None, value + str(i).encode(), partition=1) for i in range(40)]
    # About four records fit in a 4 KiB batch: the partition's records span many batches.
    sent = asyncio.run(_produce(services.bootstrap, records, 4096))
    assert len(sent) > 5
    assert sum(batch.count for batch, _ in sent) == 40

    seen = _read(services, topic, 40)
    ordered = sorted(seen, key=lambda r: r.offset)
    assert [r.value for r in ordered] == [r.value for r in records], "order within the partition"
    ends, first = [], ordered[0].offset
    for batch, _ in sent:
        first += batch.count
        ends.append(first - 1)
    assert [last for _, last in sent] == ends, "each batch reports its own last offset"
