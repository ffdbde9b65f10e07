"""The ClickHouse row sink: one columnar insert per batch and table, deduplicated, retried."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from math import floor
from typing import Any, TypeVar

from clickhouse_connect.datatypes.temporal import DateTime64

from worker.clickhouse.client import connect as open_client
from worker.clickhouse.migrate import Retention, check, migrate
from worker.errors import DatabaseError, DatabaseOverloadedError
from worker.flow.output import DEAD_LETTER_COLUMNS, REQUEST_COLUMNS, PartitionRows
from worker.observability import metrics
from worker.settings import ClickHouseSettings
from worker.sinks.base import (
    DEAD_LETTERS_TABLE,
    REQUESTS_TABLE,
    Block,
    dedup_token,
    describe,
    pack,
)
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


def as_ticks(columns: list[list[Any]], types: Sequence[Any]) -> None:
    """Turn the ``DateTime64`` columns of datetimes in ``columns`` into integer ticks, in place.

    clickhouse-connect converts every datetime of such a column on its own, while
    it holds the GIL that the event loop needs. A batch's rows share their
    received and processed times (the same objects), so each is converted once
    here; the arithmetic is the client's (the floor of the timestamp, then the
    microseconds), so the stored ticks are the same. A column holding anything
    but datetimes is left to the client.
    """
    for index, kind in enumerate(types):
        if isinstance(kind, DateTime64) and not kind.nullable:
            converted = _ticks(columns[index], kind.prec)
            if converted is not None:
                columns[index] = converted


def _ticks(column: list[Any], scale: int) -> list[int] | None:
    # Keyed by identity: the column holds every value alive while this runs.
    seen: dict[int, int] = {}
    ticks: list[int] = []
    for value in column:
        tick = seen.get(id(value))
        if tick is None:
            if type(value) is not datetime:
                return None
            seconds = floor(value.timestamp())
            tick = seen[id(value)] = (seconds * 1_000_000 + value.microsecond) * scale // 1_000_000
        ticks.append(tick)
    return ticks


class ClickHouseSink:
    """Writes ``requests`` and ``dead_letters`` rows to ClickHouse (a server or chDB).

    Every call to the client runs on one dedicated thread: clickhouse-connect's
    client is synchronous, and chDB wants a single owner. A batch's partition
    slices are packed into blocks of at most :attr:`InsertPacer.max_rows` rows
    (:func:`~worker.sinks.base.pack`: usually the whole batch); each block is
    one INSERT into ``dead_letters`` (if it has any) and one into ``requests``,
    each carrying an ``insert_deduplication_token`` that names the table and
    every slice's topic, partition and first and last offsets, so a retried
    block is stored once. Rows at or below the stored high-water offset of
    their partition are skipped once the table is found to hold their offsets,
    so a redelivered batch cut differently is stored once too, and a record
    handed over after a later one of its partition is still stored.

    A failed insert is retried, with the same block and token, with capped
    exponential backoff, for as long as it takes: :meth:`write` does not return
    until ClickHouse confirmed every block, so the agent takes no new batch,
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
        #: One insert context per table, reused by every insert of the connection.
        self._contexts: dict[str, Any] = {}
        self.inserts = 0
        self.retries = 0
        self.deduplicated = 0
        self.failing: DatabaseError | None = None
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
            self._contexts = {}

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        self.failing = None
        held = sum(len(part.rows) for part in slices)
        metrics.BUFFERED_ROWS.inc(held)
        try:
            # The cut is fixed before the first attempt: retries resend the same blocks.
            for block in pack(slices, self.pacer.max_rows):
                await self._write_block(block)
                rows = sum(len(part.rows) for part in block)
                held -= rows
                metrics.BUFFERED_ROWS.dec(rows)
        finally:
            metrics.BUFFERED_ROWS.dec(held)

    async def _write_block(self, block: Block) -> None:
        attempt = 0
        failing_since: float | None = None
        while True:
            wait = self.pacer.wait_before_insert(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            self.pacer.started(time.monotonic())
            try:
                await self._call(self._insert_block, block)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure here is retried, none is lost
                error = classify(exc)
                delay = self.pacer.failed(error, attempt)
                self._note_failure(block, error, attempt, delay)
                if failing_since is None:
                    failing_since = time.monotonic()
                # A failed insert may or may not have landed: read positions again.
                for part in block:
                    self._high_water.pop(part.topic, None)
                self._contexts = {}
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self.failing = None
                self.pacer.succeeded()
                metrics.PAUSE_SECONDS.set(self.pacer.pause_s)
                metrics.INSERT_MAX_ROWS.set(self.pacer.max_rows)
                if failing_since is not None:
                    log.warning(
                        "ClickHouse accepted %s after %d attempts and %.1fs; consuming again",
                        describe(block),
                        attempt + 1,
                        time.monotonic() - failing_since,
                    )
                return

    def _note_failure(self, block: Block, error: Exception, attempt: int, delay: float) -> None:
        self.retries += 1
        self.failing = error if isinstance(error, DatabaseError) else None
        overloaded = isinstance(error, DatabaseOverloadedError)
        metrics.CLICKHOUSE_RETRIES.labels("overloaded" if overloaded else "unavailable").inc()
        metrics.PAUSE_SECONDS.set(self.pacer.pause_s)
        metrics.INSERT_MAX_ROWS.set(self.pacer.max_rows)
        log.warning(
            "ClickHouse insert of %s (%d rows) failed (attempt %d), holding the batch "
            "and retrying in %.1fs: %s",
            describe(block),
            sum(len(part.rows) for part in block),
            attempt + 1,
            delay,
            error,
        )

    def _insert_block(self, block: Block) -> None:
        """On the ClickHouse thread: skip what is stored, then insert the rest."""
        self._open()
        below: list[tuple[PartitionRows, int]] = []
        for chunk in block:
            marks = self._high_water.get(chunk.topic)
            if marks is None:
                marks = self._load_high_water(chunk.topic)
            mark = marks.get(chunk.partition, -1)
            if chunk.first_offset <= mark:
                below.append((chunk, mark))
        stored = self._stored(below) if below else {}
        fresh: list[PartitionRows] = []
        skipped = 0
        # In the block's order, which the deduplication token follows.
        for chunk in block:
            held = stored.get((chunk.topic, chunk.partition))
            part = chunk if held is None else chunk.without(held)
            skipped += len(chunk.rows) - (len(part.rows) if part is not None else 0)
            if part is not None:
                fresh.append(part)
        if skipped:
            metrics.DEDUPLICATED_ROWS.labels(REQUESTS_TABLE).inc(skipped)
        if not fresh:
            self.deduplicated += 1
            metrics.DEDUPLICATED_INSERTS.labels(REQUESTS_TABLE).inc()
            log.info("skipping %s: already stored", describe(block))
            return
        # Dead letters first: the requests rows move the high-water marks, and a
        # crash between the two inserts must leave the dead letters to be written again.
        letters = [part for part in fresh if part.dead_letters]
        if letters:
            rows = [row for part in letters for row in part.dead_letters]
            self._insert(DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS, rows, letters)
        self._insert(REQUESTS_TABLE, REQUEST_COLUMNS, [r for p in fresh for r in p.rows], fresh)
        self.inserts += 1
        for part in fresh:
            marks = self._high_water.setdefault(part.topic, {})
            marks[part.partition] = max(marks.get(part.partition, -1), part.last_offset)

    def _insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[Any]],
        block: Block,
    ) -> None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        started = time.perf_counter()
        name = f"{self._database}.{table}"
        context = self._contexts.get(name)
        if context is None:
            # Made once per connection: without the column types, every insert would
            # first DESCRIBE the table, a query of its own. And reused: a context
            # refers to itself, so one per insert would be left for the cycle
            # collector, holding every row of its insert until a full collection.
            context = self._contexts[name] = self._client.create_insert_context(
                name, list(column_names), column_oriented=True, settings=dict(INSERT_SETTINGS)
            )
        as_ticks(columns, context.column_types)
        context.settings["insert_deduplication_token"] = dedup_token(table, *block)
        self._client.insert(data=columns, context=context)
        metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INSERT_ROWS.labels(table).observe(len(rows))
        metrics.INSERTED_ROWS.labels(table).inc(len(rows))
        metrics.LAST_INSERT.labels(table).set(time.time())

    def _stored(
        self, below: Sequence[tuple[PartitionRows, int]]
    ) -> dict[tuple[str, int], set[int]]:
        """Which offsets at or below their partition's mark the table holds, per partition.

        ``below`` pairs each chunk reaching down to its partition's high-water
        offset with that offset. Usually every such row is stored: a batch consumed
        again after a crash. But a partition's records can be handed over out of
        order around a rebalance (a later record processed before the seek to the
        committed offset brings an earlier one), so an offset below the mark is
        skipped only once the table is known to hold it. One query for the whole
        block, one offset range per chunk, narrowed by the ``source_offset``
        minmax index (migration 0007).
        """
        ranges: list[str] = []
        parameters: dict[str, Any] = {}
        for i, (chunk, mark) in enumerate(below):
            offsets = [offset for offset in chunk.offsets if offset <= mark]
            ranges.append(
                f"(source_topic = {{t{i}:String}} AND source_partition = {{p{i}:UInt32}} "
                f"AND source_offset BETWEEN {{f{i}:UInt64}} AND {{l{i}:UInt64}})"
            )
            parameters.update(
                {
                    f"t{i}": chunk.topic,
                    f"p{i}": chunk.partition,
                    f"f{i}": min(offsets),
                    f"l{i}": max(offsets),
                }
            )
        # The table name is built from a validated identifier (ClickHouseSettings.database).
        result = self._client.query(
            "SELECT DISTINCT source_topic, source_partition, source_offset "  # noqa: S608
            f"FROM {self._database}.requests WHERE {' OR '.join(ranges)}",
            parameters=parameters,
        )
        stored: dict[tuple[str, int], set[int]] = {}
        for topic, partition, offset in result.result_rows:
            stored.setdefault((topic, int(partition)), set()).add(int(offset))
        for chunk, mark in below:
            held = stored.get((chunk.topic, chunk.partition), set())
            missing = [offset for offset in chunk.offsets if offset <= mark and offset not in held]
            if missing:
                log.info(
                    "storing %d rows of %s[%d] below its high-water offset %d, never stored: %s",
                    len(missing),
                    chunk.topic,
                    chunk.partition,
                    mark,
                    ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else ""),
                )
        return stored

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
