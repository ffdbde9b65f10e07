"""The cache store on Faust tables: RocksDB per partition, every change in a changelog topic.

Faust binds each table write to the partition of the event being processed
(``current_event()``), so that a table partition lives where its stream
partition is. The worker reads requests in whole batches from several
partitions, with no current event, and an answer belongs to the partition
that owns its cache key (see ``docs/cache.md``). So this store addresses
partitions explicitly: it writes a partition's RocksDB database through
Faust's store and sends the changelog record to the same partition with
``Table.send_changelog(partition, ...)``, whose delivery callback records the
changelog offset in that database exactly as Faust's own writes do. Restore,
standby replicas and rebalancing stay Faust's: a changelog record of partition
p is applied to partition p's database, which is where this store wrote it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import rocksdict

from worker.cache.base import Space
from worker.errors import CacheError
from worker.state.tables import DeclaredTable


class Changelog(Protocol):
    """Where a table's changes go: ``send`` returns the delivery report to await."""

    def send(self, table: DeclaredTable, partition: int, key: bytes, value: bytes | None) -> Any:
        """Schedule one changelog record; the result can be awaited for the broker's ack."""


class TableChangelog:
    """The real changelog: Faust's producer buffer, records confirmed asynchronously."""

    def send(
        self, table: DeclaredTable, partition: int, key: bytes, value: bytes | None
    ) -> Awaitable[Any]:
        return table.send_changelog(
            partition, key, value, key_serializer="raw", value_serializer="raw"
        )


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
        self._changelog = changelog or TableChangelog()
        self._confirm_timeout_s = confirm_timeout_s

    @property
    def partitions(self) -> int:
        return self._partitions

    def owned(self) -> frozenset[int]:
        return self._owned()

    def get_many(self, partition: int, space: Space, keys: Sequence[str]) -> list[bytes | None]:
        return self._tables[space].store.get_many(partition, [key.encode() for key in keys])

    def put_many(self, partition: int, writes: Sequence[tuple[Space, str, bytes]]) -> None:
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
            send(self._tables[space], partition, key.encode(), value)

    async def delete_many(self, partition: int, deletes: Sequence[tuple[Space, str]]) -> None:
        if not deletes:
            return
        send = self._changelog.send
        try:
            reports = [
                send(self._tables[space], partition, key.encode(), None) for space, key in deletes
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
