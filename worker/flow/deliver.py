"""After the pipeline: persist the rows, publish the messages, then let the caller ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from worker.errors import ServerError
from worker.flow.observer import FlowObserver, NullObserver
from worker.flow.output import BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.publish.base import Publisher
from worker.sinks.base import RowSink

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchHandler:
    """One batch end to end. When :meth:`handle` returns, the batch may be acknowledged.

    Order matters for "nothing lost": rows are confirmed by the sink first, then
    responses and dead letters are confirmed by the broker. A crash anywhere
    before the return leaves the batch unacknowledged, so it is consumed again;
    the sink skips what it already holds, and response consumers deduplicate on
    request id.

    A retriable :class:`~worker.errors.ServerError` (Redis down under the
    ``reject`` policy, an operation failing, the broker refusing a publish)
    repeats the step that failed after a capped exponential backoff, for as
    long as it takes: meanwhile nothing is acknowledged and consumption stalls.
    A failure inside the pipeline runs the pipeline again; rate-limit tokens
    taken by the failed attempt are not given back.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        sink: RowSink,
        publisher: Publisher,
        *,
        backoff_max_s: float = 5.0,
        observer: FlowObserver | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.publisher = publisher
        self._backoff_max_s = backoff_max_s
        self.observer: FlowObserver = observer or NullObserver()
        self.retries = 0

    async def handle(self, records: Sequence[InboundRecord]) -> BatchOutput:
        """Process, persist and publish ``records``."""
        observer = self.observer
        observer.received(records)
        output = await self._retrying("process", lambda: self.pipeline.run(records))
        # Persist and publish retry on their own, with the output computed once:
        # running the pipeline again would charge rate limits twice and could
        # answer differently from the rows already stored.
        started = time.perf_counter()
        await self._retrying("persist", lambda: self.sink.write(output.rows))
        stored_at = time.time()
        observer.stage_finished("persist", len(records), time.perf_counter() - started)
        started = time.perf_counter()
        await self._retrying("publish", lambda: self.publisher.publish(output.messages))
        published_at = time.time()
        observer.stage_finished("publish", len(records), time.perf_counter() - started)
        observer.delivered(records, output, stored_at=stored_at, published_at=published_at)
        return output

    async def _retrying(self, step: str, attempt: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            try:
                return await attempt()
            except ServerError as exc:
                self.retries += 1
                self.observer.retried(step, exc)
                log.warning(
                    "%s failed [%s], retrying in %.1fs: %s",
                    step,
                    exc.code,
                    delay,
                    exc.message,
                    extra={"step": step, "error_code": exc.code},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
