"""The cache store on Faust tables: RocksDB per partition, every change in a changelog topic.

Faust binds each table write to the partition of the event being processed
(``current_event()``), so that a table partition lives where its stream
partition is. The worker reads requests in whole batches from several
partitions, with no current event, and an answer belongs to the partition
that owns its cache key (see ``docs/cache.md``). So this store addresses
partitions explicitly: it writes a partition's RocksDB database through
Faust's store and sends the changelog record to the same partition itself,
recording the changelog offset in that database on delivery exactly as
Faust's own writes do. Restore,
standby replicas and rebalancing stay Faust's: a changelog record of partition
p is applied to partition p's database, which is where this store wrote it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import rocksdict
from faust.types import TP

from worker.cache.base import Space
from worker.errors import CacheError
from worker.state.tables import DeclaredTable


class Changelog(Protocol):
    """Where a table's changes go."""

    async def send(
        self, table: DeclaredTable, partition: int, key: bytes, value: bytes | None
    ) -> Awaitable[Any]:
        """Hand one record to the producer; the result resolves when the broker has it."""


class TableChangelog:
    """The real changelog: the Faust app's producer, one record per change.

    Records go straight to the producer (which batches them), not through
    Faust's ``send_soon`` buffer: Faust flushes that buffer completely before
    every offset commit, and with a changelog record or more for every cached
    answer, a busy worker kept refilling it and commits waited for many
    seconds. Each confirmed record moves the partition's persisted changelog
    offset, as Faust's own table writes do.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    async def send(
        self, table: DeclaredTable, partition: int, key: bytes, value: bytes | None
    ) -> Awaitable[Any]:
        topic = table.changelog_topic_name
        report = await self._producer.send(topic, key, value, partition, None, None)
        store = table.store

        def persisted(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                store.persist_offset(TP(topic, partition), done.result().offset)

        report.add_done_callback(persisted)
        return cast(Awaitable[Any], report)


class TableCacheStore:
    """A :class:`~worker.cache.base.CacheStore` on two Faust tables (entries and tag index)."""

    def __init__(
        self,
        entries: DeclaredTable,
        index: DeclaredTable,
        *,
        partitions: int,
        owned: Callable[[], frozenset[int]],
        changelog: Changelog | None = None,
        confirm_timeout_s: float = 30.0,
    ) -> None:
        self._tables: dict[Space, DeclaredTable] = {"entries": entries, "index": index}
        self._partitions = partitions
        self._owned = owned
        self._changelog = changelog or TableChangelog(entries.app.producer)
        self._confirm_timeout_s = confirm_timeout_s

    @property
    def partitions(self) -> int:
        return self._partitions

    def owned(self) -> frozenset[int]:
        return self._owned()

    def get_many(self, partition: int, space: Space, keys: Sequence[str]) -> list[bytes | None]:
        return self._tables[space].store.get_many(partition, [key.encode() for key in keys])

    async def put_many(self, partition: int, writes: Sequence[tuple[Space, str, bytes]]) -> None:
        batches: dict[Space, Any] = {}
        for space, key, value in writes:
            batch = batches.get(space)
            if batch is None:
                batch = batches[space] = rocksdict.WriteBatch(raw_mode=True)
            batch.put(key.encode(), value)
        for space, batch in batches.items():
            self._tables[space].store.db(partition).write(batch)
        send = self._changelog.send
        for space, key, value in writes:
            await send(self._tables[space], partition, key.encode(), value)

    async def delete_many(self, partition: int, deletes: Sequence[tuple[Space, str]]) -> None:
        if not deletes:
            return
        send = self._changelog.send
        try:
            reports = [
                await send(self._tables[space], partition, key.encode(), None)
                for space, key in deletes
            ]
            async with asyncio.timeout(self._confirm_timeout_s):
                await asyncio.gather(*reports)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise CacheError(
                f"the changelog did not confirm {len(deletes)} removals in partition {partition}: "
                f"{exc!r}",
                details={"partition": partition},
            ) from exc
        batches: dict[Space, Any] = {}
        for space, key in deletes:
            batch = batches.get(space)
            if batch is None:
                batch = batches[space] = rocksdict.WriteBatch(raw_mode=True)
            batch.delete(key.encode())
        for space, batch in batches.items():
            self._tables[space].store.db(partition).write(batch)

    def scan(
        self, partition: int, space: Space, *, start: str = "", prefix: str = "", limit: int
    ) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        if limit <= 0:
            return found
        raw_prefix = prefix.encode()
        first = max(start, prefix).encode()
        for key, value in self._tables[space].store.iterate(partition, first):
            if not key.startswith(raw_prefix):
                break
            found.append((key.decode(), value))
            if len(found) >= limit:
                break
        return found

    def count(self, partition: int) -> int:
        return self._tables["entries"].store.approximate_count(partition)
