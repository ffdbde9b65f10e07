"""Watching output topics fill up, and reading them back with the broker's timestamps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class Output:
    """One record of an output topic: where it is, when the broker appended it, what it is."""

    topic: str
    partition: int
    offset: int
    appended_ms: int
    value: bytes


class Topics:
    """A group-less consumer over some topics: counts while a run goes, reads after it."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> Topics:
        await self._consumer.start()
        for topic in self.topics:
            found = self._consumer.partitions_for_topic(topic)
            for _ in range(50):
                if found:
                    break
                await self._consumer._client.force_metadata_update()
                found = self._consumer.partitions_for_topic(topic)
                await asyncio.sleep(0.1)
            if not found:
                raise RuntimeError(f"topic {topic} has no partitions in the metadata")
            self._partitions += [TopicPartition(topic, p) for p in sorted(found)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def counts(self) -> dict[str, int]:
        """Records in each topic so far (sum of the partitions' end offsets)."""
        ends = await self._consumer.end_offsets(self._partitions)
        out = dict.fromkeys(self.topics, 0)
        for tp, end in ends.items():
            out[tp.topic] += end
        return out

    async def read_all(self) -> list[Output]:
        """Every record up to the current end of each partition, from the beginning."""
        ends = await self._consumer.end_offsets(self._partitions)
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        records: list[Output] = []
        left = {tp for tp, end in ends.items() if end > 0}
        while left:
            batch = await self._consumer.getmany(*left, timeout_ms=1000, max_records=50_000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.timestamp_type != LOG_APPEND_TIME:
                        raise RuntimeError(f"{tp.topic} is not stamped with LogAppendTime")
                    records.append(Output(m.topic, m.partition, m.offset, m.timestamp, m.value))
                if await self._consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return records
