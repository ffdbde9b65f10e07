"""The ClickHouse row sink: one columnar insert per partition slice, deduplicated, retried."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from worker.clickhouse.client import connect as open_client
from worker.clickhouse.migrate import Retention, check, migrate
from worker.errors import DatabaseError, DatabaseOverloadedError
from worker.flow.output import DEAD_LETTER_COLUMNS, REQUEST_COLUMNS, PartitionRows
from worker.observability import metrics
from worker.settings import ClickHouseSettings
from worker.sinks.base import DEAD_LETTERS_TABLE, REQUESTS_TABLE, dedup_token
from worker.sinks.pacing import InsertPacer, classify

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Sent with every insert. ``async_insert=0``: the insert returns only once the
#: part is written, and deduplication tokens are honoured; the token names the
#: slice; dependent views are deduplicated along with the table.
INSERT_SETTINGS: dict[str, Any] = {
    "insert_deduplicate": 1,
    "async_insert": 0,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


class ClickHouseSink:
    """Writes ``requests`` and ``dead_letters`` rows to ClickHouse (a server or chDB).

    Every call to the client runs on one dedicated thread: clickhouse-connect's
    client is synchronous, and chDB wants a single owner. Each partition slice
    is cut into chunks of at most :attr:`InsertPacer.max_rows` rows; each chunk
    is one INSERT into ``dead_letters`` (if it has any) and one into
    ``requests``, each carrying an ``insert_deduplication_token`` named after
    the chunk's table, topic, partition and first and last offsets, so a
    retried chunk is stored once. Rows at or below the stored high-water offset
    of their partition are skipped, so a redelivered batch cut differently is
    stored once too.

    A failed insert is retried, with the same chunk and token, with capped
    exponential backoff, for as long as it takes: :meth:`write` does not return
    until ClickHouse confirmed every chunk, so the agent takes no new batch,
    acknowledges nothing, and Faust stops fetching once its buffer is full.
    Overload errors (TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, ...) also space
    inserts out and shrink later ones (see :mod:`worker.sinks.pacing`).
    """

    def __init__(
        self,
        settings: ClickHouseSettings,
        connect: Callable[[], Any] | None = None,
        *,
        pacer: InsertPacer | None = None,
    ) -> None:
        self._settings = settings
        self._connect = connect or (lambda: open_client(settings))
        self._database = settings.database
        self.pacer = pacer or InsertPacer(
            settings.insert_max_rows,
            min_rows=settings.insert_min_rows,
            retry_max_s=settings.insert_retry_max_s,
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Any = None
        self._high_water: dict[str, dict[int, int]] = {}
        self.inserts = 0
        self.retries = 0
        self.deduplicated = 0
        metrics.INSERT_MAX_ROWS.set(self.pacer.max_rows)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        if self._client is None:
            client = self._connect()
            try:
                if self._settings.migrate_on_start:
                    migrate(client, self._database, Retention.from_settings(self._settings))
                else:
                    check(client, self._database)
            except BaseException:
                client.close()
                raise
            self._client = client

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        held = sum(len(part.rows) for part in slices)
        metrics.BUFFERED_ROWS.inc(held)
        try:
            for part in slices:
                # The cut is fixed before the first attempt: retries resend the same chunks.
                for chunk in part.chunks(self.pacer.max_rows):
                    await self._write_chunk(chunk)
                    held -= len(chunk.rows)
                    metrics.BUFFERED_ROWS.dec(len(chunk.rows))
        finally:
            metrics.BUFFERED_ROWS.dec(held)

    async def _write_chunk(self, chunk: PartitionRows) -> None:
        attempt = 0
        failing_since: float | None = None
        while True:
            wait = self.pacer.wait_before_insert(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            self.pacer.started(time.monotonic())
            try:
                await self._call(self._insert_chunk, chunk)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure here is retried, none is lost
                error = classify(exc)
                delay = self.pacer.failed(error, attempt)
                self._note_failure(chunk, error, attempt, delay)
                if failing_since is None:
                    failing_since = time.monotonic()
                # A failed insert may or may not have landed: read positions again.
                self._high_water.pop(chunk.topic, None)
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self.pacer.succeeded()
                metrics.PAUSE_SECONDS.set(self.pacer.pause_s)
                metrics.INSERT_MAX_ROWS.set(self.pacer.max_rows)
                if failing_since is not None:
                    log.warning(
                        "ClickHouse accepted %s[%d] %d-%d after %d attempts and %.1fs; "
                        "consuming again",
                        chunk.topic,
                        chunk.partition,
                        chunk.first_offset,
                        chunk.last_offset,
                        attempt + 1,
                        time.monotonic() - failing_since,
                    )
                return

    def _note_failure(
        self, chunk: PartitionRows, error: Exception, attempt: int, delay: float
    ) -> None:
        self.retries += 1
        overloaded = isinstance(error, DatabaseOverloadedError)
        metrics.CLICKHOUSE_RETRIES.labels("overloaded" if overloaded else "unavailable").inc()
        metrics.PAUSE_SECONDS.set(self.pacer.pause_s)
        metrics.INSERT_MAX_ROWS.set(self.pacer.max_rows)
        log.warning(
            "ClickHouse insert of %s[%d] %d-%d (%d rows) failed (attempt %d), holding the batch "
            "and retrying in %.1fs: %s",
            chunk.topic,
            chunk.partition,
            chunk.first_offset,
            chunk.last_offset,
            len(chunk.rows),
            attempt + 1,
            delay,
            error,
        )

    def _insert_chunk(self, chunk: PartitionRows) -> None:
        """On the ClickHouse thread: skip what is stored, then insert the rest."""
        self._open()
        marks = self._high_water.get(chunk.topic)
        if marks is None:
            marks = self._load_high_water(chunk.topic)
        fresh = chunk.above(marks.get(chunk.partition, -1))
        skipped = len(chunk.rows) - (len(fresh.rows) if fresh is not None else 0)
        if skipped:
            metrics.DEDUPLICATED_ROWS.labels(REQUESTS_TABLE).inc(skipped)
        if fresh is None:
            self.deduplicated += 1
            metrics.DEDUPLICATED_INSERTS.labels(REQUESTS_TABLE).inc()
            log.info(
                "skipping %d rows of %s[%d] %d-%d: already stored",
                len(chunk.rows),
                chunk.topic,
                chunk.partition,
                chunk.first_offset,
                chunk.last_offset,
            )
            return
        # Dead letters first: the requests rows move the high-water mark, and a
        # crash between the two inserts must leave the dead letters to be written again.
        if fresh.dead_letters:
            self._insert(DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS, fresh.dead_letters, fresh)
        self._insert(REQUESTS_TABLE, REQUEST_COLUMNS, fresh.rows, fresh)
        self.inserts += 1
        marks[chunk.partition] = max(marks.get(chunk.partition, -1), fresh.last_offset)

    def _insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        chunk: PartitionRows,
    ) -> None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        started = time.perf_counter()
        self._client.insert(
            f"{self._database}.{table}",
            columns,
            column_names=column_names,
            column_oriented=True,
            settings={
                **INSERT_SETTINGS,
                "insert_deduplication_token": dedup_token(table, chunk),
            },
        )
        metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INSERT_ROWS.labels(table).observe(len(rows))
        metrics.INSERTED_ROWS.labels(table).inc(len(rows))

    def _load_high_water(self, topic: str) -> dict[int, int]:
        # Answered from the source_positions projection (migration 0003), not a scan.
        # The table name is built from a validated identifier (ClickHouseSettings.database).
        result = self._client.query(
            f"SELECT source_partition, max(source_offset) FROM {self._database}.requests "  # noqa: S608
            "WHERE source_topic = {topic:String} GROUP BY source_partition",
            parameters={"topic": topic},
        )
        marks = {int(partition): int(offset) for partition, offset in result.result_rows}
        self._high_water[topic] = marks
        return marks

    async def ping(self) -> None:
        # On the sink's own thread: chDB has one owner, and the loop never blocks.
        await self._call(self._ping)

    def _ping(self) -> None:
        self._open()
        self._client.command("SELECT 1")

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
