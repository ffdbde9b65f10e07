"""Factories for the cache tests: stores (in memory and on real RocksDB), caches and a clock.

The RocksDB store is the production one on Faust tables, opened in a temporary
directory; only its changelog is replaced by
:class:`~tests.support.cache.RecordingChangelog`, which keeps what would have
gone to the broker (the broker paths are covered by the end-to-end tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from tests.support.cache import Clock, RecordingChangelog
from worker.cache.base import CacheStore
from worker.cache.memory import MemoryCacheStore
from worker.cache.metrics import CacheMetrics
from worker.cache.service import ResultCache
from worker.cache.tables import TableCacheStore
from worker.settings import CacheSettings
from worker.state.rocksdb import MemoryBudget
from worker.state.tables import DeclaredTable


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changelog() -> RecordingChangelog:
    return RecordingChangelog()


@pytest.fixture
def make_store(tmp_path: Path, changelog: RecordingChangelog) -> Callable[..., CacheStore]:
    """``make_store(kind, partitions=4, owned=None)``: a memory or RocksDB cache store."""
    made = 0

    def make(kind: str, partitions: int = 4, owned: Iterable[int] | None = None) -> CacheStore:
        nonlocal made
        made += 1
        mine = frozenset(range(partitions) if owned is None else owned)
        if kind == "memory":
            return MemoryCacheStore(partitions, mine)
        app = faust.App(
            f"cache-test-{made}",
            datadir=str(tmp_path / f"state{made}"),
            autodiscover=False,
            topic_allow_declare=False,
        )
        budget = MemoryBudget(CacheSettings(block_cache_mb=8, memtable_budget_mb=8))
        tables = [
            app.tables.add(
                DeclaredTable(
                    app, name=name, topic=f"t.{name}", partitions=partitions, budget=budget
                )
            )
            for name in ("cache-entries", "cache-index")
        ]
        return TableCacheStore(
            tables[0], tables[1], partitions=partitions, owned=lambda: mine, changelog=changelog
        )

    return make


@pytest.fixture
def make_cache(clock: Clock) -> Callable[..., ResultCache]:
    """``make_cache(store, **cache_settings)``: a result cache on the test clock."""

    def make(store: CacheStore, **settings: Any) -> ResultCache:
        return ResultCache(
            store,
            CacheSettings(**settings),
            metrics=CacheMetrics(CollectorRegistry()),
            clock=clock,
        )

    return make
