"""The result cache over both stores: hits, TTL, negative caching, tenants, dependencies,
invalidation and the sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.support.cache import STORES, Clock, RecordingChangelog
from worker.cache.base import CacheStore
from worker.cache.invalidation import Invalidation
from worker.cache.keys import partition_for
from worker.cache.metrics import CacheMetrics
from worker.cache.service import CacheRequest, Lookup, ResultCache
from worker.errors import NotFoundError
from worker.operations.base import Operation
from worker.operations.quote import QuoteOperation, QuoteParams
from worker.operations.text_stats import TextStatsOperation, TextStatsParams
from worker.reference.base import Product
from worker.reference.memory import MemoryCatalog, demo_catalog
from worker.settings import CacheSettings

MakeStore = Callable[..., CacheStore]
MakeCache = Callable[..., ResultCache]


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def catalog() -> MemoryCatalog:
    return demo_catalog()


@pytest.fixture
def quote(catalog: MemoryCatalog) -> QuoteOperation:
    return QuoteOperation(catalog)


def ask(
    cache: ResultCache, operation: Operation[Any, Any], *params: Any, tenant: str = "acme"
) -> list[Lookup]:
    return cache.lookup([CacheRequest(tenant, operation, p) for p in params])


def answer_all(cache: ResultCache, lookups: Sequence[Lookup]) -> None:
    """Compute what was missed, as the process stage would, and write it back."""
    by_operation: dict[str, list[Lookup]] = {}
    for lookup in lookups:
        if not lookup.served and lookup.status != "bypass":
            by_operation.setdefault(lookup.operation.name, []).append(lookup)
    answers: list[tuple[Lookup, Any]] = []
    for group in by_operation.values():
        operation = group[0].operation
        pairs = [(lookup.key.tenant, _params(operation, lookup)) for lookup in group]
        outcomes = asyncio.run(operation.handle(pairs))
        for lookup, outcome in zip(group, outcomes, strict=True):
            answers.append(
                (
                    lookup,
                    outcome
                    if isinstance(outcome, NotFoundError)
                    else outcome.model_dump(mode="json"),
                )
            )
    asyncio.run(cache.store_answers(answers))


def _params(operation: Operation[Any, Any], lookup: Lookup) -> Any:
    return operation.params_model.model_validate_json(lookup.key.canonical_params)


def statuses(lookups: Sequence[Lookup]) -> list[str]:
    return [lookup.status for lookup in lookups]


SKU1 = QuoteParams(sku="SKU-1", quantity=2)
SKU3_USD = QuoteParams(sku="SKU-3", quantity=1, currency="USD")
SKU3_GBP = QuoteParams(sku="SKU-3", quantity=1, currency="GBP")
MISSING = QuoteParams(sku="SKU-404", quantity=1)


def test_a_miss_is_stored_and_then_served(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    first = ask(cache, quote, SKU1, SKU3_USD)
    assert statuses(first) == ["miss", "miss"]
    answer_all(cache, first)
    again = ask(cache, quote, SKU1, SKU3_USD)
    assert statuses(again) == ["hit", "hit"]
    assert again[0].entry is not None
    assert again[0].entry.body["total"] == "49.80"


def test_entries_expire_after_the_operation_ttl_and_are_never_served_after(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation, clock: Clock
) -> None:
    cache = make_cache(make_store(kind), ttl_s={"price.quote": 10})
    answer_all(cache, ask(cache, quote, SKU1))
    clock.advance(9.9)
    assert statuses(ask(cache, quote, SKU1)) == ["hit"]
    clock.advance(0.1)
    assert statuses(ask(cache, quote, SKU1)) == ["stale"]
    clock.advance(3600)
    assert statuses(ask(cache, quote, SKU1)) == ["stale"]


def test_a_stale_entry_is_replaced_by_the_fresh_answer(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation, clock: Clock
) -> None:
    cache = make_cache(make_store(kind), ttl_s={"price.quote": 10})
    answer_all(cache, ask(cache, quote, SKU1))
    clock.advance(11)
    answer_all(cache, ask(cache, quote, SKU1))
    clock.advance(5)
    assert statuses(ask(cache, quote, SKU1)) == ["hit"]


def test_not_found_is_cached_with_its_own_ttl(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation, clock: Clock
) -> None:
    cache = make_cache(
        make_store(kind), ttl_s={"price.quote": 100}, not_found_ttl_s={"price.quote": 5}
    )
    answer_all(cache, ask(cache, quote, SKU1, MISSING))
    [found, missing] = ask(cache, quote, SKU1, MISSING)
    assert (found.status, missing.status) == ("hit", "negative")
    error = missing.not_found()
    assert error.code == "not_found"
    assert error.details == {"path": "params.sku"}
    clock.advance(5)
    assert statuses(ask(cache, quote, SKU1, MISSING)) == ["hit", "stale"]


def test_a_zero_ttl_caches_nothing(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(
        make_store(kind), ttl_s={"price.quote": 0}, not_found_ttl_s={"price.quote": 0}
    )
    assert not cache.cacheable(quote)
    answer_all(cache, ask(cache, quote, SKU1, MISSING))
    assert statuses(ask(cache, quote, SKU1, MISSING)) == ["miss", "miss"]


def test_one_tenant_never_reads_another_tenants_entry(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    answer_all(cache, ask(cache, quote, SKU1, MISSING, tenant="acme"))
    others = ask(cache, quote, SKU1, MISSING, tenant="globex")
    assert statuses(others) == ["miss", "miss"]
    assert {lookup.key.text for lookup in others}.isdisjoint(
        lookup.key.text for lookup in ask(cache, quote, SKU1, MISSING, tenant="acme")
    )
    # a tenant whose name is another's prefix is still another tenant
    assert statuses(ask(cache, quote, SKU1, tenant="acm")) == ["miss"]


def test_a_change_of_the_data_an_answer_depends_on_makes_it_stale(
    kind: str,
    make_store: MakeStore,
    make_cache: MakeCache,
    quote: QuoteOperation,
    catalog: MemoryCatalog,
) -> None:
    cache = make_cache(make_store(kind))
    answer_all(cache, ask(cache, quote, SKU1, SKU3_USD, SKU3_GBP, MISSING))
    catalog.put_rate("GBP", Decimal("0.90"))  # SKU-3 is priced in USD, asked in GBP
    catalog.put_product(Product("SKU-404", "Found at last", Decimal("1.00"), "EUR"))
    assert statuses(ask(cache, quote, SKU1, SKU3_USD, SKU3_GBP, MISSING)) == [
        "hit",
        "hit",
        "stale",
        "stale",
    ]


def test_pure_operations_depend_on_nothing_and_live_until_their_ttl(
    kind: str, make_store: MakeStore, make_cache: MakeCache, clock: Clock
) -> None:
    cache = make_cache(make_store(kind))
    stats = TextStatsOperation()
    params = TextStatsParams(text="a b a")
    answer_all(cache, ask(cache, stats, params))
    [hit] = ask(cache, stats, params)
    assert hit.status == "hit"
    assert hit.dependencies == {}
    clock.advance(TextStatsOperation.cache_ttl_s)
    assert statuses(ask(cache, stats, params)) == ["stale"]


def test_keys_owned_by_another_worker_bypass_the_cache(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind, partitions=4, owned=[0]))
    params = [QuoteParams(sku="SKU-1", quantity=q) for q in range(1, 40)]
    lookups = ask(cache, quote, *params)
    assert {lookup.status for lookup in lookups if lookup.partition == 0} == {"miss"}
    assert {lookup.status for lookup in lookups if lookup.partition != 0} == {"bypass"}
    answer_all(cache, lookups)
    after = ask(cache, quote, *params)
    assert {lookup.status for lookup in after if lookup.partition == 0} == {"hit"}
    assert {lookup.status for lookup in after if lookup.partition != 0} == {"bypass"}


def test_lookups_are_counted_by_result(
    make_store: MakeStore, quote: QuoteOperation, clock: Clock
) -> None:
    registry = CollectorRegistry()
    cache = ResultCache(
        make_store("memory"), CacheSettings(), metrics=CacheMetrics(registry), clock=clock
    )
    answer_all(cache, ask(cache, quote, SKU1, MISSING))
    ask(cache, quote, SKU1, MISSING)

    def count(result: str) -> float:
        value = registry.get_sample_value("worker_cache_requests_total", {"result": result})
        return value or 0.0

    assert (count("miss"), count("hit"), count("negative"), count("stale")) == (2, 1, 1, 0)


# ----------------------------------------------------------------- invalidation


def _present(cache: ResultCache, quote: QuoteOperation, *params: QuoteParams) -> list[bool]:
    return [lookup.served for lookup in ask(cache, quote, *params)]


def test_invalidation_by_exact_key_removes_that_entry_only(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    lookups = ask(cache, quote, SKU1, SKU3_USD)
    answer_all(cache, lookups)
    removed = asyncio.run(cache.invalidate(Invalidation(kind="key", value=lookups[0].key.text)))
    assert removed == 1
    assert _present(cache, quote, SKU1, SKU3_USD) == [False, True]


def test_invalidation_by_tag_removes_every_dependent_entry_through_the_index(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    many = [QuoteParams(sku="SKU-3", quantity=q, currency="GBP") for q in range(1, 30)]
    answer_all(cache, ask(cache, quote, SKU1, SKU3_USD, *many))
    removed = asyncio.run(cache.invalidate(Invalidation(kind="tag", value="rate:GBP")))
    assert removed == len(many)
    assert _present(cache, quote, SKU1, SKU3_USD) == [True, True]
    assert not any(_present(cache, quote, *many))
    assert asyncio.run(cache.invalidate(Invalidation(kind="tag", value="product:SKU-3"))) == 1


def test_invalidation_by_operation_and_by_tenant(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    stats = TextStatsOperation()
    text = TextStatsParams(text="hello")
    for tenant in ("acme", "globex"):
        answer_all(cache, ask(cache, quote, SKU1, tenant=tenant))
        answer_all(cache, ask(cache, stats, text, tenant=tenant))

    assert asyncio.run(cache.invalidate(Invalidation(kind="operation", value="text.stats"))) == 2
    assert statuses(ask(cache, stats, text, tenant="acme")) == ["miss"]
    assert statuses(ask(cache, quote, SKU1, tenant="acme")) == ["hit"]

    assert asyncio.run(cache.invalidate(Invalidation(kind="tenant", value="acme"))) == 1
    assert statuses(ask(cache, quote, SKU1, tenant="acme")) == ["miss"]
    assert statuses(ask(cache, quote, SKU1, tenant="globex")) == ["hit"]


def test_invalidation_touches_only_the_partitions_it_is_given(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation
) -> None:
    cache = make_cache(make_store(kind))
    params = [QuoteParams(sku="SKU-1", quantity=q) for q in range(1, 40)]
    lookups = ask(cache, quote, *params)
    answer_all(cache, lookups)
    asyncio.run(cache.invalidate(Invalidation(kind="tag", value="product:SKU-1"), [1]))
    for lookup, served in zip(lookups, _present(cache, quote, *params), strict=True):
        assert served == (lookup.partition != 1)


def test_removals_write_tombstones_for_entries_and_their_index_keys(
    make_store: MakeStore,
    make_cache: MakeCache,
    quote: QuoteOperation,
    changelog: RecordingChangelog,
) -> None:
    cache = make_cache(make_store("rocksdb"))
    [lookup] = ask(cache, quote, SKU3_GBP)
    answer_all(cache, [lookup])
    asyncio.run(cache.invalidate(Invalidation(kind="tag", value="rate:USD")))
    key = lookup.key.text
    assert changelog.tombstones("cache-entries") == [key.encode()]
    assert sorted(changelog.tombstones("cache-index")) == sorted(
        f"{tag}\0{key}".encode() for tag in ("product:SKU-3", "rate:USD", "rate:GBP")
    )
    partitions = {p for _, p, _, _ in changelog.records}
    assert partitions == {partition_for(key, 4)}, "every record in the partition of the key"


# ----------------------------------------------------------------- the sweep


def test_the_sweep_removes_expired_entries_with_tombstones_and_keeps_live_ones(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation, clock: Clock
) -> None:
    store = make_store(kind)
    cache = make_cache(store, ttl_s={"price.quote": 10, "text.stats": 100})
    short = [QuoteParams(sku="SKU-2", quantity=q) for q in range(1, 21)]
    answer_all(cache, ask(cache, quote, *short))
    stats = TextStatsOperation()
    answer_all(cache, ask(cache, stats, TextStatsParams(text="keep me")))
    clock.advance(10)
    assert asyncio.run(cache.sweep()) == 20
    assert cache.refresh_size() == 1
    assert statuses(ask(cache, stats, TextStatsParams(text="keep me"))) == ["hit"]
    assert statuses(ask(cache, quote, *short)) == ["miss"] * 20, "gone, not merely stale"
    for partition in range(store.partitions):
        assert [
            k for k, _ in store.scan(partition, "index", prefix="product:SKU-2\0", limit=99)
        ] == []


def test_a_bounded_sweep_resumes_where_it_stopped(
    kind: str, make_store: MakeStore, make_cache: MakeCache, quote: QuoteOperation, clock: Clock
) -> None:
    cache = make_cache(make_store(kind, partitions=1), ttl_s={"price.quote": 10})
    answer_all(
        cache, ask(cache, quote, *[QuoteParams(sku="SKU-2", quantity=q) for q in range(1, 26)])
    )
    clock.advance(10)
    removed = [asyncio.run(cache.sweep(limit=10)) for _ in range(4)]
    assert removed == [10, 10, 5, 0]


def test_removals_and_size_are_counted(
    make_store: MakeStore, quote: QuoteOperation, clock: Clock
) -> None:
    registry = CollectorRegistry()
    cache = ResultCache(
        make_store("memory"),
        CacheSettings(ttl_s={"price.quote": 10}),
        metrics=CacheMetrics(registry),
        clock=clock,
    )
    answer_all(cache, ask(cache, quote, *[QuoteParams(sku="SKU-1", quantity=q) for q in (1, 2, 3)]))
    answer_all(cache, ask(cache, quote, SKU3_GBP))
    asyncio.run(cache.invalidate(Invalidation(kind="tag", value="rate:GBP")))
    clock.advance(10)
    asyncio.run(cache.sweep())

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert sample("worker_cache_evictions_total", reason="invalidated") == 1
    assert sample("worker_cache_evictions_total", reason="expired") == 3
    assert sample("worker_cache_invalidations_total", kind="tag") == 4, "once per partition"
    assert sample("worker_cache_entries") == 0
