"""Faust's consumer, handing whole fetched batches to the worker.

Faust delivers every message on its own: the fetch loop waits on two tasks per
message (``wait_first(callback(message), suspend_flow.wait())``), the conductor
decodes it into an event and queues it, and the stream runs its processors and
context switches before an agent sees it. Measured here that costs a couple of
hundred microseconds per message, more than the whole request flow.

This module keeps Faust's consumer (group membership, assignment, generation
checks, flow control during rebalances, acknowledgement bookkeeping and
commits) and changes one thing: for the topics the worker reads in batches, the
fetch loop hands each fetched batch to a bounded :class:`BatchFeed` in one step,
after tracking every message as unacknowledged exactly as the conductor would.
The worker acknowledges each message through :meth:`Consumer.ack` once its
batch is done, so Faust commits only what was processed, and a rebalance waits
(``stream_wait_empty``) for in-flight batches to finish. Messages of every
other topic (table changelogs, other agents) still take Faust's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class BatchFeed:
    """A bounded queue of fetched batches, by topic name.

    Its bound is the backpressure: when the worker is slow (ClickHouse down,
    say), the fetch loop blocks on :meth:`put`, Faust stops fetching, and at
    most ``max_batches`` batches of messages are held in memory.
    """

    def __init__(self, topics: Iterable[str], max_batches: int = 2) -> None:
        self.topics = frozenset(topics)
        self._max_batches = max_batches
        self._queue: asyncio.Queue[list[Any]] | None = None

    @property
    def queue(self) -> asyncio.Queue[list[Any]]:
        # Created on first use, inside the event loop that Faust runs.
        if self._queue is None:
            self._queue = asyncio.Queue(self._max_batches)
        return self._queue

    async def put(self, batch: list[Any]) -> None:
        """Hand over one fetched batch; waits while the feed is full."""
        await self.queue.put(batch)

    async def get(self) -> list[Any]:
        """The next batch, in fetch order."""
        return await self.queue.get()

    def qsize(self) -> int:
        """Batches waiting to be processed."""
        return self.queue.qsize()


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop feeds batches for the feed's topics."""

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        # Faust forgets the acknowledged offsets of revoked partitions first and commits
        # in its revocation handler afterwards, so what was acknowledged since the last
        # timed commit would be processed again by the partitions' next owner (seen as
        # duplicate rows when a worker joins under load). Commit it before it is forgotten,
        # once any commit in progress is done (commit() skips while one runs).
        while await self.maybe_wait_for_commit_to_finish():
            pass
        await self.commit()
        await super().on_partitions_revoked(revoked)

    async def _drain_messages(self, fetcher: Any) -> None:  # noqa: C901 - mirrors Faust's loop
        feed = cast("BatchApp", self.app).batch_feed
        batch_topics = feed.topics
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offsets = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        track = self.track_message
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch: list[Any] = []
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    read = read_offsets[tp]
                    if read is not None and offset < read:
                        continue  # already handed over before a seek
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        # Offsets missing from the log (compaction, transaction
                        # markers) count as acknowledged, as in Faust's loop.
                        await self._add_gap(tp, read + 1, offset)
                    if message.topic in batch_topics:
                        track(message)
                        batch.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offsets[tp] = offset
                if batch:
                    # Not raced against suspend_flow: a tracked batch must reach the
                    # worker, which acknowledges it, or a rebalance would wait for it.
                    await feed.put(batch)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class BatchApp(faust.App):
    """A Faust app whose consumer feeds :attr:`batch_feed` with whole batches."""

    def __init__(self, *args: Any, batch_feed: BatchFeed, **kwargs: Any) -> None:
        self.batch_feed = batch_feed
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)
