"""The thin Faust adapters: batches of events in, acknowledgements out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from worker.flow.records import InboundRecord

if TYPE_CHECKING:
    from worker.app import WorkerApp

log = logging.getLogger(__name__)


def to_record(event: Any) -> InboundRecord:
    """A Faust event as the pipeline's raw record."""
    message = event.message
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = headers.items()
    return InboundRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        key=message.key,
        value=message.value,
        headers=tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers),
    )


def register_agents(worker: WorkerApp) -> None:
    """Declare the requests agent on ``worker.faust``."""
    app = worker.faust
    settings = worker.settings.worker
    requests_topic = app.topic(
        worker.topics.requests,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )
    handler = worker.handler
    faults = worker.faults

    async def requests_agent(stream: Any) -> None:
        # noack_take hands over whole batches and leaves acknowledging to us:
        # take() would ack in a `finally`, even for a batch whose rows never landed.
        # While handle() waits for ClickHouse or the broker, no batch is taken:
        # noack_take stops draining the stream, its buffer fills, and Faust stops
        # fetching the partitions (stream_buffer_maxsize), so memory stays bounded.
        async for events in stream.noack_take(settings.batch_max, within=settings.batch_linger_s):
            await handler.handle([to_record(event) for event in events])
            for event in events:
                await stream.ack(event)
            # Acknowledged, not committed: Faust commits acked offsets from its own
            # task (every broker_commit_interval, or broker_commit_every acks),
            # which cannot run before this line since nothing above yields once
            # the acks started.
            faults.reached("after_ack")

    app.agent(requests_topic, name="requests", concurrency=1)(requests_agent)

    @app.on_partitions_assigned.connect  # type: ignore[untyped-decorator]
    async def _positions_moved(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.sink.forget_positions()
        log.info("assigned %d partitions", len(assigned))
