"""The batch handler: the sample workload end to end on the in-memory sink and publisher."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest

from worker.contracts import ResponseEnvelope
from worker.errors import DatabaseError, DatabaseOverloadedError, PublishError, WorkerError
from worker.faults import FaultInjector
from worker.flow.deliver import BatchHandler
from worker.flow.output import REQUEST_COLUMNS, OutboundMessage, PartitionRows
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.loadgen import SampleRequest, workload
from worker.operations.registry import OperationRegistry
from worker.operations.text_stats import TextStatsOperation
from worker.publish.memory import MemoryPublisher
from worker.settings import FaultSettings, KafkaSettings
from worker.sinks.memory import MemorySink

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]
PARTITIONS = 4


def as_records(samples: Sequence[SampleRequest], make_record: MakeRecord) -> list[InboundRecord]:
    """The samples as consumed from a four-partition topic, keyed like the producer keys them."""
    return [
        make_record(sample.value, partition=i % PARTITIONS, key=sample.key)
        for i, sample in enumerate(samples)
    ]


class SinkThatChecksPublishOrder(MemorySink):
    """A memory sink that fails its first write and notes what was published before each write."""

    def __init__(self, publisher: MemoryPublisher, failures: int = 0) -> None:
        super().__init__()
        self._publisher = publisher
        self._failures = failures
        self.published_before_write: list[int] = []

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        self.published_before_write.append(sum(map(len, self._publisher.topics.values())))
        if self._failures:
            self._failures -= 1
            raise DatabaseError("ClickHouse is away")
        await super().write(slices)


class HangingSink(MemorySink):
    """A sink that never confirms, as ClickHouseSink while it retries inside :meth:`write`."""

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        await asyncio.sleep(3600)


@pytest.mark.asyncio
async def test_the_sample_workload_gets_every_expected_outcome(
    make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    samples = workload(valid=200, invalid=45)
    records = as_records(samples, make_record)
    sink, publisher = MemorySink(), MemoryPublisher()

    output = await BatchHandler(make_pipeline(), sink, publisher).handle(records)

    responses = publisher.topics["responses"]
    assert len(responses) == len(samples)
    by_key = {message.key: message for message in responses}
    assert len(by_key) == len(samples), "one response per request id"
    for sample in samples:
        message = by_key[sample.key]
        response = ResponseEnvelope.model_validate(orjson.loads(message.value))
        code = None if response.error is None else response.error.code
        assert (response.request_id, response.status, code) == (
            sample.request_id,
            sample.status,
            sample.code,
        ), sample

    dead = publisher.topics["dead"]
    expected_dead = [sample for sample in samples if sample.dead_letter]
    assert Counter(letter.key for letter in dead) == Counter(s.key for s in expected_dead)
    values = {sample.key: sample.value for sample in samples}
    codes = {sample.key: sample.code for sample in samples}
    for letter in dead:
        assert letter.value == values[letter.key]
        assert dict(letter.headers)["dlq-reason"].decode() == codes[letter.key]
    assert set(publisher.topics) == {"responses", "dead"}

    assert len(sink.rows) == len(samples)
    status = REQUEST_COLUMNS.index("status")
    error_code = REQUEST_COLUMNS.index("error_code")
    assert Counter((row[status], row[error_code]) for row in sink.rows) == Counter(
        (sample.status, sample.code or "") for sample in samples
    )
    assert [part.partition for part in output.rows] == list(range(PARTITIONS))
    assert output.messages == [*responses, *dead]


def test_the_workload_covers_every_kind_of_reject() -> None:
    codes = Counter(sample.code for sample in workload(valid=200, invalid=45))
    assert codes == {
        None: 200,
        "invalid_payload": 15,
        "payload_too_deep": 5,
        "validation_failed": 15,
        "unknown_operation": 5,
        "not_found": 5,
    }


@pytest.mark.asyncio
async def test_a_redelivered_batch_stores_no_row_twice(
    make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    records = as_records(workload(valid=20, invalid=9), make_record)
    sink, publisher = MemorySink(), MemoryPublisher()
    handler = BatchHandler(make_pipeline(), sink, publisher)

    await handler.handle(records)
    await handler.handle(records)  # not acknowledged in time: consumed again

    assert len(sink.rows) == len(records)
    # Responses are published again; consumers deduplicate on request id.
    assert len(publisher.topics["responses"]) == 2 * len(records)


@pytest.mark.asyncio
async def test_rows_are_stored_before_anything_is_published(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    publisher = MemoryPublisher()
    sink = SinkThatChecksPublishOrder(publisher)
    records = [make_record(make_envelope()), make_record(b"{bad")]
    await BatchHandler(make_pipeline(), sink, publisher).handle(records)
    assert sink.published_before_write == [0]
    assert len(sink.rows) == 2
    assert len(publisher.topics["responses"]) == 2


@pytest.mark.asyncio
async def test_a_failing_sink_holds_the_publish_back_and_the_batch_is_run_again(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    publisher = MemoryPublisher()
    sink = SinkThatChecksPublishOrder(publisher, failures=1)
    handler = BatchHandler(make_pipeline(), sink, publisher, backoff_max_s=0.01)
    records = [make_record(make_envelope()), make_record(make_envelope())]

    await handler.handle(records)

    assert handler.retries == 1
    assert sink.published_before_write == [0, 0]
    assert len(sink.rows) == 2
    assert len(publisher.topics["responses"]) == 2


@pytest.mark.asyncio
async def test_a_non_retriable_worker_error_is_raised_without_publishing(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    class BrokenSink(MemorySink):
        async def write(self, slices: Sequence[PartitionRows]) -> None:
            raise WorkerError("a bug, not an outage")

    publisher = MemoryPublisher()
    handler = BatchHandler(make_pipeline(), BrokenSink(), publisher)
    with pytest.raises(WorkerError, match="a bug"):
        await handler.handle([make_record(make_envelope())])
    assert handler.retries == 0
    assert dict(publisher.topics) == {}


class PublisherThatFailsOnce(MemoryPublisher):
    """A broker that refuses the first publish, as during a leader election."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise PublishError("not leader for partition")
        await super().publish(messages)


@pytest.mark.asyncio
async def test_after_a_publish_retry_each_response_matches_its_stored_row(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    # The tenant's bucket holds exactly this batch: the first run serves both requests.
    pipeline = make_pipeline(rate=0.001, burst=2)
    sink, publisher = MemorySink(), PublisherThatFailsOnce()
    handler = BatchHandler(pipeline, sink, publisher, backoff_max_s=0.01)
    records = [make_record(make_envelope()), make_record(make_envelope())]

    await handler.handle(records)

    assert handler.retries == 1
    request_id, status = REQUEST_COLUMNS.index("request_id"), REQUEST_COLUMNS.index("status")
    stored = {row[request_id]: row[status] for row in sink.rows}
    answered = {
        body["request_id"]: body["status"]
        for body in (orjson.loads(m.value) for m in publisher.topics["responses"])
    }
    assert stored == {"req-00001": "ok", "req-00002": "ok"}
    assert answered == stored, "the published answers contradict the stored rows"


class OperationThatAlwaysFails(TextStatsOperation):
    """An operation whose backend is down for good."""

    async def handle(self, tenant_params: Sequence[tuple[str, Any]]) -> Sequence[Any]:
        raise ConnectionError("backend down")


class BuggyStage:
    name = "buggy"

    async def __call__(self, batch: Sequence[Any]) -> None:
        raise KeyError("a bug")


@pytest.mark.asyncio
async def test_past_the_retry_budget_a_server_error_dead_letters_the_batch_unanswered(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline = make_pipeline(OperationRegistry([OperationThatAlwaysFails()]))
    sink, publisher = MemorySink(), MemoryPublisher()
    handler = BatchHandler(pipeline, sink, publisher, backoff_max_s=0.01, retry_budget_s=0.2)
    payloads = [
        make_envelope(operation="text.stats", params={"text": "secret words"}) for _ in range(3)
    ]
    records = [make_record(p) for p in payloads]

    await handler.handle(records)

    assert handler.retries >= 2, "retried with backoff first"
    assert publisher.topics["responses"] == [], "never answered as if the client were wrong"
    dead = publisher.topics["dead"]
    assert len(dead) == len(records)
    for letter, record in zip(dead, records, strict=True):
        headers = dict(letter.headers)
        assert headers["dlq-reason"] == b"service_failed"
        assert int(headers["dlq-source-offset"]) == record.offset
        assert b"secret words" not in letter.value, "sensitive params are redacted"
        assert headers["dlq-redacted"] == b"params.text"
    status = REQUEST_COLUMNS.index("status")
    error_code = REQUEST_COLUMNS.index("error_code")
    assert [(row[status], row[error_code]) for row in sink.rows] == [
        ("dead_letter", "service_failed")
    ] * 3


@pytest.mark.asyncio
async def test_an_unexpected_exception_is_a_system_failure_then_a_dead_letter(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline = make_pipeline()
    pipeline.stages = (*pipeline.stages, BuggyStage())
    publisher = MemoryPublisher()
    handler = BatchHandler(
        pipeline, MemorySink(), publisher, backoff_max_s=0.01, retry_budget_s=0.1
    )
    await handler.handle([make_record(make_envelope())])
    [letter] = publisher.topics["dead"]
    assert dict(letter.headers)["dlq-reason"] == b"system_failed"


@pytest.mark.asyncio
async def test_a_database_that_never_confirms_dead_letters_without_rows(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    publisher = MemoryPublisher()
    handler = BatchHandler(
        make_pipeline(), HangingSink(), publisher, backoff_max_s=0.01, retry_budget_s=0.2
    )
    output = await handler.handle([make_record(make_envelope())])
    [letter] = publisher.topics["dead"]
    assert dict(letter.headers)["dlq-reason"] == b"database_unavailable"
    assert output.rows == []
    assert publisher.topics["responses"] == []


class SimulatedKillError(Exception):
    """Stands in for SIGKILL at a fault point."""


def _kill() -> None:
    raise SimulatedKillError


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("point", "stored", "published"),
    [
        ("before_insert", False, False),
        ("after_insert", True, False),
        ("after_publish", True, True),
    ],
)
async def test_a_kill_at_each_point_leaves_what_came_before_and_a_redelivery_completes_it(
    make_pipeline: MakePipeline,
    make_record: MakeRecord,
    point: str,
    stored: bool,
    published: bool,
) -> None:
    samples = workload(valid=12, invalid=9)
    dead = sum(sample.dead_letter for sample in samples)
    records = as_records(samples, make_record)
    sink, publisher = MemorySink(), MemoryPublisher()
    doomed = BatchHandler(
        make_pipeline(),
        sink,
        publisher,
        faults=FaultInjector(FaultSettings(point=point), kill=_kill),  # type: ignore[arg-type]
    )
    with pytest.raises(SimulatedKillError):
        await doomed.handle(records)
    assert len(sink.rows) == (len(records) if stored else 0)
    assert len(sink.dead_letters) == (dead if stored else 0)
    assert len(publisher.topics["responses"]) == (len(records) if published else 0)

    # The batch was never acknowledged: the restarted worker consumes it again.
    await BatchHandler(make_pipeline(), sink, publisher).handle(records)
    assert len(sink.rows) == len(records), "one row per record, never two"
    assert len(sink.dead_letters) == dead
    keys = Counter(message.key for message in publisher.topics["responses"])
    assert set(keys) == {record.key for record in records}, "every record answered"
    assert max(keys.values()) == (2 if published else 1)


class TopicThatRefuses(MemoryPublisher):
    """A broker on which one topic refuses every record (too large for it, say)."""

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.refusing = topic
        self.attempts: list[list[str]] = []

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        self.attempts.append([m.topic for m in messages])
        refused = [i for i, m in enumerate(messages) if m.topic == self.refusing]
        await super().publish([m for m in messages if m.topic != self.refusing])
        if refused:
            raise PublishError("MessageSizeTooLargeError", undelivered=refused)


@pytest.mark.asyncio
async def test_responses_the_broker_keeps_refusing_are_dead_lettered_past_the_budget(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline = make_pipeline(kafka=KafkaSettings(reply_to_allowlist="tiny"))
    publisher = TopicThatRefuses("tiny")
    sink = MemorySink()
    handler = BatchHandler(pipeline, sink, publisher, backoff_max_s=0.01, retry_budget_s=0.2)
    records = [
        make_record(make_envelope(request_id="fine")),
        make_record(make_envelope(request_id="refused", reply_to="tiny")),
    ]

    output = await handler.handle(records)

    assert handler.retries >= 2, "retried with backoff first"
    first, *again, last = publisher.attempts
    assert sorted(first) == ["responses", "tiny"]
    assert again == [["tiny"]] * len(again), "only what the broker refused is sent again"
    assert last == ["dead"]
    assert [m.key for m in publisher.topics["responses"]] == [b"fine"], "answered once"
    [letter] = publisher.topics["dead"]
    headers = dict(letter.headers)
    assert headers["dlq-reason"] == b"publish_failed"
    assert b"MessageSizeTooLargeError" in headers["dlq-message"]
    assert int(headers["dlq-source-offset"]) == records[1].offset
    assert [m.key for m in output.responses] == [b"fine"]
    assert output.dead_letters == [letter]
    assert len(sink.rows) == 2, "the rows, stored before publishing, keep the answers"


@pytest.mark.asyncio
async def test_a_database_that_fails_dead_letters_with_what_it_last_failed_with(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    class OverloadedSink(MemorySink):
        async def write(self, slices: Sequence[PartitionRows]) -> None:
            # As ClickHouseSink does: note the failure, retry inside, never raise.
            self.failing = DatabaseOverloadedError(252, "TOO_MANY_PARTS", "merges", shrink=False)
            await asyncio.sleep(3600)

    publisher = MemoryPublisher()
    handler = BatchHandler(
        make_pipeline(), OverloadedSink(), publisher, backoff_max_s=0.01, retry_budget_s=0.2
    )
    await handler.handle([make_record(make_envelope())])
    [letter] = publisher.topics["dead"]
    assert dict(letter.headers)["dlq-reason"] == b"database_overloaded"
    assert b"TOO_MANY_PARTS" in dict(letter.headers)["dlq-message"]


@pytest.mark.asyncio
async def test_answered_first_the_responses_precede_the_rows_and_batches_share_one_write(
    make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    samples = workload(valid=30, invalid=9)
    records = as_records(samples, make_record)
    publisher = MemoryPublisher()
    sink = SinkThatChecksPublishOrder(publisher)
    handler = BatchHandler(make_pipeline(), sink, publisher)

    first = await handler.answer(await handler.process(records[:20]))
    second = await handler.answer(await handler.process(records[20:]))
    assert len(publisher.topics["responses"]) == len(samples)
    assert sink.rows == [], "nothing stored before store()"

    await handler.store([first, second])
    published = len(samples) + sum(sample.dead_letter for sample in samples)
    assert sink.published_before_write == [published], "one write, after every publish"
    source_offset = REQUEST_COLUMNS.index("source_offset")
    source_partition = REQUEST_COLUMNS.index("source_partition")
    assert sorted((row[source_partition], row[source_offset]) for row in sink.rows) == sorted(
        (record.partition, record.offset) for record in records
    )
    rejected = [sample for sample in samples if sample.dead_letter]
    assert len(publisher.topics["dead"]) == len(rejected)
    assert all("dlq-answered" not in dict(m.headers) for m in publisher.topics["dead"])


@pytest.mark.asyncio
async def test_answered_batches_whose_rows_are_never_confirmed_are_dead_lettered_as_answered(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    publisher = MemoryPublisher()
    handler = BatchHandler(
        make_pipeline(), HangingSink(), publisher, backoff_max_s=0.01, retry_budget_s=0.2
    )
    records = [make_record(make_envelope(request_id=f"r{i}")) for i in range(3)]
    answered = await handler.answer(await handler.process(records))
    assert [orjson.loads(m.value)["status"] for m in publisher.topics["responses"]] == ["ok"] * 3

    await handler.store([answered])

    letters = publisher.topics["dead"]
    assert [letter.key for letter in letters] == [record.key for record in records]
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["dlq-reason"] == b"database_unavailable"
        assert headers["dlq-answered"] == b"true"
    assert answered.prepared.output.rows == [], "the database failed: no rows"
    assert len(publisher.topics["responses"]) == 3, "the responses stay published"
    assert handler.dead_lettered == 3
