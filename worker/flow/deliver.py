"""After the pipeline: persist the rows, publish the messages, then let the caller ack."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from worker.flow.output import BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.publish.base import Publisher
from worker.sinks.base import RowSink

log = logging.getLogger(__name__)


class BatchHandler:
    """One batch end to end. When :meth:`handle` returns, the batch may be acknowledged.

    Order matters for "nothing lost": rows are confirmed by the sink first, then
    responses and dead letters are confirmed by the broker. A crash anywhere
    before the return leaves the batch unacknowledged, so it is consumed again;
    the sink skips what it already holds, and response consumers deduplicate on
    request id.
    """

    def __init__(self, pipeline: Pipeline, sink: RowSink, publisher: Publisher) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.publisher = publisher

    async def handle(self, records: Sequence[InboundRecord]) -> BatchOutput:
        """Process, persist and publish ``records``."""
        output = await self.pipeline.run(records)
        await self.sink.write(output.rows)
        await self.publisher.publish(output.messages)
        log.debug("batch done: %d records, %d dead letters", len(records), len(output.dead_letters))
        return output
