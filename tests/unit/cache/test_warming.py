"""Warming: the hottest owned keys computed ahead of time, within bounds, never fatal."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from tests.support.cache import Clock
from worker.cache.keys import derive, partition_for
from worker.cache.memory import MemoryCacheStore
from worker.cache.metrics import CacheMetrics
from worker.cache.service import CacheRequest, ResultCache
from worker.cache.warming import HotKey, MemoryHotKeys, Warmer, WarmReport
from worker.operations.quote import QuoteOperation, QuoteParams
from worker.operations.registry import default_registry
from worker.settings import CacheSettings


def hot(sku: str, quantity: int, requests: int, tenant: str = "acme") -> HotKey:
    params = QuoteParams(sku=sku, quantity=quantity)
    key = derive(tenant, "price.quote", 1, params)
    return HotKey(key.text, tenant, "price.quote", key.canonical_params, requests)


def make(
    keys: list[HotKey], *, owned: list[int] | None = None, **settings: object
) -> tuple[Warmer, ResultCache, CollectorRegistry]:
    registry = CollectorRegistry()
    cache = ResultCache(
        MemoryCacheStore(4, owned),
        CacheSettings.model_validate(settings),
        metrics=CacheMetrics(registry),
        clock=Clock(),
    )
    warmer = Warmer(cache, default_registry(), MemoryHotKeys(keys), cache.settings)
    return warmer, cache, registry


def statuses(cache: ResultCache, keys: list[HotKey]) -> list[str]:
    quote = default_registry().get("price.quote")
    assert isinstance(quote, QuoteOperation)
    requests = [
        CacheRequest(k.tenant, quote, QuoteParams.model_validate_json(k.params)) for k in keys
    ]
    return [lookup.status for lookup in cache.lookup(requests)]


def served(cache: ResultCache, keys: list[HotKey]) -> list[bool]:
    return [status in ("hit", "negative") for status in statuses(cache, keys)]


def test_missing_hot_keys_are_computed_and_present_ones_only_read() -> None:
    keys = [hot("SKU-1", q, requests=10 - q) for q in range(1, 6)]
    warmer, cache, _ = make(keys)
    assert asyncio.run(warmer.warm()).computed == 5
    again = asyncio.run(warmer.warm())
    assert (again.candidates, again.present, again.computed) == (5, 5, 0)
    assert served(cache, keys) == [True] * 5


def test_only_the_hottest_keys_up_to_the_limit_are_warmed() -> None:
    keys = [hot("SKU-2", q, requests=q) for q in range(1, 11)]
    warmer, cache, _ = make(keys, warm_max_keys=3)
    report = asyncio.run(warmer.warm())
    assert report.computed == 3
    assert served(cache, keys) == [False] * 7 + [True] * 3


def test_keys_of_partitions_owned_elsewhere_are_left_to_their_owner() -> None:
    keys = [hot("SKU-1", q, requests=1) for q in range(1, 30)]
    warmer, cache, _ = make(keys, owned=[2])
    report = asyncio.run(warmer.warm())
    mine = [k for k in keys if partition_for(k.key, 4) == 2]
    assert report.candidates == report.computed == len(mine)
    cache.store.assign(range(4))  # type: ignore[attr-defined]
    assert served(cache, keys) == [partition_for(k.key, 4) == 2 for k in keys]


def test_not_found_answers_are_warmed_as_negative_entries() -> None:
    keys = [hot("SKU-404", 1, requests=5)]
    warmer, cache, _ = make(keys)
    assert asyncio.run(warmer.warm()).computed == 1
    assert statuses(cache, keys) == ["negative"]


def test_rows_that_no_longer_make_a_request_are_skipped() -> None:
    keys = [
        HotKey("acme/gone.op/v1/x", "acme", "gone.op", "{}", 9),
        HotKey("acme/price.quote/v1/y", "acme", "price.quote", '{"sku": 1}', 8),
        hot("SKU-3", 1, requests=7),
    ]
    warmer, _, _ = make(keys)
    report = asyncio.run(warmer.warm())
    assert (report.skipped, report.computed) == (2, 1)


def test_warming_lookups_are_not_counted_as_requests() -> None:
    warmer, _, registry = make([hot("SKU-1", 1, requests=1)])
    asyncio.run(warmer.warm())
    asyncio.run(warmer.warm())
    for result in ("hit", "miss"):
        assert registry.get_sample_value("worker_cache_requests_total", {"result": result}) == 0


class FailingSource:
    async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
        raise ConnectionError("ClickHouse is down")


class SlowSource:
    async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
        await asyncio.sleep(3600)
        return []


def _warm_with(source: object, **settings: object) -> WarmReport:
    _, cache, _ = make([])
    warmer = Warmer(cache, default_registry(), source, CacheSettings.model_validate(settings))  # type: ignore[arg-type]
    return asyncio.run(warmer.warm())


def test_a_failing_source_skips_warming_instead_of_failing_the_worker() -> None:
    report = _warm_with(FailingSource())
    assert report.error is not None
    assert "ClickHouse is down" in report.error
    assert "failed" in report.describe()


def test_warming_stops_at_its_deadline() -> None:
    report = _warm_with(SlowSource(), warm_timeout_s=0.05)
    assert report.timed_out
    assert "timed out" in report.describe()


def test_warming_can_be_switched_off() -> None:
    calls: list[int] = []

    class Counting(MemoryHotKeys):
        async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
            calls.append(limit)
            return []

    for settings in ({"warm_max_keys": 0}, {"warm_timeout_s": 0}, {"enabled": False}):
        report = _warm_with(Counting(), **settings)
        assert report == WarmReport()
    assert calls == []
