"""Resident memory of the result cache from empty to a million entries.

The worker's cache is two RocksDB-backed Faust tables (answers and their tag
index), one database per partition, sharing one block cache and one memtable
budget (``CACHE_*`` settings, :class:`~worker.state.rocksdb.MemoryBudget`).
This process builds that cache exactly as the worker does (the same tables,
stores, budget and :class:`~worker.cache.service.ResultCache`), then fills it
the way the worker's batches do: look up 1,000 requests, compute the misses
with the real operations, store the answers. RSS is read from ``/proc`` after
opening (empty cache) and every ``--step`` entries.

The changelog records of the writes are not produced: what the producer holds
is bounded by its batches whatever the cache holds, and this measures what
grows with the number of entries. Run on its own::

    python -m bench.cache_memory --entries 1000000

Prints one JSON object (``rss_growth_mb`` is the figure the target bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from pydantic import BaseModel

from bench.procstat import memory_mb
from worker import collector
from worker.cache.service import Answer, CacheRequest, Lookup, ResultCache
from worker.cache.tables import Change, TableCacheStore
from worker.errors import NotFoundError
from worker.operations.registry import default_registry
from worker.settings import CacheSettings, WorkerSettings
from worker.state.rocksdb import MemoryBudget
from worker.state.tables import DeclaredTable

PARTITIONS = 4
TENANTS = ("acme", "globex", "initech")


class _Delivered:
    def __await__(self) -> Any:
        return iter(())


class DiscardedChangelog:
    """Takes the changelog records and drops them (see the module docstring)."""

    async def send(self, partition: int, changes: Sequence[Change]) -> Awaitable[Any]:
        return _Delivered()


def _rss_mb() -> float:
    return memory_mb(os.getpid()).get("VmRSS", float("nan"))


def build_cache(datadir: Path, settings: CacheSettings) -> ResultCache:
    """The worker's result cache on RocksDB, as ``worker.cache.runtime`` builds it."""
    app = faust.App("cache-memory", datadir=str(datadir), autodiscover=False)
    budget = MemoryBudget(settings)
    tables = [
        app.tables.add(
            DeclaredTable(
                app, name=name, topic=f"bench.{name}", partitions=PARTITIONS, budget=budget
            )
        )
        for name in ("cache-entries", "cache-index")
    ]
    owned = frozenset(range(PARTITIONS))
    store = TableCacheStore(
        cast("DeclaredTable", tables[0]),
        cast("DeclaredTable", tables[1]),
        partitions=PARTITIONS,
        owned=lambda: owned,
        changelog=DiscardedChangelog(),
    )
    return ResultCache(store, settings)


async def fill(entries: int, step: int, batch: int, seed: int) -> dict[str, Any]:
    registry = default_registry()
    quote, text = registry.get("price.quote"), registry.get("text.stats")
    assert quote is not None
    assert text is not None
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    settings = CacheSettings()
    with tempfile.TemporaryDirectory(prefix="cache-memory-") as root:
        cache = build_cache(Path(root), settings)
        # The worker's collector settings, applied where the worker applies them: after start-up.
        collector.tune(WorkerSettings().gc_young_threshold)
        start = _rss_mb()
        samples = [{"entries": 0, "rss_mb": start, "seconds": 0.0}]
        began = time.monotonic()
        stored = 0
        serial = 0
        while stored < entries:
            requests = []
            for _ in range(min(batch, entries - stored)):
                serial += 1
                tenant = rng.choice(TENANTS)
                if serial % 4:
                    params = quote.params_model.model_validate(
                        {"sku": f"SKU-{rng.randint(1, 4)}", "quantity": serial, "currency": "EUR"}
                    )
                    requests.append(CacheRequest(tenant, quote, params))
                else:
                    words = " ".join(rng.choice(("tea", "cup", "milk")) for _ in range(12))
                    params = text.params_model.model_validate({"text": f"{words} {serial}"})
                    requests.append(CacheRequest(tenant, text, params))
            lookups = cache.lookup(requests, count=False)
            answers: list[tuple[Lookup, Answer]] = []
            for operation in (quote, text):
                mine = [
                    (r, lk)
                    for r, lk in zip(requests, lookups, strict=True)
                    if r.operation is operation
                ]
                results = await operation.handle([(r.tenant, r.params) for r, _ in mine])
                for (_, lookup), result in zip(mine, results, strict=True):
                    if isinstance(result, BaseModel):
                        answers.append((lookup, result.model_dump(mode="json")))
                    elif isinstance(result, NotFoundError):
                        answers.append((lookup, result))
            stored += await cache.store_answers(answers)
            if stored // step != (stored - len(requests)) // step or stored >= entries:
                samples.append(
                    {
                        "entries": stored,
                        "rss_mb": _rss_mb(),
                        "seconds": round(time.monotonic() - began, 1),
                    }
                )
        counted = sum(cache.store.count(p) for p in range(PARTITIONS))
        end = _rss_mb()
        peak = memory_mb(os.getpid()).get("VmHWM", float("nan"))
    return {
        "entries": stored,
        "entries_counted_by_rocksdb": counted,
        "rss_empty_mb": round(start, 1),
        "rss_full_mb": round(end, 1),
        "rss_growth_mb": round(end - start, 1),
        "peak_rss_mb": round(peak, 1),
        "block_cache_mb": settings.block_cache_mb,
        "memtable_budget_mb": settings.memtable_budget_mb,
        "samples": samples,
        "seconds": round(time.monotonic() - began, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    report = asyncio.run(fill(args.entries, args.step, args.batch, args.seed))
    sys.stdout.write(orjson.dumps(report).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
