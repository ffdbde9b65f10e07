"""Warming: before a worker serves a new assignment, answer its hottest keys ahead of time.

The hot keys are the most requested cache keys of the last ``warm_window_s``
seconds, read from the ``requests`` rows in ClickHouse (their cache key,
tenant, operation and canonical params). Of those, the keys whose partition
this worker now owns are looked up: present and fresh ones are read once
(which brings their blocks into RocksDB's block cache), missing, expired or
outdated ones are computed by their operation and stored, in batches.

Warming is bounded: at most ``warm_max_keys`` keys and ``warm_timeout_s``
seconds; past the deadline it stops where it is and the worker starts
serving. A ClickHouse failure skips warming; it never holds a worker back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic

from worker.cache.service import Answer, CacheRequest, Lookup, ResultCache
from worker.errors import ClientError, NotFoundError
from worker.operations.registry import OperationRegistry
from worker.settings import CacheSettings

log = logging.getLogger(__name__)

#: Keys computed per call of an operation while warming.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class HotKey:
    """A cache key and what is needed to compute its answer again."""

    key: str
    tenant: str
    operation: str
    params: str
    requests: int


class HotKeySource(Protocol):
    """Where the most requested keys come from."""

    async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
        """The ``limit`` most requested keys of the last ``window_s`` seconds, hottest first."""


Query = Callable[[str, dict[str, Any]], Awaitable[Sequence[Sequence[Any]]]]


class ClickHouseHotKeys:
    """Hot keys from the ``requests`` table (one aggregate query)."""

    def __init__(self, query: Query, database: str) -> None:
        self._query = query
        self._table = f"{database}.requests"  # a validated identifier (ClickHouseSettings)

    async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
        # The table name is built from a validated identifier (ClickHouseSettings.database).
        rows = await self._query(
            "SELECT cache_key, any(tenant), any(operation), any(cache_params), count() AS n "  # noqa: S608
            f"FROM {self._table} "
            "WHERE cache_key != '' AND cache_params != '' "
            "AND received_at >= subtractSeconds(now64(3), {window:UInt32}) "
            "GROUP BY cache_key ORDER BY n DESC, cache_key LIMIT {limit:UInt32}",
            {"window": window_s, "limit": limit},
        )
        return [HotKey(str(k), str(t), str(o), str(p), int(n)) for k, t, o, p, n in rows]


class MemoryHotKeys:
    """Hot keys given by the caller (tests, the broker-free harness)."""

    def __init__(self, keys: Sequence[HotKey] = ()) -> None:
        self.keys = list(keys)

    async def hot_keys(self, window_s: int, limit: int) -> list[HotKey]:
        return sorted(self.keys, key=lambda k: -k.requests)[:limit]


@dataclass(slots=True)
class WarmReport:
    """What one warming did."""

    candidates: int = 0
    present: int = 0
    computed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    timed_out: bool = False
    error: str | None = None

    def describe(self) -> str:
        outcome = (
            "timed out" if self.timed_out else (f"failed: {self.error}" if self.error else "done")
        )
        return (
            f"{outcome} in {self.elapsed_s:.2f}s: {self.candidates} hot keys owned here, "
            f"{self.present} already cached, {self.computed} computed, {self.skipped} skipped"
        )


class Warmer:
    """Warms the owned partitions' hottest keys, within the configured bounds."""

    def __init__(
        self,
        cache: ResultCache,
        registry: OperationRegistry,
        source: HotKeySource,
        settings: CacheSettings,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._source = source
        self._settings = settings

    async def warm(self) -> WarmReport:
        """Warm now; returns what was done. Never raises for a failing source."""
        report = WarmReport()
        started = time.monotonic()
        settings = self._settings
        if not settings.enabled or settings.warm_max_keys == 0 or settings.warm_timeout_s == 0:
            return report
        try:
            async with asyncio.timeout(settings.warm_timeout_s):
                await self._warm(report)
        except TimeoutError:
            report.timed_out = True
        except (ClientError, pydantic.ValidationError):
            raise
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation; serving goes on
            report.error = repr(exc)
        report.elapsed_s = time.monotonic() - started
        return report

    async def _warm(self, report: WarmReport) -> None:
        hot = await self._source.hot_keys(
            self._settings.warm_window_s, self._settings.warm_max_keys
        )
        requests = []
        for key in hot:
            request = self._request(key)
            if request is None:
                report.skipped += 1
            else:
                requests.append(request)
        owned = frozenset(self._cache.store.owned())
        for start in range(0, len(requests), _CHUNK):
            lookups = self._cache.lookup(requests[start : start + _CHUNK], count=False)
            mine = [lookup for lookup in lookups if lookup.partition in owned]
            report.candidates += len(mine)
            report.present += sum(lookup.served for lookup in mine)
            report.computed += await self._compute([lk for lk in mine if not lk.served])
            await asyncio.sleep(0)  # lets the deadline interrupt between chunks

    def _request(self, hot: HotKey) -> CacheRequest | None:
        operation = self._registry.get(hot.operation)
        if operation is None or not self._cache.cacheable(operation):
            return None
        try:
            params = operation.params_model.model_validate_json(hot.params)
        except pydantic.ValidationError:
            return None  # the operation's params changed since the row was written
        return CacheRequest(hot.tenant, operation, params)

    async def _compute(self, lookups: Sequence[Lookup]) -> int:
        by_operation: dict[str, list[Lookup]] = defaultdict(list)
        for lookup in lookups:
            by_operation[lookup.operation.name].append(lookup)
        answers: list[tuple[Lookup, Answer]] = []
        for group in by_operation.values():
            operation = group[0].operation
            pairs = [
                (lk.key.tenant, operation.params_model.model_validate_json(lk.key.canonical_params))
                for lk in group
            ]
            outcomes = await operation.handle(pairs)
            for lookup, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, NotFoundError):
                    answers.append((lookup, outcome))
                elif not isinstance(outcome, ClientError):
                    answers.append((lookup, outcome.model_dump(mode="json")))
        return await self._cache.store_answers(answers)
