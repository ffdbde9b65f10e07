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
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import rocksdict
from faust.types import TP

from worker.cache.base import Space
from worker.errors import CacheError
from worker.publish.batches import BatchProducer, Record, Sent, of_faust
from worker.state.tables import DeclaredTable

log = logging.getLogger(__name__)

#: One change of a table: the table, the key, and the value (None removes the key).
Change = tuple[DeclaredTable, bytes, bytes | None]


class Changelog(Protocol):
    """Where a table's changes go."""

    async def send(self, partition: int, changes: Sequence[Change]) -> Awaitable[Any]:
        """Hand ``changes`` of ``partition`` to the producer, in order.

        The result resolves when the broker has every one of them.
        """


class TableChangelog:
    """The real changelog: the Faust app's producer, one record batch per table and partition.

    Records go straight to the producer as record batches
    (:class:`~worker.publish.batches.BatchProducer`), not through Faust's
    ``send_soon`` buffer: Faust flushes that buffer completely before every
    offset commit, and with a changelog record or more for every cached answer,
    a busy worker kept refilling it and commits waited for many seconds. Each
    confirmed batch moves the partition's persisted changelog offset to its
    last record, as Faust's own table writes do record by record.
    """

    def __init__(self, producer: BatchProducer) -> None:
        self._producer = producer

    async def send(self, partition: int, changes: Sequence[Change]) -> Awaitable[Any]:
        # Faust derives a changelog topic's name anew on every access: once per table.
        topics: dict[int, str] = {}
        stores: dict[str, Any] = {}
        records = []
        for table, key, value in changes:
            topic = topics.get(id(table))
            if topic is None:
                topic = topics[id(table)] = table.changelog_topic_name
                stores[topic] = table.store
            records.append(Record(topic, key, value, partition=partition))
        sent = await self._producer.send(records)
        for batch in sent:
            batch.delivery.add_done_callback(_persist_offset(batch, stores[batch.topic]))
        return asyncio.gather(*(batch.delivery for batch in sent))


def _report_unconfirmed(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning("cache changelog records were not confirmed by the broker: %r", error)


def _persist_offset(batch: Sent, store: Any) -> Callable[[asyncio.Future[Any]], None]:
    def persisted(done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and done.exception() is None:
            last = int(done.result().offset) + batch.count - 1
            store.persist_offset(TP(batch.topic, batch.partition), last)

    return persisted


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
        self._changelog = changelog or TableChangelog(of_faust(entries.app))
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
        confirmed = await self._changelog.send(
            partition, [(self._tables[space], key.encode(), value) for space, key, value in writes]
        )
        # Not waited for: a cached answer is worth keeping locally even before the
        # broker has its changelog record. A failure is reported, not raised.
        if isinstance(confirmed, asyncio.Future):
            confirmed.add_done_callback(_report_unconfirmed)

    async def delete_many(self, partition: int, deletes: Sequence[tuple[Space, str]]) -> None:
        if not deletes:
            return
        try:
            confirmed = await self._changelog.send(
                partition, [(self._tables[space], key.encode(), None) for space, key in deletes]
            )
            async with asyncio.timeout(self._confirm_timeout_s):
                await confirmed
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
