"""A producer at a fixed rate, which keeps publishing while the scenario breaks things.

Every acknowledged message is remembered by its position in the requests topic
(partition, offset): responses, dead letters and rows all name that position, so
each outcome is matched to the exact message that caused it, replays and
redeliveries included. A send the broker never acknowledged (the broker was
down for longer than the producer waits) is counted as failed and left out of
the accounting: nobody can know whether it was written, and one that was shows
up as an unsolicited outcome instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from reliability.traffic import Message

log = logging.getLogger(__name__)

Position = tuple[int, int]


@dataclass
class LoadResult:
    """What the producer published, by position, and when it finished."""

    sent: dict[Position, Message] = field(default_factory=dict)
    failed: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0


class Load:
    """Publishes ``messages`` at ``rate`` per second from a task of its own."""

    def __init__(
        self, bootstrap: str, topic: str, messages: Sequence[Message], rate: float
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.messages = messages
        self.rate = rate
        self.result = LoadResult()
        self.published = 0
        self._task: asyncio.Task[LoadResult] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="load")

    async def wait(self) -> LoadResult:
        assert self._task is not None
        return await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> LoadResult:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # Long enough to ride out a broker restart: the batches wait and are
            # delivered once it is back, as a production client configured so would.
            request_timeout_ms=120_000,
            retry_backoff_ms=200,
        )
        await producer.start()
        result = self.result
        pending: list[tuple[Message, asyncio.Future[object]]] = []
        try:
            result.started_at = time.time()
            start = time.monotonic()
            for i, message in enumerate(self.messages):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                future = await producer.send(
                    self.topic, message.value, key=message.key, headers=list(message.headers)
                )
                pending.append((message, future))
                self.published += 1
            for message, future in pending:
                try:
                    metadata = await future
                except Exception as error:  # noqa: BLE001 - any failed send is counted, not raised
                    log.warning("a send failed: %s", error)
                    result.failed += 1
                    continue
                result.sent[(metadata.partition, metadata.offset)] = message  # type: ignore[attr-defined]
            result.finished_at = time.time()
            return result
        finally:
            await producer.stop()
