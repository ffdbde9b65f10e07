"""The responder: one response and one row per request, dead letters for rejected bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from worker import __version__
from worker.contracts import ResponseEnvelope
from worker.flow.output import (
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_PAYLOAD_MAX,
    REQUEST_COLUMNS,
    BatchOutput,
    OutboundMessage,
)
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.settings import KafkaSettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]


def run(pipeline: Pipeline, records: list[InboundRecord]) -> BatchOutput:
    return asyncio.run(pipeline.run(records))


def envelope(message: OutboundMessage) -> ResponseEnvelope:
    return ResponseEnvelope.model_validate(orjson.loads(message.value))


def column(row: tuple[Any, ...], name: str) -> Any:
    return row[REQUEST_COLUMNS.index(name)]


class TestOkResponses:
    def test_a_quote_is_answered_with_its_result_ids_and_metadata(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(
            request_id="q-1",
            correlation_id="c-9",
            params={"sku": "SKU-3", "quantity": 2, "currency": "USD"},
        )
        record = make_record(payload, partition=2, offset=41)
        output = run(make_pipeline(), [record])

        (message,) = output.responses
        assert message.topic == "responses"
        assert message.key == b"q-1"
        assert dict(message.headers) == {
            "status": b"ok",
            "request-id": b"q-1",
            "correlation-id": b"c-9",
            "routed-to": b"responses",
        }
        response = envelope(message)
        assert response.status == "ok"
        assert response.error is None
        assert response.request_id == "q-1"
        assert response.data == {
            "sku": "SKU-3",
            "name": "Grinder",
            "quantity": 2,
            "currency": "USD",
            "unit_price": "129.00",
            "total": "258.00",
        }
        meta = response.meta
        assert (meta.operation, meta.tenant, meta.correlation_id) == ("price.quote", "acme", "c-9")
        assert meta.worker_version == __version__
        assert (meta.source.topic, meta.source.partition, meta.source.offset) == ("requests", 2, 41)
        assert meta.received_at <= meta.processed_at
        assert meta.received_at.tzinfo is not None
        assert output.dead_letters == []

    def test_the_row_carries_the_request_and_its_source_position(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(request_id="q-2", tenant="globex", correlation_id="c-2")
        output = run(make_pipeline(), [make_record(payload, partition=1, offset=7)])
        (part,) = output.rows
        (row,) = part.rows
        assert len(row) == len(REQUEST_COLUMNS)
        values = dict(zip(REQUEST_COLUMNS, row, strict=True))
        assert values["request_id"] == "q-2"
        assert values["tenant"] == "globex"
        assert values["operation"] == "price.quote"
        assert values["status"] == "ok"
        assert values["error_code"] == ""
        assert values["correlation_id"] == "c-2"
        assert values["created_at"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
        assert values["received_at"] <= values["processed_at"]
        assert values["latency_ms"] >= 0.0
        assert values["cache_status"] == "bypass"
        assert (values["source_topic"], values["source_partition"], values["source_offset"]) == (
            "requests",
            1,
            7,
        )


class TestPartialResponses:
    def test_fields_select_the_result_fields_returned(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(fields=["total", "currency"])
        (message,) = run(make_pipeline(), [make_record(payload)]).responses
        assert envelope(message).data == {"total": "49.80", "currency": "EUR"}

    def test_unknown_field_names_are_left_out(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(
            operation="text.stats", params={"text": "a b a"}, fields=["words", "no_such_field"]
        )
        (message,) = run(make_pipeline(), [make_record(payload)]).responses
        assert envelope(message).data == {"words": 3}

    def test_an_empty_field_list_returns_an_empty_object(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        (message,) = run(make_pipeline(), [make_record(make_envelope(fields=[]))]).responses
        response = envelope(message)
        assert response.status == "ok"
        assert response.data == {}

    def test_without_fields_the_whole_result_is_returned(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        (message,) = run(make_pipeline(), [make_record(make_envelope())]).responses
        data = envelope(message).data
        assert data is not None
        assert set(data) == {"sku", "name", "quantity", "currency", "unit_price", "total"}


class TestErrorResponses:
    def test_a_validation_error_is_answered_with_the_claimed_ids(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(request_id="bad-1", correlation_id="c-3", surprise=1)
        output = run(make_pipeline(), [make_record(payload)])
        (message,) = output.responses
        response = envelope(message)
        assert response.status == "error"
        assert response.data is None
        assert response.error is not None
        assert response.error.code == "validation_failed"
        assert response.error.details["errors"][0]["path"] == "surprise"
        assert response.request_id == "bad-1"
        assert response.meta.correlation_id == "c-3"
        assert response.meta.tenant == "acme"
        assert message.key == b"bad-1"
        assert dict(message.headers)["status"] == b"error"
        (row,) = output.rows[0].rows
        assert column(row, "request_id") == "bad-1"
        assert column(row, "status") == "error"
        assert column(row, "error_code") == "validation_failed"

    def test_claimed_ids_that_are_not_identifiers_are_not_echoed(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(request_id="has spaces\nand a newline", tenant=["x"])
        record = make_record(payload, key=b"k", partition=0, offset=3)
        output = run(make_pipeline(), [record])
        response = envelope(output.responses[0])
        assert response.request_id is None
        assert response.meta.tenant is None
        assert output.responses[0].key == b"k"
        assert column(output.rows[0].rows[0], "request_id") == "@requests:0:3"

    @pytest.mark.parametrize("claimed", ["abc\n", "x" * 129, "", "a/b"])
    def test_a_claimed_id_is_echoed_only_if_the_contract_would_accept_it(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
        claimed: str,
    ) -> None:
        # The envelope fails on tenant, so request_id is only "claimed"; the contract's
        # identifier pattern rejects every one of these values, so none may be echoed.
        payload = make_envelope(request_id=claimed, tenant=None)
        output = run(make_pipeline(), [make_record(payload, key=b"k", offset=5)])
        message = output.responses[0]
        assert envelope(message).request_id is None
        assert message.key == b"k"
        assert "request-id" not in dict(message.headers)
        assert column(output.rows[0].rows[0], "request_id") == "@requests:0:5"

    @pytest.mark.parametrize(
        ("value", "code"),
        [
            (b"{oops", "invalid_payload"),
            (b"[1]", "invalid_payload"),
            (b"\xff", "invalid_payload"),
            (None, "invalid_payload"),
            (b"[" * 50 + b"]" * 50, "payload_too_deep"),
        ],
    )
    def test_an_undecodable_record_gets_its_position_as_request_id(
        self, make_pipeline: MakePipeline, make_record: MakeRecord, value: bytes | None, code: str
    ) -> None:
        record = make_record(value, topic="in", partition=3, offset=1234, key=b"orig-key")
        output = run(make_pipeline(), [record])
        (message,) = output.responses
        response = envelope(message)
        assert response.request_id is None
        assert response.error is not None
        assert response.error.code == code
        assert message.key == b"orig-key"
        assert "request-id" not in dict(message.headers)
        (part,) = output.rows
        (row,) = part.rows
        assert column(row, "request_id") == "@in:3:1234"
        assert column(row, "error_code") == code
        assert column(row, "tenant") == ""
        assert column(row, "source_offset") == 1234


class TestDeadLetters:
    def test_a_rejected_record_is_dead_lettered_with_its_original_bytes_and_headers(
        self, make_pipeline: MakePipeline, make_record: MakeRecord
    ) -> None:
        raw = b'{"request_id": "x", oops'
        record = make_record(
            raw, partition=2, offset=99, key=b"the-key", headers=(("trace", b"t-1"),)
        )
        output = run(make_pipeline(), [record])
        (letter,) = output.dead_letters
        assert letter.topic == "dead"
        assert letter.key == b"the-key"
        assert letter.value == raw
        headers = dict(letter.headers)
        assert letter.headers[0] == ("trace", b"t-1")
        assert headers["dlq-reason"] == b"invalid_payload"
        assert headers["dlq-message"]
        assert headers["dlq-source-topic"] == b"requests"
        assert headers["dlq-source-partition"] == b"2"
        assert headers["dlq-source-offset"] == b"99"
        assert headers["dlq-worker-version"] == __version__.encode()
        assert output.messages == [*output.responses, letter]

    def test_a_tombstone_is_dead_lettered_with_an_empty_value(
        self, make_pipeline: MakePipeline, make_record: MakeRecord
    ) -> None:
        (letter,) = run(make_pipeline(), [make_record(None, key=b"gone")]).dead_letters
        assert letter.value == b""
        assert letter.key == b"gone"
        assert dict(letter.headers)["dlq-reason"] == b"invalid_payload"

    def test_the_dead_letter_reason_is_the_error_code(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        records = [
            make_record(make_envelope(operation="no.such.op")),
            make_record(make_envelope(params={"sku": "SKU-1", "quantity": "1"})),
            make_record(b"[" * 40 + b"]" * 40, key=b"deep"),
            make_record(b"x" * 300, key=b"big"),
        ]
        output = run(make_pipeline(max_message_bytes=200), records)
        reasons = [dict(letter.headers)["dlq-reason"] for letter in output.dead_letters]
        assert reasons == [
            b"unknown_operation",
            b"validation_failed",
            b"payload_too_deep",
            b"payload_too_large",
        ]
        codes = [envelope(m).error.code for m in output.responses]  # type: ignore[union-attr]
        assert [code.encode() for code in codes] == reasons
        assert [letter.value for letter in output.dead_letters] == [r.value for r in records]

    def test_answered_requests_are_not_dead_lettered(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        records = [
            make_record(make_envelope()),
            make_record(make_envelope(params={"sku": "SKU-404", "quantity": 1})),
        ]
        output = run(make_pipeline(), records)
        statuses = [envelope(m).status for m in output.responses]
        assert statuses == ["ok", "error"]
        assert envelope(output.responses[1]).error.code == "not_found"  # type: ignore[union-attr]
        assert output.dead_letters == []


class TestRouting:
    def test_reply_to_is_used_only_when_allowlisted(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
    ) -> None:
        pipeline = make_pipeline(kafka=KafkaSettings(reply_to_allowlist="replies.a, replies.b"))
        allowed = make_record(make_envelope(reply_to="replies.b"))
        refused = make_record(make_envelope(reply_to="elsewhere"))
        first, second = run(pipeline, [allowed, refused]).responses
        assert first.topic == "replies.b"
        assert dict(first.headers)["routed-to"] == b"replies.b"
        assert second.topic == "responses"
        assert dict(second.headers)["reply-to-refused"] == b"elsewhere"
        assert dict(second.headers)["routed-to"] == b"responses"


class TestSensitiveFields:
    def test_a_dead_letter_redacts_sensitive_params_and_says_so(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        payload = make_envelope(operation="text.stats", params={"text": "my diary", "top": "3"})
        [letter] = run(make_pipeline(), [make_record(payload)]).dead_letters
        headers = dict(letter.headers)
        assert headers["dlq-reason"] == b"validation_failed"
        assert headers["dlq-redacted"] == b"params.text"
        body = orjson.loads(letter.value)
        assert body["params"] == {"text": "[redacted]", "top": "3"}
        assert b"my diary" not in letter.value

    def test_unparseable_bytes_are_kept_as_they_came(
        self, make_pipeline: MakePipeline, make_record: MakeRecord
    ) -> None:
        [letter] = run(make_pipeline(), [make_record(b'{"text": "my diary"')]).dead_letters
        assert letter.value == b'{"text": "my diary"'
        assert dict(letter.headers)["dlq-redacted"] == b""

    def test_logs_never_carry_sensitive_params(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level("DEBUG")
        payload = make_envelope(operation="text.stats", params={"text": "my diary", "top": 99})
        run(make_pipeline(), [make_record(payload)])
        assert "answered validation_failed" in caplog.text
        assert "[redacted]" in caplog.text
        assert "my diary" not in caplog.text


def dead_column(row: tuple[Any, ...], name: str) -> Any:
    return row[DEAD_LETTER_COLUMNS.index(name)]


class TestDeadLetterRows:
    def test_a_rejected_record_gets_a_row_with_reason_position_and_bytes(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        raw = b'{"request_id": "x", oops'
        records = [
            make_record(make_envelope(), partition=2),
            make_record(raw, partition=2, offset=99, key=b"the-key"),
            make_record(make_envelope(operation="no.such.op", tenant="globex"), partition=2),
        ]
        output = run(make_pipeline(), records)
        (part,) = output.rows
        assert part.dead_letter_offsets == [99, records[2].offset]
        bad, unknown = part.dead_letters
        assert dead_column(bad, "reason") == "invalid_payload"
        assert dead_column(bad, "message")
        assert dead_column(bad, "request_id") == "", "no id claimed: none stored"
        assert (
            dead_column(bad, "source_topic"),
            dead_column(bad, "source_partition"),
            dead_column(bad, "source_offset"),
        ) == ("requests", 2, 99)
        assert dead_column(bad, "key") == b"the-key"
        assert dead_column(bad, "payload") == raw
        assert dead_column(bad, "payload_bytes") == len(raw)
        assert dead_column(unknown, "reason") == "unknown_operation"
        assert dead_column(unknown, "tenant") == "globex"
        assert dead_column(unknown, "operation") == "no.such.op"
        assert dead_column(unknown, "request_id") == column(part.rows[2], "request_id")

    def test_the_stored_payload_is_capped_and_its_full_size_kept(
        self, make_pipeline: MakePipeline, make_record: MakeRecord
    ) -> None:
        raw = b"x" * (DEAD_LETTER_PAYLOAD_MAX + 500)
        output = run(make_pipeline(max_message_bytes=1000), [make_record(raw)])
        ((letter,),) = [part.dead_letters for part in output.rows]
        assert dead_column(letter, "reason") == "payload_too_large"
        assert dead_column(letter, "payload") == raw[:DEAD_LETTER_PAYLOAD_MAX]
        assert dead_column(letter, "payload_bytes") == len(raw)
        (message,) = output.dead_letters
        assert message.value == raw, "the dead-letter topic keeps every byte"

    def test_answered_requests_have_no_dead_letter_row(
        self, make_pipeline: MakePipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
    ) -> None:
        records = [
            make_record(make_envelope()),
            make_record(make_envelope(params={"sku": "SKU-404", "quantity": 1})),
        ]
        (part,) = run(make_pipeline(), records).rows
        assert part.dead_letters == []
