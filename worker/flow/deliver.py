"""After the pipeline: persist the rows, publish the messages, then let the caller ack."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from worker.errors import (
    DatabaseError,
    PublishError,
    ServerError,
    SystemFailureError,
    WorkerError,
)
from worker.faults import FaultInjector
from worker.flow.observer import FlowObserver, NullObserver
from worker.flow.output import BatchOutput, OutboundMessage
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A processed batch waiting to be delivered."""

    records: Sequence[InboundRecord]
    output: BatchOutput
    received_at: float
    #: The retry budget the persist step may still spend (None: no budget).
    budget_left_s: float | None
    #: The budget was spent while processing: the output holds dead letters.
    given_up: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    """A batch whose responses are published and whose rows wait for ClickHouse."""

    prepared: Prepared
    published_at: float
    #: When the retry budget of storing its rows is spent, on the loop's clock (None: never).
    deadline: float | None


class _Sender:
    """One attempt at publishing per call; a retry sends only what the broker did not confirm."""

    def __init__(self, publisher: Publisher, messages: list[OutboundMessage]) -> None:
        self._publisher = publisher
        self.pending = messages

    async def __call__(self) -> None:
        try:
            await self._publisher.publish(self.pending)
        except PublishError as exc:
            if exc.undelivered is not None:
                self.pending = [self.pending[index] for index in exc.undelivered]
            raise


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
    dead letters are confirmed by the broker before the batch is acknowledged.
    A failure inside the pipeline runs the pipeline again; rate-limit tokens
    taken by the failed attempt are not given back. An unexpected exception in
    the pipeline is a ``system_failed`` server error.

    :meth:`deliver` keeps that order. :meth:`answer` and :meth:`store` split it
    for the respond-first order (``WORKER_RESPOND_FIRST``): a batch's responses
    are published as soon as it is processed, and the rows of the batches
    answered meanwhile are stored together afterwards; the caller acknowledges a
    batch once both are confirmed. A crash in between redelivers the batch: the
    idempotency store answers it again the same way, and the sink stores its
    rows once. If its rows are not confirmed within the retry budget, its
    requests are dead-lettered with the database's code and ``dlq-answered``:
    the response is out, the row is what is missing.

    Publishing sends again only what the broker did not confirm. Responses it
    keeps refusing (a reply topic that rejects them, say) are given up on after
    a budget of their own, counted from the start of publishing: their requests
    are dead-lettered with ``publish_failed`` (their rows, already stored, keep
    the answer). Dead letters themselves are retried for as long as it takes:
    they are the last place a request can go.
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
        return await self.deliver(await self.process(records))

    async def process(self, records: Sequence[InboundRecord]) -> Prepared:
        """Run the pipeline over ``records`` (the first half of :meth:`handle`).

        The batch loop runs this for the next batch while the previous one is
        delivered: the pipeline's work (and its Redis round trips) overlaps the
        previous batch's insert and publish.
        """
        self.observer.received(records)
        received_at = time.time()
        deadline = self._deadline()
        try:
            output = await self._retrying("process", lambda: self._run(records), deadline)
        except RetryBudgetSpentError as spent:
            output = self._dead_letters(records, spent.error, received_at)
            return Prepared(records, output, received_at, None, given_up=True)
        # What is left of the budget for persisting: the time the batch then waits
        # for the previous one to be delivered is not the database's to spend.
        left = None if deadline is None else max(deadline - asyncio.get_running_loop().time(), 0)
        return Prepared(records, output, received_at, left)

    async def deliver(self, prepared: Prepared) -> BatchOutput:
        """Persist and publish a processed batch; when this returns, it may be acknowledged."""
        records, output = prepared.records, prepared.output
        observer = self.observer
        if prepared.given_up:
            await self._persist_dead_letters(output)
        else:
            loop = asyncio.get_running_loop()
            left = prepared.budget_left_s
            deadline = None if left is None else loop.time() + left
            try:
                self._faults.reached("before_insert")
                # Persist and publish retry on their own, with the output computed once:
                # running the pipeline again would charge rate limits twice and could
                # answer differently from the rows already stored.
                started = time.perf_counter()
                await self._retrying("persist", lambda: self.sink.write(output.rows), deadline)
                observer.stage_finished("persist", len(records), time.perf_counter() - started)
                self._faults.reached("after_insert")
            except RetryBudgetSpentError as spent:
                output = self._dead_letters(records, spent.error, prepared.received_at)
                await self._persist_dead_letters(output)
        stored_at = time.time()
        started = time.perf_counter()
        await self._publish(records, output)
        published_at = time.time()
        observer.stage_finished("publish", len(records), time.perf_counter() - started)
        observer.delivered(records, output, stored_at=stored_at, published_at=published_at)
        self._faults.reached("after_publish")
        return output

    async def answer(self, prepared: Prepared) -> Answered:
        """Publish a processed batch's responses and dead letters before its rows are stored.

        A batch given up on while processing has no responses: deliver it with
        :meth:`deliver`, which stores its dead letters' rows first.
        """
        left = prepared.budget_left_s
        deadline = None if left is None else asyncio.get_running_loop().time() + left
        started = time.perf_counter()
        await self._publish(prepared.records, prepared.output)
        published_at = time.time()
        self.observer.stage_finished(
            "publish", len(prepared.records), time.perf_counter() - started
        )
        self._faults.reached("after_publish")
        return Answered(prepared, published_at, deadline)

    async def store(self, batches: Sequence[Answered]) -> None:
        """Store the rows of answered ``batches`` in one write; when this returns, ack them.

        The write is retried until the earliest budget of the batches is spent;
        then every request of them is dead-lettered (``dlq-answered``), and those
        dead letters are published for as long as it takes.
        """
        slices = [part for answered in batches for part in answered.prepared.output.rows]
        deadlines = [answered.deadline for answered in batches if answered.deadline is not None]
        size = sum(len(answered.prepared.records) for answered in batches)
        try:
            self._faults.reached("before_insert")
            started = time.perf_counter()
            await self._retrying(
                "persist", lambda: self.sink.write(slices), min(deadlines, default=None)
            )
            self.observer.stage_finished("persist", size, time.perf_counter() - started)
            self._faults.reached("after_insert")
        except RetryBudgetSpentError as spent:
            await self._unstored(batches, spent.error)
        stored_at = time.time()
        for answered in batches:
            prepared = answered.prepared
            self.observer.delivered(
                prepared.records,
                prepared.output,
                stored_at=stored_at,
                published_at=answered.published_at,
            )

    async def _unstored(self, batches: Sequence[Answered], error: ServerError) -> None:
        """Dead-letter the requests of answered batches whose rows were not stored."""
        responder = self.pipeline.responder
        letters: list[OutboundMessage] = []
        for answered in batches:
            output = answered.prepared.output
            own = [
                responder.dead_letter(record, error, answered=True)
                for record in answered.prepared.records
            ]
            # The database is what failed: the dead letters are the record of them.
            output.rows = []
            output.dead_letters.extend(own)
            letters.extend(own)
        self._budget_spent(error, len(letters), "answered requests whose rows were not stored")
        await self._publish_until_confirmed(letters)

    def _deadline(self) -> float | None:
        """When a retry budget starting now is spent, on the loop's clock; None: never."""
        if self._retry_budget_s <= 0:
            return None
        return asyncio.get_running_loop().time() + self._retry_budget_s

    async def _publish(self, records: Sequence[InboundRecord], output: BatchOutput) -> None:
        send = _Sender(self.publisher, output.messages)
        try:
            # Not cancelled at the deadline: a send cut short may still land.
            await self._retrying("publish", send, self._deadline(), cancel_at_deadline=False)
        except RetryBudgetSpentError as spent:
            pending = self._dead_letter_refused(records, output, send.pending, spent.error)
        else:
            return
        await self._publish_until_confirmed(pending)

    async def _publish_until_confirmed(self, messages: list[OutboundMessage]) -> None:
        """Publish ``messages`` (dead letters: a request's last stop), retrying forever."""
        await self._retrying("publish", _Sender(self.publisher, messages), None)

    def _dead_letter_refused(
        self,
        records: Sequence[InboundRecord],
        output: BatchOutput,
        pending: list[OutboundMessage],
        error: ServerError,
    ) -> list[OutboundMessage]:
        """Swap the refused responses in ``output`` for dead letters; what is left to send."""
        refused = {id(message) for message in pending}
        # The pipeline answers every record in order; a given-up batch has no responses.
        answered = zip(records, output.responses, strict=True) if output.responses else ()
        failed = [record for record, response in answered if id(response) in refused]
        letters = [self.pipeline.responder.dead_letter(record, error) for record in failed]
        log.error(
            "retry budget of %.1fs spent on [%s]; dead-lettering %d requests whose "
            "responses the broker refused: %s",
            self._retry_budget_s,
            error.code,
            len(letters),
            error.message,
        )
        self.dead_lettered += len(letters)
        responses = {id(message) for message in output.responses}
        output.responses = [m for m in output.responses if id(m) not in refused]
        output.dead_letters.extend(letters)
        # Still to send: the refused dead letters, and those of the refused responses.
        return [*(m for m in pending if id(m) not in responses), *letters]

    async def _run(self, records: Sequence[InboundRecord]) -> BatchOutput:
        try:
            return await self.pipeline.run(records)
        except (WorkerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug is not the client's fault either: retried, then dead-lettered.
            raise SystemFailureError(f"the pipeline failed unexpectedly: {exc!r}") from exc

    def _dead_letters(
        self, records: Sequence[InboundRecord], error: ServerError, received_at: float
    ) -> BatchOutput:
        self._budget_spent(error, len(records), "requests")
        output = self.pipeline.responder.dead_letter_batch(records, error, received_at)
        if isinstance(error, DatabaseError):
            output.rows = []  # the database is what failed: the dead letters are the record
        return output

    def _budget_spent(self, error: ServerError, requests: int, what: str) -> None:
        """Count and log ``requests`` dead-lettered because ``error`` outlasted the budget."""
        self.dead_lettered += requests
        log.error(
            "retry budget of %.1fs spent on [%s]; dead-lettering %d %s: %s",
            self._retry_budget_s,
            error.code,
            requests,
            what,
            error.message,
        )

    async def _persist_dead_letters(self, output: BatchOutput) -> None:
        if output.rows:
            await self._retrying("persist", lambda: self.sink.write(output.rows), None)

    async def _retrying(
        self,
        step: str,
        attempt: Callable[[], Awaitable[T]],
        deadline: float | None,
        *,
        cancel_at_deadline: bool = True,
    ) -> T:
        loop = asyncio.get_running_loop()
        delay = 0.1
        last: ServerError | None = None
        while True:
            try:
                if deadline is None or not cancel_at_deadline:
                    return await attempt()
                try:
                    async with asyncio.timeout_at(deadline):
                        return await attempt()
                except TimeoutError as exc:
                    # The ClickHouse sink retries inside write() and never raises:
                    # what it last failed with is the reason.
                    error: ServerError = last or (
                        self.sink.failing
                        or DatabaseError("the rows were not confirmed within the retry budget")
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
