"""After the pipeline: persist the rows, publish the messages, then let the caller ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from worker.errors import DatabaseError, ServerError, SystemFailureError, WorkerError
from worker.faults import FaultInjector
from worker.flow.observer import FlowObserver, NullObserver
from worker.flow.output import BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.publish.base import Publisher
from worker.settings import FaultSettings
from worker.sinks.base import RowSink

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryBudgetSpentError(Exception):
    """Internal: a step kept failing past the batch's retry budget."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(error.message)
        self.error = error


class BatchHandler:
    """One batch end to end. When :meth:`handle` returns, the batch may be acknowledged.

    Order matters for "nothing lost": rows are confirmed by the sink first, then
    responses and dead letters are confirmed by the broker. A crash anywhere
    before the return leaves the batch unacknowledged, so it is consumed again;
    the sink skips what it already holds, and response consumers deduplicate on
    request id.

    A retriable :class:`~worker.errors.ServerError` (Redis down, an operation
    failing, ClickHouse not confirming) repeats the step that failed after a
    capped exponential backoff, while nothing is acknowledged and consumption
    stalls. After ``retry_budget_s`` (0: never) the batch is given up on: every
    record goes to the dead-letter topic with ``dlq-reason`` = the server
    error's code, no response is published (the client was not wrong), and a
    ``dead_letter`` row is stored when the database is not what failed. Those
    dead letters are confirmed by the broker before the batch is acknowledged;
    a failing publish is retried for as long as it takes. A failure inside the
    pipeline runs the pipeline again; rate-limit tokens taken by the failed
    attempt are not given back. An unexpected exception in the pipeline is a
    ``system_failed`` server error.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        sink: RowSink,
        publisher: Publisher,
        *,
        backoff_max_s: float = 5.0,
        retry_budget_s: float = 0.0,
        faults: FaultInjector | None = None,
        observer: FlowObserver | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.publisher = publisher
        self._backoff_max_s = backoff_max_s
        self._retry_budget_s = retry_budget_s
        self._faults = faults or FaultInjector(FaultSettings.model_construct())
        self.observer: FlowObserver = observer or NullObserver()
        self.retries = 0
        self.dead_lettered = 0

    async def handle(self, records: Sequence[InboundRecord]) -> BatchOutput:
        """Process, persist and publish ``records``."""
        observer = self.observer
        observer.received(records)
        received_at = time.time()
        deadline = (
            asyncio.get_running_loop().time() + self._retry_budget_s
            if self._retry_budget_s > 0
            else None
        )
        try:
            output = await self._retrying("process", lambda: self._run(records), deadline)
            self._faults.reached("before_insert")
            # Persist and publish retry on their own, with the output computed once:
            # running the pipeline again would charge rate limits twice and could
            # answer differently from the rows already stored.
            started = time.perf_counter()
            await self._retrying("persist", lambda: self.sink.write(output.rows), deadline)
            observer.stage_finished("persist", len(records), time.perf_counter() - started)
            self._faults.reached("after_insert")
        except RetryBudgetSpentError as spent:
            output = await self._give_up(records, spent.error, received_at)
        stored_at = time.time()
        started = time.perf_counter()
        await self._retrying("publish", lambda: self.publisher.publish(output.messages), None)
        published_at = time.time()
        observer.stage_finished("publish", len(records), time.perf_counter() - started)
        observer.delivered(records, output, stored_at=stored_at, published_at=published_at)
        self._faults.reached("after_publish")
        return output

    async def _run(self, records: Sequence[InboundRecord]) -> BatchOutput:
        try:
            return await self.pipeline.run(records)
        except (WorkerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug is not the client's fault either: retried, then dead-lettered.
            raise SystemFailureError(f"the pipeline failed unexpectedly: {exc!r}") from exc

    async def _give_up(
        self, records: Sequence[InboundRecord], error: ServerError, received_at: float
    ) -> BatchOutput:
        self.dead_lettered += len(records)
        log.error(
            "retry budget of %.1fs spent on [%s]; dead-lettering %d requests: %s",
            self._retry_budget_s,
            error.code,
            len(records),
            error.message,
        )
        output = self.pipeline.responder.dead_letter_batch(records, error, received_at)
        if isinstance(error, DatabaseError):
            output.rows = []  # the database is what failed: the dead letters are the record
        else:
            await self._retrying("persist", lambda: self.sink.write(output.rows), None)
        return output

    async def _retrying(
        self, step: str, attempt: Callable[[], Awaitable[T]], deadline: float | None
    ) -> T:
        loop = asyncio.get_running_loop()
        delay = 0.1
        last: ServerError | None = None
        while True:
            try:
                if deadline is None:
                    return await attempt()
                try:
                    async with asyncio.timeout_at(deadline):
                        return await attempt()
                except TimeoutError as exc:
                    # The ClickHouse sink retries inside write() and never raises.
                    error: ServerError = last or (
                        DatabaseError("the rows were not confirmed within the retry budget")
                        if step == "persist"
                        else SystemFailureError(f"{step} did not finish within the retry budget")
                    )
                    raise RetryBudgetSpentError(error) from exc
            except ServerError as exc:
                last = exc
                self.retries += 1
                self.observer.retried(step, exc)
                if deadline is not None and loop.time() + delay > deadline:
                    raise RetryBudgetSpentError(exc) from exc
                log.warning(
                    "%s failed [%s], retrying in %.1fs: %s", step, exc.code, delay, exc.message
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
