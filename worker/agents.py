"""The thin Faust adapters: batches of events in, acknowledgements out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from worker.flow.deliver import Answered, Prepared
from worker.flow.records import InboundRecord
from worker.intake import BatchTaker, raw_topic

if TYPE_CHECKING:
    from worker.app import WorkerApp

log = logging.getLogger(__name__)


def to_record(message: Any) -> InboundRecord:
    """A Faust consumer message as the pipeline's raw record.

    Headers are kept as the broker gave them (a header's value may be None):
    normalising every header of every request cost more than all the reads of
    them together, and the few readers handle None themselves.
    """
    headers = message.headers
    if not headers:
        headers = ()
    elif isinstance(headers, dict):
        headers = tuple(headers.items())
    elif type(headers) is not tuple:
        headers = tuple(headers)
    timestamp = message.timestamp
    # Positional: once per request.
    return InboundRecord(
        message.topic,
        message.partition,
        message.offset,
        int(timestamp * 1000) if timestamp else None,
        message.key,
        message.value,
        headers,
    )


class UnstoredBatches:
    """Answered batches whose rows wait for ClickHouse, bounded by their requests.

    The delivery loop adds a batch once its responses are confirmed; the store
    loop takes every batch waiting, stores their rows in one write, acknowledges
    them and reports them stored. The bound keeps what a slow or failing
    ClickHouse can leave answered but unacknowledged (and held in memory) to
    ``limit`` requests: past it, answering waits.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._waiting: list[tuple[Answered, list[Any]]] = []
        #: Requests added and not yet reported stored (waiting, or being stored).
        self.held = 0
        # Replaced on every change: whoever waits on the old one wakes up and checks again.
        self._changed = asyncio.Event()

    async def room_for(self, size: int) -> None:
        """Wait until ``size`` more requests fit (a batch always fits when none is held)."""
        await self._until(lambda: not self.held or self.held + size <= self._limit)

    async def emptied(self) -> None:
        """Wait until every batch added has been stored."""
        await self._until(lambda: not self.held)

    async def waiting(self) -> None:
        """Wait until a batch is waiting to be stored."""
        await self._until(lambda: bool(self._waiting))

    def add(self, answered: Answered, messages: list[Any]) -> None:
        self._waiting.append((answered, messages))
        self.held += len(messages)
        self._notify()

    def take(self) -> list[tuple[Answered, list[Any]]]:
        """Every batch waiting, oldest first."""
        batches, self._waiting = self._waiting, []
        return batches

    def stored(self, batches: list[tuple[Answered, list[Any]]]) -> None:
        self.held -= sum(len(messages) for _, messages in batches)
        self._notify()

    async def _until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class RequestLoops:
    """The three loops of the requests topic, run as Faust app tasks.

    - :meth:`take_and_process`: takes batches from the feed and runs them through
      the pipeline, one at a time;
    - :meth:`deliver`: publishes each processed batch's responses (respond-first)
      or stores then publishes it (store-first, or while ClickHouse fails);
    - :meth:`store`: stores the rows of the batches answered first, together, and
      acknowledges them.

    One processed batch is handed to the delivery loop at a time, and only once
    the previous one is answered: batch k+1 runs through the pipeline while
    batch k is published, and the rows of both may be inserted meanwhile.
    """

    def __init__(self, worker: WorkerApp) -> None:
        self._worker = worker
        self._app = app = worker.faust
        settings = worker.settings
        self._batch_max = settings.worker.batch_max
        self._respond_first = settings.worker.respond_first
        log.info(
            "delivery order: %s",
            "responses beside the insert (WORKER_RESPOND_FIRST=true)"
            if self._respond_first
            else "each batch stored before it is answered (WORKER_RESPOND_FIRST=false)",
        )
        self._interval_s = settings.clickhouse.insert_interval_ms / 1000.0
        self._handoff: asyncio.Queue[tuple[Prepared, list[Any]]] = asyncio.Queue(maxsize=1)
        # A lambda: Faust makes its consumer when the app starts, not before.
        self._taker = BatchTaker(
            app.batch_feed,
            self._batch_max,
            lambda: app.consumer.backlog(),  # noqa: PLW0108
        )
        self.unstored = UnstoredBatches(settings.worker.unstored)

    async def take_and_process(self) -> None:
        consumer = self._app.consumer
        handler = self._worker.handler
        # Batches, invalidations, sweeps and warming write the cache one at a time.
        cache_lock = self._worker.cache.lock
        batch_max = self._batch_max
        while True:
            fetched = await self._taker.take()
            # One fetch may hold more than WORKER_BATCH_MAX records: batches keep
            # their size, so inserts, publishes and fault points stay per batch.
            for start in range(0, len(fetched), batch_max):
                async with cache_lock:
                    # Waiting for the lock may span a rebalance: the generation is
                    # checked once the batch may run.
                    messages = consumer.take_current(fetched[start : start + batch_max])
                    if not messages:
                        continue
                    prepared = await handler.process([to_record(m) for m in messages])
                # Held here until the previous batch is answered: at most one batch
                # being answered and one processed, besides the fetches in the feed.
                await self._handoff.join()
                self._taker.delivering()
                self._handoff.put_nowait((prepared, messages))

    async def deliver(self) -> None:
        worker = self._worker
        handler = worker.handler
        while True:
            prepared, messages = await self._handoff.get()
            try:
                # Respond first while ClickHouse confirms: a batch met by a failing
                # database (or given up on) is stored before it is answered, after
                # the batches answered before it, so acknowledgements stay in order.
                if self._respond_first and not prepared.given_up and worker.sink.failing is None:
                    await self.unstored.room_for(len(messages))
                    self.unstored.add(await handler.answer(prepared), messages)
                else:
                    await self.unstored.emptied()
                    await handler.deliver(prepared)
                    self._acknowledge([messages])
            finally:
                self._handoff.task_done()
                self._taker.delivered()

    async def store(self) -> None:
        loop = asyncio.get_running_loop()
        handler = self._worker.handler
        last_start = -self._interval_s
        while True:
            await self.unstored.waiting()
            # Inserts at most every CLICKHOUSE_INSERT_INTERVAL_MS: the rows of every
            # batch answered meanwhile go in one insert.
            await asyncio.sleep(max(0.0, last_start + self._interval_s - loop.time()))
            last_start = loop.time()
            batches = self.unstored.take()
            await handler.store([answered for answered, _ in batches])
            self._acknowledge([messages for _, messages in batches])
            self.unstored.stored(batches)

    def _acknowledge(self, batches: list[list[Any]]) -> None:
        """Only now, with rows stored and responses confirmed, may Faust commit."""
        for messages in batches:
            self._app.consumer.ack_many(messages)
        # Acknowledged, not committed: Faust commits acked offsets from its own task
        # (every broker_commit_interval, or broker_commit_every acks), which cannot
        # run before this line since nothing above yields once the acks started.
        self._worker.faults.reached("after_ack")


def register_agents(worker: WorkerApp) -> RequestLoops:
    """Subscribe to the requests topic and run its loops while the app runs."""
    app = worker.faust
    # Registering the topic with the conductor subscribes the consumer to it; its
    # messages then reach the batch feed, not a stream (see worker.intake).
    app.topics.add(raw_topic(app, worker.topics.requests))
    loops = RequestLoops(worker)
    app.task(loops.take_and_process)
    app.task(loops.deliver)
    app.task(loops.store)

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def _positions_moved(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.sink.forget_positions()
        log.info("assigned %d partitions", len(assigned))

    return loops
