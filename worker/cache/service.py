"""The result cache: lookups and write-backs for a batch, invalidation, and the expiry sweep.

Everything here works on a :class:`~worker.cache.base.CacheStore`, so the same
code runs on Faust tables (RocksDB) in the worker and on dictionaries in the
unit tests. Reads are local and synchronous; only removals await the
changelog.

An entry is served only if it is unexpired *and* every dependency it was
computed from still has the revision it had then. Expired or outdated entries
are ``stale``: never served, overwritten by the fresh answer, and removed with
changelog tombstones by the sweep (expired) or by an invalidation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from worker.cache.base import CacheStore, Space
from worker.cache.entries import (
    CacheEntry,
    encode_expiry,
    expiry_of,
    index_key,
    index_prefix,
    split_index_key,
)
from worker.cache.invalidation import Invalidation
from worker.cache.keys import (
    CacheKey,
    derive,
    operation_of,
    partition_for,
    partitions_for,
    tenant_prefix,
)
from worker.cache.metrics import CacheMetrics
from worker.errors import NotFoundError
from worker.operations.base import Operation
from worker.settings import CacheSettings

log = logging.getLogger(__name__)

LookupStatus = Literal["hit", "negative", "miss", "stale", "bypass"]
#: What an operation answered, as the cache stores it: a result or a not_found error.
Answer = dict[str, Any] | NotFoundError

#: Keys removed per round of an invalidation (each round awaits its tombstones).
_CHUNK = 5000


class CacheRequest(NamedTuple):
    """One request as the cache sees it (a named tuple: one is made per request)."""

    tenant: str
    operation: Operation[Any, Any]
    params: BaseModel


@dataclass(slots=True)
class Lookup:
    """What the cache holds for one request, and what to store for it afterwards."""

    status: LookupStatus
    key: CacheKey
    partition: int
    operation: Operation[Any, Any]
    entry: CacheEntry | None = None
    #: Revisions of the request's dependencies, read before the answer is computed.
    dependencies: dict[str, str] = field(default_factory=dict)

    @property
    def served(self) -> bool:
        """Whether the request is answered from the cache."""
        return self.status in ("hit", "negative")

    def not_found(self) -> NotFoundError:
        """The cached not_found answer of a ``negative`` lookup."""
        assert self.entry is not None  # noqa: S101 - only called on negative lookups
        return NotFoundError(
            str(self.entry.body.get("message", "not found")),
            details=dict(self.entry.body.get("details") or {}),
        )


class ResultCache:
    """Batch lookups, write-backs, invalidations and sweeps over a :class:`CacheStore`."""

    def __init__(
        self,
        store: CacheStore,
        settings: CacheSettings,
        *,
        metrics: CacheMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics if metrics is not None else CacheMetrics.shared()
        self._clock = clock
        self._cursors: dict[tuple[int, Space], str] = {}

    def ttl(self, operation: Operation[Any, Any]) -> float:
        """Seconds an answer of ``operation`` stays cached (0: not cached)."""
        return float(self.settings.ttl_s.get(operation.name, operation.cache_ttl_s))

    def not_found_ttl(self, operation: Operation[Any, Any]) -> float:
        """Seconds a not_found answer of ``operation`` stays cached (0: not cached)."""
        return float(
            self.settings.not_found_ttl_s.get(operation.name, operation.cache_not_found_ttl_s)
        )

    def cacheable(self, operation: Operation[Any, Any]) -> bool:
        return self.settings.enabled and (
            self.ttl(operation) > 0 or self.not_found_ttl(operation) > 0
        )

    # ------------------------------------------------------------------ lookups and write-backs

    def lookup(self, requests: Sequence[CacheRequest], *, count: bool = True) -> list[Lookup]:
        """What the cache holds for each request; one multi-get per partition.

        ``count=False`` keeps the lookups out of the request metrics (warming).
        """
        partitions = self.store.partitions
        owned = self.store.owned()
        keys = [
            derive(
                request.tenant, request.operation.name, request.operation.version, request.params
            )
            for request in requests
        ]
        lookups = [
            Lookup("miss" if partition in owned else "bypass", key, partition, request.operation)
            for request, key, partition in zip(
                requests, keys, partitions_for([key.raw for key in keys], partitions), strict=True
            )
        ]
        self._read_dependencies(requests, lookups)
        by_partition: dict[int, list[Lookup]] = defaultdict(list)
        for lookup in lookups:
            if lookup.status == "miss":
                by_partition[lookup.partition].append(lookup)
        now = self._clock()
        for partition, group in by_partition.items():
            found = self.store.get_many(partition, "entries", [item.key.text for item in group])
            for lookup, raw in zip(group, found, strict=True):
                if raw is not None:
                    self._judge(lookup, CacheEntry.decode(raw), now)
        if count:
            # One increment per outcome, not per request: labels() is a lookup and a lock.
            for status, n in Counter(lookup.status for lookup in lookups).items():
                self.metrics.requests.labels(result=status).inc(n)
        return lookups

    @staticmethod
    def _read_dependencies(requests: Sequence[CacheRequest], lookups: Sequence[Lookup]) -> None:
        by_operation: dict[str, list[int]] = defaultdict(list)
        for i, lookup in enumerate(lookups):
            if lookup.status != "bypass":
                by_operation[lookup.operation.name].append(i)
        for indices in by_operation.values():
            operation = lookups[indices[0]].operation
            pairs = [(requests[i].tenant, requests[i].params) for i in indices]
            for i, depends in zip(indices, operation.cache_dependencies(pairs), strict=True):
                lookups[i].dependencies = dict(depends)

    @staticmethod
    def _judge(lookup: Lookup, entry: CacheEntry, now: float) -> None:
        lookup.entry = entry
        if entry.expired(now) or entry.dependencies != lookup.dependencies:
            lookup.status = "stale"
        else:
            lookup.status = "negative" if entry.kind == "not_found" else "hit"

    async def store_answers(self, answers: Sequence[tuple[Lookup, Answer]]) -> int:
        """Write back the answers computed for missed lookups; returns how many were stored."""
        owned = self.store.owned()
        now = self._clock()
        writes: dict[int, list[tuple[Space, str, bytes]]] = defaultdict(list)
        stored = 0
        for lookup, answer in answers:
            if lookup.status not in ("miss", "stale") or lookup.partition not in owned:
                continue
            entry = self._entry(lookup, answer, now)
            if entry is None:
                continue
            key = lookup.key.text
            partition_writes = writes[lookup.partition]
            partition_writes.append(("entries", key, entry.encode()))
            expiry = encode_expiry(entry.expires_at)
            partition_writes.extend(("index", index_key(tag, key), expiry) for tag in entry.tags)
            stored += 1
        for partition, partition_writes in writes.items():
            await self.store.put_many(partition, partition_writes)
        return stored

    def _entry(self, lookup: Lookup, answer: Answer, now: float) -> CacheEntry | None:
        if isinstance(answer, NotFoundError):
            ttl = self.not_found_ttl(lookup.operation)
            body = {"message": answer.message, "details": answer.details}
            kind: Literal["ok", "not_found"] = "not_found"
        else:
            ttl = self.ttl(lookup.operation)
            body = answer
            kind = "ok"
        if ttl <= 0:
            return None
        return CacheEntry(kind, body, now + ttl, now, lookup.dependencies)

    # ------------------------------------------------------------------ removals

    async def invalidate(
        self, invalidation: Invalidation, partitions: Iterable[int] | None = None
    ) -> int:
        """Remove what ``invalidation`` names from the owned ``partitions`` (default: all owned).

        Returns the number of entries removed. Tombstones are confirmed by the
        changelog before the local data goes.
        """
        owned = self.store.owned()
        targets = owned if partitions is None else owned & frozenset(partitions)
        removed = 0
        for partition in sorted(targets):
            removed += await self._invalidate_partition(invalidation, partition)
            self.metrics.invalidations.labels(kind=invalidation.kind).inc()
        if removed:
            self.metrics.evictions.labels(reason="invalidated").inc(removed)
        log.info(
            "invalidated %s %r: %d entries in %d partitions",
            invalidation.kind,
            invalidation.value,
            removed,
            len(targets),
        )
        return removed

    async def _invalidate_partition(self, invalidation: Invalidation, partition: int) -> int:
        kind, value = invalidation.kind, invalidation.value
        if kind == "key":
            if partition_for(value, self.store.partitions) != partition:
                return 0
            return await self._remove(partition, [value], [])
        if kind == "operation":
            return await self._invalidate_operation(value, partition)
        removed = 0
        while True:
            if kind == "tenant":
                pairs = self.store.scan(
                    partition, "entries", prefix=tenant_prefix(value), limit=_CHUNK
                )
                keys, index_keys = [key for key, _ in pairs], []
            else:
                pairs = self.store.scan(
                    partition, "index", prefix=index_prefix(value), limit=_CHUNK
                )
                index_keys = [key for key, _ in pairs]
                keys = [split_index_key(key)[1] for key in index_keys]
            removed += await self._remove(partition, keys, index_keys)
            if len(pairs) < _CHUNK:
                return removed

    async def _invalidate_operation(self, operation: str, partition: int) -> int:
        # Keys lead with the tenant, so an operation's entries are found by a scan of the
        # partition rather than through the index: an index key per entry for a rare
        # administrative action would add a changelog record to every write-back.
        removed = 0
        start = ""
        while True:
            pairs = self.store.scan(partition, "entries", start=start, limit=_CHUNK)
            keys = [key for key, _ in pairs if operation_of(key) == operation]
            removed += await self._remove(partition, keys, [])
            if len(pairs) < _CHUNK:
                return removed
            start = pairs[-1][0] + "\0"
            await asyncio.sleep(0)

    async def _remove(self, partition: int, keys: Sequence[str], index_keys: Sequence[str]) -> int:
        """Remove entries ``keys`` with all their index keys, and ``index_keys`` themselves."""
        deletes: dict[tuple[Space, str], None] = dict.fromkeys(("index", k) for k in index_keys)
        present = 0
        for key, raw in zip(keys, self.store.get_many(partition, "entries", keys), strict=True):
            if raw is None:
                continue
            present += 1
            deletes[("entries", key)] = None
            tags = CacheEntry.decode(raw).tags
            deletes.update(dict.fromkeys(("index", index_key(tag, key)) for tag in tags))
        await self.store.delete_many(partition, list(deletes))
        return present

    async def sweep(self, limit: int | None = None) -> int:
        """Remove expired entries and index keys, examining at most about ``limit`` of each.

        Resumes where the previous sweep of each partition stopped, so that
        bounded sweeps cover everything in turn. Returns the entries removed.
        """
        owned = sorted(self.store.owned())
        if not owned:
            self.metrics.entries.set(0)
            return 0
        per_partition = max(1, (limit or self.settings.sweep_max_entries) // len(owned))
        now = self._clock()
        removed = 0
        for partition in owned:
            removed += await self._sweep_space(partition, "entries", per_partition, now)
            await self._sweep_space(partition, "index", per_partition, now)
        if removed:
            self.metrics.evictions.labels(reason="expired").inc(removed)
            log.info("sweep removed %d expired entries", removed)
        self.refresh_size()
        return removed

    async def _sweep_space(self, partition: int, space: Space, limit: int, now: float) -> int:
        cursor = (partition, space)
        pairs = self.store.scan(partition, space, start=self._cursors.get(cursor, ""), limit=limit)
        # The next key after the last one seen; back to the start once the end was reached.
        self._cursors[cursor] = pairs[-1][0] + "\0" if len(pairs) == limit else ""
        expired = [key for key, raw in pairs if expiry_of(raw) <= now]
        if not expired:
            return 0
        if space == "index":
            await self.store.delete_many(partition, [("index", key) for key in expired])
            return 0
        return await self._remove(partition, expired, [])

    def refresh_size(self) -> int:
        """Set the entries gauge from the owned partitions; returns the count."""
        count = sum(self.store.count(partition) for partition in self.store.owned())
        self.metrics.entries.set(count)
        return count

    def forget_cursors(self, keep: Iterable[int] = ()) -> None:
        """Drop sweep positions of partitions no longer owned."""
        kept = frozenset(keep)
        self._cursors = {c: k for c, k in self._cursors.items() if c[0] in kept}
