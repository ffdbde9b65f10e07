"""Replays answered with the original outcome, redeliveries idempotent, reuse a conflict."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from worker.errors import ClientError
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.idempotency.memory import MemoryOutcomeStore
from worker.operations.registry import OperationRegistry
from worker.operations.text_stats import TextStatsOperation, TextStatsParams, TextStatsResult

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]


class CountingTextStats(TextStatsOperation):
    """text.stats that counts how many requests it really processed."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle(
        self, tenant_params: Sequence[tuple[str, TextStatsParams]]
    ) -> Sequence[TextStatsResult | ClientError]:
        self.calls += len(tenant_params)
        return await super().handle(tenant_params)


def bodies(pipeline: Pipeline, records: list[InboundRecord]) -> list[dict[str, Any]]:
    output = asyncio.run(pipeline.run(records))
    return [orjson.loads(message.value) for message in output.responses]


def stats(make_envelope: MakeEnvelope, **overrides: Any) -> dict[str, Any]:
    return make_envelope(operation="text.stats", params={"text": "a b a"}, **overrides)


def setup(
    make_pipeline: MakePipeline, **settings: Any
) -> tuple[Pipeline, CountingTextStats, MemoryOutcomeStore]:
    operation = CountingTextStats()
    store = MemoryOutcomeStore()
    pipeline = make_pipeline(OperationRegistry([operation]), outcomes=store, **settings)
    return pipeline, operation, store


def test_a_replayed_request_id_gets_the_original_answer_without_processing(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, operation, _ = setup(make_pipeline)
    payload = stats(make_envelope, request_id="r-1")
    [first] = bodies(pipeline, [make_record(payload, offset=10)])
    [again] = bodies(pipeline, [make_record(payload, offset=11)])
    assert operation.calls == 1
    assert again["data"] == first["data"]
    assert (first["meta"]["cache"], again["meta"]["cache"]) == ("bypass", "hit")
    assert again["meta"]["replayed_from"] == first["meta"]["source"]
    assert again["meta"]["source"]["offset"] == 11, "each delivery still names its own offset"


def test_a_redelivery_at_the_same_position_is_answered_the_same_not_rejected(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, operation, _ = setup(make_pipeline)
    record = make_record(stats(make_envelope, request_id="r-2"), offset=20)
    [first] = bodies(pipeline, [record])
    [redelivered] = bodies(pipeline, [record])
    assert operation.calls == 1
    assert redelivered["status"] == "ok"
    assert redelivered["data"] == first["data"]
    assert redelivered["meta"]["cache"] == "bypass"
    assert redelivered["meta"]["replayed_from"] == first["meta"]["source"]


def test_a_reused_request_id_with_other_params_is_a_conflict(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, operation, _ = setup(make_pipeline)
    bodies(pipeline, [make_record(stats(make_envelope, request_id="r-3"), offset=30)])
    changed = make_envelope(operation="text.stats", params={"text": "other"}, request_id="r-3")
    [body] = bodies(pipeline, [make_record(changed, offset=31)])
    assert body["error"]["code"] == "conflict"
    assert body["error"]["details"]["original"]["offset"] == 30
    assert operation.calls == 1


def test_the_same_id_twice_in_one_batch_is_processed_once(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, operation, store = setup(make_pipeline)
    payload = stats(make_envelope, request_id="r-4")
    other = make_envelope(operation="text.stats", params={"text": "zzz"}, request_id="r-4")
    first, second, third = bodies(
        pipeline,
        [
            make_record(payload, offset=40),
            make_record(payload, offset=41),
            make_record(other, offset=42),
        ],
    )
    assert operation.calls == 1
    assert second["data"] == first["data"]
    assert second["meta"]["cache"] == "hit"
    assert third["error"]["code"] == "conflict"
    assert store.round_trips == 2, "one lookup and one store per batch"


def test_ids_are_per_tenant(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, operation, _ = setup(make_pipeline)
    bodies(pipeline, [make_record(stats(make_envelope, request_id="r-5", tenant="acme"))])
    [other] = bodies(
        pipeline, [make_record(stats(make_envelope, request_id="r-5", tenant="globex"))]
    )
    assert other["meta"]["cache"] == "bypass"
    assert operation.calls == 2


def test_a_rate_limited_request_is_not_remembered(
    make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    pipeline, _, _ = setup(make_pipeline, rate=0.001, burst=1)
    bodies(pipeline, [make_record(stats(make_envelope, request_id="r-6a"))])
    payload = stats(make_envelope, request_id="r-6")
    [limited] = bodies(pipeline, [make_record(payload)])
    assert limited["error"]["code"] == "rate_limited"
    [again] = bodies(pipeline, [make_record(payload)])
    assert again["error"]["code"] == "rate_limited", "processed again, not replayed"
    assert again["meta"]["replayed_from"] is None
