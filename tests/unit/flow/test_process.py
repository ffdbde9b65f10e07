"""The process stage: one call per operation per batch, outcomes matched back in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from worker.errors import ClientError, NotFoundError, ServiceError, WorkerError
from worker.flow.decode import DecodeStage
from worker.flow.process import ProcessStage
from worker.flow.records import InboundRecord, Work
from worker.flow.validate import ValidateStage
from worker.operations.base import Operation
from worker.operations.quote import QuoteOperation
from worker.operations.registry import OperationRegistry
from worker.operations.text_stats import TextStatsOperation
from worker.reference.memory import demo_catalog
from worker.settings import LimitsSettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    n: int


class EchoResult(BaseModel):
    n: int
    tenant: str


class RecordingOperation(Operation[EchoParams, EchoResult]):
    """Echoes ``n`` and the tenant back, and remembers every batch it was handed."""

    name: ClassVar[str] = "test.echo"
    params_model = EchoParams
    result_model = EchoResult

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []

    async def handle(
        self, tenant_params: Sequence[tuple[str, EchoParams]]
    ) -> Sequence[EchoResult | ClientError]:
        self.batches.append([(tenant, params.n) for tenant, params in tenant_params])
        return [
            NotFoundError(f"nothing at {params.n}")
            if params.n < 0
            else EchoResult(n=params.n, tenant=tenant)
            for tenant, params in tenant_params
        ]


class OtherRecordingOperation(RecordingOperation):
    name = "test.other"


class ShortAnswerOperation(RecordingOperation):
    """Answers one request fewer than it was asked."""

    name = "test.short"

    async def handle(
        self, tenant_params: Sequence[tuple[str, EchoParams]]
    ) -> Sequence[EchoResult | ClientError]:
        return list(await super().handle(tenant_params))[:-1]


class WrongTypeOperation(RecordingOperation):
    """Answers with something that is neither a result model nor a client error."""

    name = "test.wrongtype"

    async def handle(self, tenant_params: Sequence[tuple[str, EchoParams]]) -> Sequence[Any]:
        return [{"n": params.n} for _, params in tenant_params]


class BrokenOperation(RecordingOperation):
    """Fails as a bug or an unreachable dependency would."""

    name = "test.broken"

    async def handle(self, tenant_params: Sequence[tuple[str, EchoParams]]) -> Sequence[Any]:
        raise RuntimeError("backend exploded")


def run(registry: OperationRegistry, records: list[InboundRecord]) -> list[Work]:
    """Decode, validate and process ``records`` (no rate limit: the stage under test is process)."""
    batch = [Work(record=record, received_at=0.0) for record in records]
    stages = [
        DecodeStage(LimitsSettings(max_message_bytes=65536, max_json_depth=16)),
        ValidateStage(registry),
        ProcessStage(),
    ]

    async def go() -> None:
        for stage in stages:
            await stage(batch)

    asyncio.run(go())
    return batch


class TestGrouping:
    def test_each_operation_gets_its_requests_in_one_call_in_batch_order(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        echo, other = RecordingOperation(), OtherRecordingOperation()
        registry = OperationRegistry([echo, other, TextStatsOperation()])
        payloads = [
            make_envelope(operation="test.echo", params={"n": 1}, tenant="a"),
            make_envelope(operation="test.other", params={"n": 10}),
            make_envelope(operation="text.stats", params={"text": "hi"}),
            make_envelope(operation="test.echo", params={"n": 2}, tenant="b"),
            make_envelope(operation="test.echo", params={"n": "bad"}),  # invalid: never dispatched
            make_envelope(operation="test.other", params={"n": 11}),
            make_envelope(operation="test.echo", params={"n": 3}, tenant="a"),
        ]
        batch = run(registry, [make_record(payload) for payload in payloads])

        assert echo.batches == [[("a", 1), ("b", 2), ("a", 3)]]
        assert other.batches == [[("acme", 10), ("acme", 11)]]
        assert [work.result for work in batch] == [
            {"n": 1, "tenant": "a"},
            {"n": 10, "tenant": "acme"},
            {"characters": 2, "words": 1, "lines": 1, "top_words": [{"word": "hi", "count": 1}]},
            {"n": 2, "tenant": "b"},
            None,
            {"n": 11, "tenant": "acme"},
            {"n": 3, "tenant": "a"},
        ]
        assert batch[4].error is not None
        assert batch[4].error.code == "validation_failed"

    def test_an_operation_nobody_asked_for_is_not_called(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        echo = RecordingOperation()
        registry = OperationRegistry([echo, TextStatsOperation()])
        run(registry, [make_record(make_envelope(operation="text.stats", params={"text": "x"}))])
        assert echo.batches == []

    def test_items_that_failed_earlier_are_not_dispatched(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        echo = RecordingOperation()
        records = [
            make_record(b"not json"),
            make_record(make_envelope(operation="test.echo", params={"n": 1}, extra=1)),
        ]
        batch = run(OperationRegistry([echo]), records)
        assert echo.batches == []
        assert all(work.result is None and work.error is not None for work in batch)

    def test_a_client_error_outcome_fails_only_its_own_request(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        echo = RecordingOperation()
        payloads = [
            make_envelope(operation="test.echo", params={"n": 1}),
            make_envelope(operation="test.echo", params={"n": -1}),
        ]
        ok, missing = run(OperationRegistry([echo]), [make_record(p) for p in payloads])
        assert ok.result == {"n": 1, "tenant": "acme"}
        assert ok.error is None
        assert isinstance(missing.error, NotFoundError)
        assert missing.result is None
        assert missing.dead_letter is False


class TestPriceQuote:
    def test_an_unknown_sku_is_not_found_and_not_dead_lettered(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        registry = OperationRegistry([QuoteOperation(demo_catalog())])
        payload = make_envelope(params={"sku": "SKU-404", "quantity": 1})
        (work,) = run(registry, [make_record(payload)])
        assert isinstance(work.error, NotFoundError)
        assert work.error.code == "not_found"
        assert work.error.details == {"path": "params.sku"}
        assert "SKU-404" in work.error.message
        assert work.dead_letter is False
        assert work.result is None


class TestBrokenOperations:
    def test_the_wrong_number_of_outcomes_is_a_worker_error(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        registry = OperationRegistry([ShortAnswerOperation()])
        payloads = [make_envelope(operation="test.short", params={"n": n}) for n in (1, 2)]
        with pytest.raises(WorkerError, match="answered 1 of 2 requests"):
            run(registry, [make_record(p) for p in payloads])

    def test_an_outcome_of_the_wrong_type_is_a_worker_error(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        registry = OperationRegistry([WrongTypeOperation()])
        payload = make_envelope(operation="test.wrongtype", params={"n": 1})
        with pytest.raises(WorkerError, match="returned dict"):
            run(registry, [make_record(payload)])

    def test_an_operation_that_raises_is_a_retriable_service_error(
        self, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        registry = OperationRegistry([BrokenOperation()])
        payload = make_envelope(operation="test.broken", params={"n": 1})
        with pytest.raises(ServiceError, match="backend exploded") as raised:
            run(registry, [make_record(payload)])
        assert raised.value.retriable is True
        assert isinstance(raised.value.__cause__, RuntimeError)
