"""The cache stages in the pipeline: hits answered like processed requests, misses stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.support.cache import Clock
from worker.cache.memory import MemoryCacheStore
from worker.cache.metrics import CacheMetrics
from worker.cache.service import ResultCache
from worker.flow.output import REQUEST_COLUMNS, BatchOutput
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.operations.registry import default_registry
from worker.reference.memory import demo_catalog
from worker.settings import CacheSettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_cache(clock: Clock) -> Callable[..., ResultCache]:
    def make(**settings: Any) -> ResultCache:
        return ResultCache(
            MemoryCacheStore(4),
            CacheSettings(**settings),
            metrics=CacheMetrics(CollectorRegistry()),
            clock=clock,
        )

    return make


def run(pipeline: Pipeline, records: list[InboundRecord]) -> BatchOutput:
    return asyncio.run(pipeline.run(records))


def bodies(output: BatchOutput) -> list[dict[str, Any]]:
    return [orjson.loads(message.value) for message in output.responses]


def column(output: BatchOutput, name: str) -> list[Any]:
    index = REQUEST_COLUMNS.index(name)
    return [row[index] for part in output.rows for row in part.rows]


def test_the_second_asking_is_a_hit_with_the_same_data(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    pipeline = make_pipeline(cache=make_cache())
    ask = {"operation": "price.quote", "params": {"sku": "SKU-3", "quantity": 2, "currency": "GBP"}}
    first = bodies(run(pipeline, [make_record(make_envelope(**ask))]))
    second = bodies(run(pipeline, [make_record(make_envelope(**ask, fields=["total"]))]))
    assert [first[0]["meta"]["cache"], second[0]["meta"]["cache"]] == ["miss", "hit"]
    assert second[0]["status"] == "ok"
    assert second[0]["data"] == {"total": first[0]["data"]["total"]}, "fields apply to hits too"


def test_a_cached_not_found_is_answered_as_not_found(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    pipeline = make_pipeline(cache=make_cache())
    missing = {"params": {"sku": "SKU-404", "quantity": 1}}
    run(pipeline, [make_record(make_envelope(**missing))])
    [body] = bodies(run(pipeline, [make_record(make_envelope(**missing))]))
    assert body["status"] == "error"
    assert body["error"]["code"] == "not_found"
    assert body["error"]["details"] == {"path": "params.sku"}
    assert body["meta"]["cache"] == "hit"


def test_rows_carry_the_cache_status_key_and_canonical_params(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    pipeline = make_pipeline(cache=make_cache())
    ask = {"tenant": "acme", "params": {"quantity": 2, "sku": "SKU-1"}}
    run(pipeline, [make_record(make_envelope(**ask))])
    # A new request id: the same id again would be answered as a replay.
    output = run(pipeline, [make_record(make_envelope(**ask)), make_record(b"not json")])
    assert column(output, "cache_status") == ["hit", "bypass"]
    key, broken = column(output, "cache_key")
    assert key.startswith("acme/price.quote/v1/")
    assert broken == ""
    assert column(output, "cache_params")[0] == '{"currency":"EUR","quantity":2,"sku":"SKU-1"}'


def test_within_one_batch_each_request_is_answered_and_stored_once(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    cache = make_cache()
    pipeline = make_pipeline(cache=cache)
    params = {"sku": "SKU-2", "quantity": 1}
    same = [make_record(make_envelope(params=params)) for _ in range(3)]
    first = bodies(run(pipeline, same))
    assert [b["meta"]["cache"] for b in first] == ["miss"] * 3
    assert len({b["data"]["total"] for b in first}) == 1
    again = [make_record(make_envelope(params=params))]
    assert [b["meta"]["cache"] for b in bodies(run(pipeline, again))] == ["hit"]
    assert cache.refresh_size() == 1


def test_a_disabled_cache_answers_everything_uncached(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    pipeline = make_pipeline(cache=make_cache(enabled=False))
    run(pipeline, [make_record(make_envelope()) for _ in range(2)])
    records = [make_record(make_envelope()) for _ in range(2)]
    assert [b["meta"]["cache"] for b in bodies(run(pipeline, records))] == ["bypass", "bypass"]


def test_an_answer_is_recomputed_once_its_reference_data_changed(
    make_pipeline: MakePipeline,
    make_cache: Callable[..., ResultCache],
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
) -> None:
    catalog = demo_catalog()
    pipeline = make_pipeline(default_registry(catalog), cache=make_cache())
    ask = {"params": {"sku": "SKU-1", "quantity": 1}}
    [before] = bodies(run(pipeline, [make_record(make_envelope(**ask))]))
    product = next(p for p in catalog.all_products if p.sku == "SKU-1")
    catalog.put_product(type(product)(product.sku, product.name, product.unit_price * 2, "EUR"))
    [after] = bodies(run(pipeline, [make_record(make_envelope(**ask))]))
    assert after["meta"]["cache"] == "miss"
    assert (before["data"]["total"], after["data"]["total"]) == ("24.90", "49.80")
