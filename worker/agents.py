"""The thin Faust adapters: batches of events in, acknowledgements out."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from worker.flow.deliver import Prepared
from worker.flow.records import InboundRecord
from worker.intake import BatchTaker

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


def register_agents(worker: WorkerApp) -> None:
    """Subscribe to the requests topic and run the batch loop while the app runs."""
    app = worker.faust
    feed = app.batch_feed
    batch_max = worker.settings.worker.batch_max
    # Registering the topic with the conductor subscribes the consumer to it; its
    # messages then reach the batch feed, not a stream (see worker.intake).
    app.topics.add(
        app.topic(
            worker.topics.requests,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
    )
    handler = worker.handler
    faults = worker.faults
    # Batches, invalidations, sweeps and warming write the cache one at a time.
    cache_lock = worker.cache.lock

    # One processed batch is handed to the delivery loop at a time, and only once
    # the previous one is delivered: batch k+1 runs through the pipeline while
    # batch k is inserted and published, and acknowledgements stay in order.
    handoff: asyncio.Queue[tuple[Prepared, list[Any]]] = asyncio.Queue(maxsize=1)
    # A lambda: Faust makes its consumer when the app starts, not before.
    taker = BatchTaker(feed, batch_max, lambda: app.consumer.backlog())  # noqa: PLW0108

    async def requests_loop() -> None:
        consumer = app.consumer
        while True:
            fetched = await taker.take()
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
                # Held here until the previous batch is delivered: at most one batch
                # delivering and one processed, besides the fetches in the feed.
                await handoff.join()
                taker.delivering()
                handoff.put_nowait((prepared, messages))

    async def delivery_loop() -> None:
        while True:
            prepared, messages = await handoff.get()
            try:
                await handler.deliver(prepared)
                # Only now, with rows stored and responses confirmed, may Faust commit.
                app.consumer.ack_many(messages)
                # Acknowledged, not committed: Faust commits acked offsets from its
                # own task (every broker_commit_interval, or broker_commit_every
                # acks), which cannot run before this line since nothing above
                # yields once the acks started.
                faults.reached("after_ack")
            finally:
                handoff.task_done()
                taker.delivered()

    app.task(requests_loop)
    app.task(delivery_loop)

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def _positions_moved(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.sink.forget_positions()
        log.info("assigned %d partitions", len(assigned))
