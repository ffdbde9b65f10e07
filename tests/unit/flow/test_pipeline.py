"""The pipeline as a whole: what a batch of records turns into."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from worker.contracts import ResponseEnvelope
from worker.flow.output import REQUEST_COLUMNS, BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.loadgen import invalid_requests

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]
OFFSET = REQUEST_COLUMNS.index("source_offset")
REQUEST_ID = REQUEST_COLUMNS.index("request_id")


def run(pipeline: Pipeline, records: list[InboundRecord]) -> BatchOutput:
    return asyncio.run(pipeline.run(records))


def mixed_records(make_envelope: MakeEnvelope, make_record: MakeRecord) -> list[InboundRecord]:
    """Good and broken requests spread over two topics and three partitions, interleaved."""
    values: list[bytes | dict[str, Any] | None] = [
        make_envelope(),
        make_envelope(operation="text.stats", params={"text": "one two"}),
        *(sample.value for sample in invalid_requests("mix")),
        None,
        make_envelope(fields=["total"]),
    ]
    places = [("requests", 0), ("requests", 1), ("other", 0), ("requests", 1), ("requests", 0)]
    return [
        make_record(value, topic=places[i % 5][0], partition=places[i % 5][1], key=b"k%d" % i)
        for i, value in enumerate(values)
    ]


def test_every_record_yields_exactly_one_response_and_one_row(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    records = mixed_records(make_envelope, make_record)
    output = run(make_pipeline(), records)

    assert len(output.responses) == len(records)
    assert sum(len(part.rows) for part in output.rows) == len(records)
    positions = sorted(
        (part.topic, part.partition, row[OFFSET]) for part in output.rows for row in part.rows
    )
    assert positions == sorted((r.topic, r.partition, r.offset) for r in records)
    sources = [orjson.loads(message.value)["meta"]["source"] for message in output.responses]
    assert [(s["topic"], s["partition"], s["offset"]) for s in sources] == [
        (r.topic, r.partition, r.offset) for r in records
    ]


def test_every_response_validates_against_the_response_contract(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    output = run(make_pipeline(), mixed_records(make_envelope, make_record))
    statuses = set()
    for message in output.responses:
        response = ResponseEnvelope.model_validate(orjson.loads(message.value))
        statuses.add(response.status)
        if response.status == "ok":
            assert response.data is not None
            assert response.error is None
        else:
            assert response.data is None
            assert response.error is not None
            assert response.error.code
    assert statuses == {"ok", "error"}


def test_dead_letters_are_exactly_the_rejected_records(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    records = mixed_records(make_envelope, make_record)
    output = run(make_pipeline(), records)
    errors = {}
    for message in output.responses:
        body = orjson.loads(message.value)
        source = body["meta"]["source"]
        errors[(source["topic"], source["partition"], source["offset"])] = body["error"]
    rejected = [
        r
        for r in records
        if errors[(r.topic, r.partition, r.offset)] is not None
        and errors[(r.topic, r.partition, r.offset)]["code"] != "not_found"
    ]
    assert len(rejected) < sum(error is not None for error in errors.values())  # not_found is there
    assert [(d.key, d.value) for d in output.dead_letters] == [
        (r.key, r.value or b"") for r in rejected
    ]
    for letter in output.dead_letters:
        headers = dict(letter.headers)
        position = (
            headers["dlq-source-topic"].decode(),
            int(headers["dlq-source-partition"]),
            int(headers["dlq-source-offset"]),
        )
        assert headers["dlq-reason"].decode() == errors[position]["code"]


def test_rows_are_grouped_per_topic_partition_in_order_of_appearance(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    records = [
        make_record(make_envelope(), partition=1, offset=10),
        make_record(make_envelope(), partition=0, offset=5),
        make_record(b"{broken", partition=1, offset=11),
        make_record(make_envelope(), topic="other", partition=1, offset=3),
        make_record(make_envelope(), partition=1, offset=12),
        make_record(make_envelope(), partition=0, offset=6),
    ]
    output = run(make_pipeline(), records)

    groups = [
        (part.topic, part.partition, part.offsets, part.first_offset, part.last_offset)
        for part in output.rows
    ]
    assert groups == [
        ("requests", 1, [10, 11, 12], 10, 12),
        ("requests", 0, [5, 6], 5, 6),
        ("other", 1, [3], 3, 3),
    ]
    for part in output.rows:
        assert [row[OFFSET] for row in part.rows] == part.offsets
        assert {row[REQUEST_COLUMNS.index("source_topic")] for row in part.rows} == {part.topic}
        assert {row[REQUEST_COLUMNS.index("source_partition")] for row in part.rows} == {
            part.partition
        }
    assert output.rows[0].rows[1][REQUEST_ID] == "@requests:1:11"


def test_an_empty_batch_yields_nothing(make_pipeline: MakePipeline) -> None:
    output = run(make_pipeline(), [])
    assert output.responses == []
    assert output.dead_letters == []
    assert output.rows == []


def test_requests_over_the_tenant_rate_are_answered_rate_limited(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    records = [make_record(make_envelope(tenant="acme")) for _ in range(3)]
    records.append(make_record(make_envelope(tenant="globex")))
    output = run(make_pipeline(rate=1.0, burst=2), records)
    bodies = [orjson.loads(message.value) for message in output.responses]
    assert [body["status"] for body in bodies] == ["ok", "ok", "error", "ok"]
    assert bodies[2]["error"]["code"] == "rate_limited"
    assert bodies[2]["error"]["details"]["retry_after_ms"] > 0
    assert output.dead_letters == []
