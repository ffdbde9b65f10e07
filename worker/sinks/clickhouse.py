"""The ClickHouse row sink: one columnar insert per partition slice, deduplicated, retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from worker.clickhouse.migrate import migrate
from worker.errors import DatabaseError
from worker.flow.output import REQUEST_COLUMNS, PartitionRows
from worker.sinks.base import dedup_token

log = logging.getLogger(__name__)
T = TypeVar("T")

_TABLE = "requests"


class ClickHouseSink:
    """Writes ``requests`` rows to ClickHouse (a server or embedded chDB).

    Every call to the client runs on one dedicated thread: clickhouse-connect's
    client is synchronous, and chDB wants a single owner. Each partition slice
    is one INSERT carrying ``insert_deduplication_token`` (so a retried slice is
    stored once), and rows at or below the stored high-water offset of their
    partition are skipped (so a redelivered batch with other boundaries is too).
    Failures are retried with capped exponential backoff until they succeed or
    the worker stops: an unacknowledged batch is redelivered, never lost.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        database: str,
        *,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self._database = database
        self._table = f"{database}.{_TABLE}"
        self._backoff_max_s = backoff_max_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Any = None
        self._high_water: dict[str, dict[int, int]] = {}
        self.inserts = 0
        self.retries = 0

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        if self._client is None:
            self._client = self._connect()
            migrate(self._client, self._database)

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        for part in slices:
            await self._retrying(self._write_slice, part)

    def _write_slice(self, part: PartitionRows) -> None:
        self._open()
        marks = self._high_water.get(part.topic)
        if marks is None:
            marks = self._load_high_water(part.topic)
        fresh = part.above(marks.get(part.partition, -1))
        if fresh is None:
            log.info(
                "skipping %d rows of %s[%d] already stored",
                len(part.rows),
                part.topic,
                part.partition,
            )
            return
        columns = [list(column) for column in zip(*fresh.rows, strict=True)]
        self._client.insert(
            self._table,
            columns,
            column_names=REQUEST_COLUMNS,
            column_oriented=True,
            settings={
                "insert_deduplicate": 1,
                "async_insert": 0,
                "insert_deduplication_token": dedup_token(_TABLE, fresh),
            },
        )
        self.inserts += 1
        marks[part.partition] = max(marks.get(part.partition, -1), fresh.last_offset)

    def _load_high_water(self, topic: str) -> dict[int, int]:
        # The table name is built from a validated identifier (ClickHouseSettings.database).
        result = self._client.query(
            f"SELECT source_partition, max(source_offset) FROM {self._table} "  # noqa: S608
            "WHERE source_topic = {topic:String} GROUP BY source_partition",
            parameters={"topic": topic},
        )
        marks = {int(partition): int(offset) for partition, offset in result.result_rows}
        self._high_water[topic] = marks
        return marks

    async def _retrying(self, fn: Callable[[PartitionRows], None], part: PartitionRows) -> None:
        delay = 0.1
        while True:
            try:
                await self._call(fn, part)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure here is retried, none is lost
                self.retries += 1
                # A failed insert may or may not have landed: read positions again.
                self._high_water.pop(part.topic, None)
                log.warning(
                    "ClickHouse insert of %s[%d] %d-%d failed, retrying in %.1fs: %s",
                    part.topic,
                    part.partition,
                    part.first_offset,
                    part.last_offset,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
            else:
                return

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a read-only query, on the sink's connection and thread (chDB has one owner)."""

        def run() -> list[tuple[Any, ...]]:
            self._open()
            result = self._client.query(sql, parameters=parameters, settings={"readonly": 1})
            return [tuple(row) for row in result.result_rows]

        try:
            return await self._call(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DatabaseError(f"ClickHouse query failed: {exc}") from exc

    def forget_positions(self) -> None:
        # Rebinding (not clearing) is atomic with respect to the insert thread.
        self._high_water = {}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
        self._executor.shutdown(wait=True)
