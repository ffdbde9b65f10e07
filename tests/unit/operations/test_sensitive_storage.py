"""Sensitive fields in ClickHouse rows: left out or encrypted, as the operation declares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from tests.support.cache import Clock
from worker.auth.secrets import SecretBox, new_master_key
from worker.cache.memory import MemoryCacheStore
from worker.cache.metrics import CacheMetrics
from worker.cache.service import ResultCache
from worker.errors import ConfigurationError
from worker.flow.output import DEAD_LETTER_COLUMNS, REQUEST_COLUMNS, BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.operations.encryption import PREFIX, FieldCipher, open_all
from worker.operations.quote import QuoteOperation, QuoteParams
from worker.operations.sensitive import sensitive, sensitive_fields, storage_policies
from worker.operations.storage import MAX_STORED_JSON, RowValues
from worker.operations.text_stats import (
    TextStatsOperation,
    TextStatsParams,
    TextStatsResult,
)
from worker.reference.memory import demo_catalog
from worker.settings import CacheSettings, SecuritySettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]


def key() -> bytes:
    return SecuritySettings(master_key=new_master_key()).master_key_bytes()  # type: ignore[arg-type]


class Declared(BaseModel):
    plain: int = 0
    hidden: Annotated[str, sensitive()] = ""
    sealed: Annotated[str, Field(max_length=10), sensitive(store="encrypt")] = ""


class TestDeclaration:
    def test_the_default_policy_is_to_omit(self) -> None:
        assert storage_policies(Declared) == {"hidden": "omit", "sealed": "encrypt"}
        assert sensitive_fields(Declared) == {"hidden", "sealed"}

    def test_the_json_schema_names_the_policy(self) -> None:
        properties = Declared.model_json_schema()["properties"]
        assert properties["hidden"]["x-sensitive"] == "omit"
        assert properties["sealed"]["x-sensitive"] == "encrypt"
        assert "x-sensitive" not in properties["plain"]
        assert properties["sealed"]["maxLength"] == 10, "other constraints are kept"

    def test_an_unknown_policy_is_refused(self) -> None:
        with pytest.raises(ValueError, match="store='hash'"):
            sensitive(store="hash")  # type: ignore[arg-type]

    def test_text_stats_encrypts_its_text_and_omits_its_top_words(self) -> None:
        assert storage_policies(TextStatsParams) == {"text": "encrypt"}
        assert storage_policies(TextStatsResult) == {"top_words": "omit"}


class TestFieldCipher:
    def test_a_sealed_value_is_versioned_text_that_opens_again(self) -> None:
        cipher = FieldCipher(key())
        value = {"nested": ["my diary", 3]}
        sealed = cipher.seal(value)
        assert sealed.startswith(PREFIX)
        assert "diary" not in sealed
        assert cipher.open(sealed) == value
        assert cipher.seal(value) != sealed, "a fresh nonce every time"

    def test_another_key_or_a_damaged_value_does_not_open(self) -> None:
        sealed = FieldCipher(key()).seal("my diary")
        with pytest.raises(ConfigurationError, match="does not open"):
            FieldCipher(key()).open(sealed)
        master = key()
        cipher = FieldCipher(master)
        sealed = cipher.seal("my diary")
        flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
        with pytest.raises(ConfigurationError):
            cipher.open(flipped)

    def test_the_data_key_is_not_the_master_key(self) -> None:
        master = key()
        credential = SecretBox(master).seal("a secret", "rk_1:1")
        with pytest.raises(ConfigurationError):
            FieldCipher(master).open(PREFIX + credential)

    def test_without_a_master_key_there_is_no_cipher(self) -> None:
        assert FieldCipher.from_settings(SecuritySettings(auth_modes="none")) is None
        configured = SecuritySettings(master_key=new_master_key())  # type: ignore[arg-type]
        assert isinstance(FieldCipher.from_settings(configured), FieldCipher)
        assert repr(FieldCipher(key())) == "FieldCipher(<key hidden>)"

    def test_open_all_opens_values_inside_json_columns_of_a_query_row(self) -> None:
        cipher = FieldCipher(key())
        params = orjson.dumps({"text": cipher.seal("my diary"), "top": 3}).decode()
        row = {"request_id": "r-1", "params": params, "result": '{"words": 2}'}
        assert open_all(row, cipher) == {
            "request_id": "r-1",
            "params": {"text": "my diary", "top": 3},
            "result": {"words": 2},
        }
        assert open_all("{not json", cipher) == "{not json"
        assert open_all(cipher.seal(5), cipher) == 5


class TestRowValues:
    def test_an_operation_without_sensitive_fields_is_stored_as_it_came(self) -> None:
        quote = QuoteOperation(demo_catalog())
        values = RowValues(FieldCipher(key()))
        params = QuoteParams(sku="SKU-1", quantity=2)
        stored = {"sku": "SKU-1", "quantity": 2, "currency": "EUR"}
        assert orjson.loads(values.params(quote, params)) == stored, "defaults filled in"
        assert values.params(quote, params, '{"already": "made"}') == '{"already": "made"}'
        assert values.plan(quote).params.clear

    def test_encrypt_fields_are_sealed_and_omit_fields_left_out(self) -> None:
        cipher = FieldCipher(key())
        values = RowValues(cipher)
        operation = TextStatsOperation()
        params = orjson.loads(values.params(operation, TextStatsParams(text="my diary", top=2)))
        assert params["top"] == 2
        assert params["text"].startswith(PREFIX)
        assert cipher.open(params["text"]) == "my diary"
        result = {"characters": 8, "words": 2, "lines": 1, "top_words": [{"word": "my"}]}
        stored = values.result(operation, result)
        assert orjson.loads(stored) == {"characters": 8, "words": 2, "lines": 1}
        assert result["top_words"], "the caller's dict is not changed"

    def test_without_a_cipher_encrypt_fields_are_left_out_too(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        values = RowValues(None)
        stored = values.params(TextStatsOperation(), TextStatsParams(text="my diary", top=2), "{}")
        assert orjson.loads(stored) == {"top": 2}
        assert "no master key to encrypt text.stats" in caplog.text

    def test_nothing_is_stored_for_missing_values_or_too_long_json(self) -> None:
        values = RowValues(None)
        quote = QuoteOperation(demo_catalog())
        assert values.params(quote, None) == ""
        assert values.result(quote, None) == ""
        long = QuoteParams.model_construct(sku="S" * MAX_STORED_JSON, quantity=1)
        assert values.params(quote, long) == ""


def run(pipeline: Pipeline, records: list[InboundRecord]) -> BatchOutput:
    return asyncio.run(pipeline.run(records))


def column(row: tuple[Any, ...], name: str) -> Any:
    return row[REQUEST_COLUMNS.index(name)]


class TestRows:
    @pytest.fixture
    def security(self) -> SecuritySettings:
        return SecuritySettings(
            auth_modes="none",
            idempotency_ttl_s=3600,
            master_key=new_master_key(),  # type: ignore[arg-type]
        )

    @pytest.fixture
    def cache(self) -> ResultCache:
        return ResultCache(
            MemoryCacheStore(4),
            CacheSettings(),
            metrics=CacheMetrics(CollectorRegistry()),
            clock=Clock(),
        )

    def test_a_text_stats_row_holds_no_plaintext_of_its_sensitive_fields(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
        security: SecuritySettings,
        cache: ResultCache,
    ) -> None:
        payload = make_envelope(operation="text.stats", params={"text": "zebra zebra quokka"})
        output = run(make_pipeline(security=security, cache=cache), [make_record(payload)])
        [row] = output.rows[0].rows
        assert "zebra" not in repr(row)
        assert "quokka" not in repr(row)
        params = orjson.loads(column(row, "params"))
        cipher = FieldCipher(security.master_key_bytes())
        assert cipher.open(params["text"]) == "zebra zebra quokka"
        assert orjson.loads(column(row, "result")) == {"characters": 18, "words": 3, "lines": 1}
        assert column(row, "cache_params") == "", "the cache's params hold the text in clear"
        [response] = output.responses
        assert b"zebra" in response.value, "the client is answered in full"

    def test_a_quote_row_holds_its_params_result_and_cache_params(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
        security: SecuritySettings,
        cache: ResultCache,
    ) -> None:
        payload = make_envelope(params={"sku": "SKU-1", "quantity": 2}, fields=["total"])
        output = run(make_pipeline(security=security, cache=cache), [make_record(payload)])
        [row] = output.rows[0].rows
        assert orjson.loads(column(row, "params")) == {
            "sku": "SKU-1",
            "quantity": 2,
            "currency": "EUR",
        }
        assert list(orjson.loads(column(row, "result"))) == ["total"], "what was answered"
        assert orjson.loads(column(row, "cache_params"))["sku"] == "SKU-1", "kept for warming"

    def test_rejected_requests_store_no_params_and_their_dead_letter_row_is_redacted(
        self,
        make_pipeline: MakePipeline,
        make_envelope: MakeEnvelope,
        make_record: MakeRecord,
        security: SecuritySettings,
    ) -> None:
        payload = make_envelope(operation="text.stats", params={"text": "my diary", "top": "3"})
        output = run(make_pipeline(security=security), [make_record(payload)])
        part = output.rows[0]
        [row] = part.rows
        assert (column(row, "params"), column(row, "result")) == ("", "")
        [letter] = part.dead_letters
        stored = letter[DEAD_LETTER_COLUMNS.index("payload")]
        assert b"my diary" not in stored
        assert orjson.loads(stored)["params"]["text"] == "[redacted]"
        assert letter[DEAD_LETTER_COLUMNS.index("payload_bytes")] == len(orjson.dumps(payload))
