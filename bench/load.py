"""The requests of a run, and publishing them: all at once, or at a fixed rate.

Every valid request gets ``created_at`` set to the moment it is handed to the
producer, so that the time from "request created" to "response published" can
be read from the broker's timestamps later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from worker.loadgen import SampleRequest, workload


@dataclass(frozen=True, slots=True)
class Workload:
    """The requests of a run, with their parsed bodies so that they can be re-stamped."""

    samples: list[SampleRequest]
    bodies: list[dict[str, Any] | None]

    @property
    def dead_letters(self) -> int:
        """How many of the requests the worker must also dead-letter."""
        return sum(sample.dead_letter for sample in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def value(self, index: int, created: float) -> bytes:
        """The request's bytes, ``created_at`` set to ``created`` where it has one."""
        body = self.bodies[index]
        if body is None:
            return self.samples[index].value
        body["created_at"] = datetime.fromtimestamp(created, UTC).isoformat()
        return orjson.dumps(body)


def build_workload(n: int, invalid_share: float, run_id: str, *, seed: int = 7) -> Workload:
    """``n`` requests, ``invalid_share`` of them broken (every kind in turn), shuffled."""
    invalid = round(n * invalid_share)
    samples = workload(n - invalid, invalid, seed=seed, run_id=run_id)
    bodies: list[dict[str, Any] | None] = []
    for sample in samples:
        try:
            body = orjson.loads(sample.value)
        except orjson.JSONDecodeError:
            body = None
        bodies.append(body if isinstance(body, dict) and "created_at" in body else None)
    return Workload(samples, bodies)


Tick = Callable[[int], None]


async def publish_all(bootstrap: str, topic: str, load: Workload, tick: Tick) -> None:
    """Publish every request as fast as the producer goes; wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
    )
    await producer.start()
    try:
        futures = []
        for index, sample in enumerate(load.samples):
            futures.append(await producer.send(topic, load.value(index, time.time()), sample.key))
            if index % 5000 == 0:
                tick(index)
        await asyncio.gather(*futures)
        tick(len(load))
    finally:
        await producer.stop()


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a paced request landed and when it was created (epoch seconds)."""

    partition: int
    offset: int
    created: float


async def publish_paced(
    bootstrap: str,
    topic: str,
    load: Workload,
    indices: Sequence[int],
    *,
    rate: float,
    tick: Tick,
) -> list[Sent]:
    """Publish ``load[indices]`` at ``rate`` per second, paced every millisecond.

    The producer lingers 1 ms: a client with something to send sends it.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    await producer.start()
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future[Any], float]] = []
    try:
        start = loop.time()
        sent = 0
        while sent < len(indices):
            due = min(len(indices), int((loop.time() - start) * rate) + 1)
            while sent < due:
                index = indices[sent]
                created = time.time()
                future = await producer.send(
                    topic, load.value(index, created), load.samples[index].key
                )
                pending.append((future, created))
                sent += 1
            tick(sent)
            await asyncio.sleep(0.001)
        metadata = await asyncio.gather(*(future for future, _ in pending))
    finally:
        await producer.stop()
    return [
        Sent(md.partition, md.offset, created)
        for md, (_, created) in zip(metadata, pending, strict=True)
    ]
