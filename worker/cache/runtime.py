"""The cache inside the Faust app: its tables, invalidations, sweeps, reference changes, warming.

One lock serialises everything that writes the cache: a batch of requests
(lookup, process, write-back), an invalidation, a sweep, warming. Writes
therefore never interleave, so an invalidation cannot land between a batch's
lookup and its write-back and be undone by it.

The worker is not ready after start-up or a new assignment until warming
ran: Faust calls :meth:`CacheRuntime.on_recovered` once the tables are
restored and before it resumes the requests partitions, and
:attr:`CacheRuntime.warmed` is set (and "cache warmed" logged) when it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from worker.cache.invalidation import Invalidation
from worker.cache.metrics import CacheMetrics
from worker.cache.service import ResultCache
from worker.cache.tables import TableCacheStore
from worker.cache.warming import HotKeySource, Warmer
from worker.errors import ConfigurationError, ValidationFailedError
from worker.intake import raw_topic
from worker.operations.registry import OperationRegistry
from worker.reference.tables import ReferenceTables
from worker.settings import CacheSettings, Settings
from worker.state.rocksdb import MemoryBudget
from worker.state.tables import DeclaredTable
from worker.topology import Role, Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CacheTopics:
    """The full names of the cache's topics, and the partition count they share."""

    entries: str
    index: str
    invalidations: str
    partitions: int

    @classmethod
    def resolve(cls, settings: Settings, topology: Topology) -> CacheTopics:
        """Names with the prefix applied; fails unless all are partitioned like ``requests``."""
        requests = topology.by_role("requests")
        roles: tuple[Role, ...] = ("cache_entries", "cache_index", "cache_invalidations")
        specs = [topology.by_role(role) for role in roles]
        wrong = [f"{s.name} ({s.partitions})" for s in specs if s.partitions != requests.partitions]
        if wrong:
            raise ConfigurationError(
                f"cache topics must have as many partitions as {requests.name} "
                f"({requests.partitions}): {', '.join(wrong)}. Operator action: fix topics/."
            )
        entries, index, invalidations = (settings.kafka.topic(spec.name) for spec in specs)
        return cls(entries, index, invalidations, requests.partitions)


class CacheRuntime:
    """The result cache on two Faust tables of this app, and the tasks that keep it."""

    def __init__(
        self,
        app: Any,
        settings: CacheSettings,
        topics: CacheTopics,
        budget: MemoryBudget,
        *,
        metrics: CacheMetrics | None = None,
    ) -> None:
        self._app = app
        self.settings = settings
        self.topics = topics
        self.entries: DeclaredTable = app.tables.add(
            DeclaredTable(
                app,
                name="cache-entries",
                topic=topics.entries,
                partitions=topics.partitions,
                budget=budget,
            )
        )
        self.index: DeclaredTable = app.tables.add(
            DeclaredTable(
                app,
                name="cache-index",
                topic=topics.index,
                partitions=topics.partitions,
                budget=budget,
            )
        )
        store = TableCacheStore(
            self.entries, self.index, partitions=topics.partitions, owned=self.owned
        )
        self.cache = ResultCache(store, settings, metrics=metrics)
        #: Held by whatever writes the cache (see the module docstring).
        self.lock = asyncio.Lock()
        #: Set once warming for the current assignment finished; cleared on a rebalance.
        self.warmed = asyncio.Event()
        self.last_warming: str = ""
        self._warmer: Warmer | None = None
        self._changes: asyncio.Queue[list[str]] | None = None

    def owned(self) -> frozenset[int]:
        """The cache partitions assigned to this worker as an active (not a standby)."""
        topic = self.topics.entries
        return frozenset(
            tp.partition for tp in self._app.assignor.assigned_actives() if tp.topic == topic
        )

    def register(
        self,
        registry: OperationRegistry,
        hot_keys: HotKeySource,
        reference: ReferenceTables | None = None,
    ) -> None:
        """Follow invalidations and reference data, sweep, and warm on every assignment."""
        app = self._app
        self._warmer = Warmer(self.cache, registry, hot_keys, self.settings)
        self.entries.on_recover(self.on_recovered)
        invalidations = raw_topic(app, self.topics.invalidations)

        async def cache_invalidations(stream: Any) -> None:
            async for event in stream.events():
                await self.apply_message(event.message.partition, event.message.value)

        app.agent(invalidations, name="cache-invalidations")(cache_invalidations)

        async def cache_sweep() -> None:
            await self.sweep()

        app.timer(self.settings.sweep_interval_s, name="cache-sweep")(cache_sweep)
        if reference is not None:
            reference.on_change(self._reference_changed)
            app.task(self._follow_reference_changes)

        @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator]
        async def _not_warm(sender: Any, revoked: Any, **kwargs: Any) -> None:
            self.warmed.clear()

    # ------------------------------------------------------------------ warming

    async def on_recovered(self) -> None:
        """Faust restored the tables of a new assignment: warm before the streams resume."""
        owned = self.owned()
        self.cache.forget_cursors(keep=owned)
        if self._warmer is None:
            report_text = "skipped (no warmer)"
        else:
            async with self.lock:
                report = await self._warmer.warm()
            report_text = report.describe()
        self.last_warming = report_text
        size = self.cache.refresh_size()
        log.info(
            "cache warmed for partitions %s (%d entries): %s", sorted(owned), size, report_text
        )
        self.warmed.set()

    # ------------------------------------------------------------------ invalidations

    async def apply_message(self, partition: int, raw: bytes | None) -> None:
        """Apply one message of the invalidations topic read from ``partition``."""
        try:
            invalidation = Invalidation.decode(raw)
        except ValidationFailedError as exc:
            log.warning("ignoring an invalid invalidation in partition %d: %s", partition, exc)
            return
        await _retrying("invalidation", lambda: self._apply(invalidation, [partition]))
        if invalidation.scope == "all":
            await _retrying("invalidation fan-out", lambda: self._fan_out(invalidation, partition))

    async def _apply(self, invalidation: Invalidation, partitions: list[int] | None) -> None:
        async with self.lock:
            await self.cache.invalidate(invalidation, partitions)

    async def _fan_out(self, invalidation: Invalidation, partition: int) -> None:
        copy = invalidation.copy_for_partitions().encode()
        producer = self._app.producer
        reports = [
            await producer.send(self.topics.invalidations, None, copy, other, None, None)
            for other in range(self.topics.partitions)
            if other != partition
        ]
        await asyncio.gather(*reports)

    # ------------------------------------------------------------------ reference data

    def _reference_changed(self, tags: list[str]) -> None:
        self._queue().put_nowait(tags)

    def _queue(self) -> asyncio.Queue[list[str]]:
        if self._changes is None:
            self._changes = asyncio.Queue()
        return self._changes

    async def _follow_reference_changes(self) -> None:
        queue = self._queue()
        while True:
            tags = await queue.get()
            while not queue.empty():
                tags.extend(queue.get_nowait())
            for tag in dict.fromkeys(tags):
                # Every worker follows every reference change and cleans its own partitions.
                await _retrying("reference invalidation", self._invalidate_tag(tag))

    def _invalidate_tag(self, tag: str) -> Callable[[], Awaitable[None]]:
        invalidation = Invalidation(
            kind="tag", value=tag, scope="partition", reason="reference data changed"
        )
        return lambda: self._apply(invalidation, None)

    # ------------------------------------------------------------------ sweeping

    async def sweep(self) -> int:
        """One bounded sweep of expired entries, once the current assignment is warm."""
        if not self.warmed.is_set():
            return 0
        try:
            async with self.lock:
                return await self.cache.sweep()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("cache sweep failed, will retry: %r", exc)
            return 0


async def _retrying(what: str, attempt: Callable[[], Awaitable[None]], max_s: float = 5.0) -> None:
    delay = 0.1
    while True:
        try:
            await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until it lands; nothing is acknowledged meanwhile
            log.warning("%s failed, retrying in %.1fs: %r", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)
        else:
            return
