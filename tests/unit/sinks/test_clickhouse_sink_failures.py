"""The ClickHouse sink when ClickHouse fails: it holds the batch, retries, adapts, loses nothing.

On embedded chDB, with failures injected around the real client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from clickhouse_connect.driver.exceptions import OperationalError
from prometheus_client import REGISTRY

from worker.clickhouse.client import connect
from worker.faults import ClickHouseOutage
from worker.flow.output import PartitionRows
from worker.settings import ClickHouseSettings
from worker.sinks.clickhouse import ClickHouseSink
from worker.sinks.pacing import InsertPacer

MakeSlice = Callable[..., PartitionRows]


def sample(name: str, **labels: str) -> float:
    """A metric's current value on the default registry (0 before its first observation)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout_s``."""
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def fast_pacer(max_rows: int = 100_000) -> InsertPacer:
    return InsertPacer(
        max_rows, min_rows=2, retry_base_s=0.01, retry_max_s=0.05, overload_pause_min_s=0.02
    )


class LandsThenFails:
    """A client whose next inserts into ``table`` reach ClickHouse, then report a failure.

    As when the connection drops after the server committed: the caller cannot
    tell whether the rows landed.
    """

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        self.ambiguous = 0

    def insert(self, table: str | None = None, *args: Any, **kwargs: Any) -> Any:
        result = self._client.insert(table, *args, **kwargs)
        # The sink inserts through a reusable context, which names the table.
        name = table if table is not None else kwargs["context"].table
        if self.ambiguous and name.endswith(f".{self._table}"):
            self.ambiguous -= 1
            raise OperationalError("Error: connection reset by peer after the insert was sent")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def stored_offsets(sink: ClickHouseSink, database: str, table: str) -> list[int]:
    # Test-only: ask on the sink's own client and thread (chDB wants one owner).
    rows = await sink._call(
        lambda: (
            sink._client.query(
                f"SELECT source_offset FROM {database}.{table} ORDER BY source_offset"  # noqa: S608
            ).result_rows
        )
    )
    return [int(offset) for (offset,) in rows]


@pytest_asyncio.fixture
async def make_sink(
    chdb_settings: Callable[[], ClickHouseSettings],
) -> AsyncIterator[Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]]]:
    """Started ClickHouse sinks with fast retries and a client wrapper of the test's choice."""
    made: list[ClickHouseSink] = []

    async def make(
        wrap: Callable[[Any], Any] = lambda client: client, max_rows: int = 100_000
    ) -> tuple[ClickHouseSink, ClickHouseSettings]:
        settings = chdb_settings()
        sink = ClickHouseSink(settings, lambda: wrap(connect(settings)), pacer=fast_pacer(max_rows))
        await sink.start()
        made.append(sink)
        return sink, settings

    yield make
    for sink in made:
        await sink.close()


@pytest.mark.asyncio
async def test_an_outage_holds_the_write_until_clickhouse_is_back_and_stores_it_once(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
    tmp_path: Path,
) -> None:
    flag = tmp_path / "clickhouse-down"
    sink, settings = await make_sink(lambda client: ClickHouseOutage(client, flag))
    retries_before = sample("worker_clickhouse_retries_total", reason="unavailable")
    buffered_before = sample("worker_clickhouse_buffered_rows")

    flag.touch()
    write = asyncio.create_task(sink.write([make_slice(range(20), dead=[3])]))
    await eventually(lambda: sink.retries >= 5)
    assert not write.done(), "write returned while ClickHouse was down"
    assert sample("worker_clickhouse_buffered_rows") == buffered_before + 20
    flag.unlink()
    await asyncio.wait_for(write, timeout=30)

    assert await stored_offsets(sink, settings.database, "requests") == list(range(20))
    assert await stored_offsets(sink, settings.database, "dead_letters") == [3]
    assert sample("worker_clickhouse_buffered_rows") == buffered_before
    assert sample("worker_clickhouse_retries_total", reason="unavailable") >= retries_before + 5


@pytest.mark.asyncio
async def test_an_insert_that_landed_but_reported_failure_is_skipped_on_retry(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
) -> None:
    wrappers: list[LandsThenFails] = []

    def wrap(client: Any) -> LandsThenFails:
        wrappers.append(LandsThenFails(client, "requests"))
        return wrappers[-1]

    sink, settings = await make_sink(wrap)
    deduplicated = sample("worker_clickhouse_deduplicated_inserts_total", table="requests")
    (client,) = wrappers
    client.ambiguous = 1

    await sink.write([make_slice(range(10), dead=[4])])

    assert await stored_offsets(sink, settings.database, "requests") == list(range(10))
    assert await stored_offsets(sink, settings.database, "dead_letters") == [4]
    assert sink.retries == 1
    assert sink.deduplicated == 1, "the retry read the positions again and found the rows"
    assert (
        sample("worker_clickhouse_deduplicated_inserts_total", table="requests") == deduplicated + 1
    )


@pytest.mark.asyncio
async def test_a_retried_dead_letters_insert_is_deduplicated_by_its_token(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
) -> None:
    wrappers: list[LandsThenFails] = []

    def wrap(client: Any) -> LandsThenFails:
        wrappers.append(LandsThenFails(client, "dead_letters"))
        return wrappers[-1]

    sink, settings = await make_sink(wrap)
    (client,) = wrappers
    client.ambiguous = 2  # landed twice, reported failed twice, then confirmed

    await sink.write([make_slice(range(6), dead=[0, 5])])

    assert sink.retries == 2
    assert await stored_offsets(sink, settings.database, "dead_letters") == [0, 5]
    assert await stored_offsets(sink, settings.database, "requests") == list(range(6))


@pytest.mark.asyncio
async def test_too_many_parts_spaces_inserts_out_and_loses_nothing(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
    tmp_path: Path,
) -> None:
    flag = tmp_path / "clickhouse-down"
    sink, settings = await make_sink(lambda client: ClickHouseOutage(client, flag))
    overloaded = sample("worker_clickhouse_retries_total", reason="overloaded")
    flag.write_text("too_many_parts")
    write = asyncio.create_task(sink.write([make_slice(range(8))]))
    await eventually(lambda: sink.retries >= 2)
    assert sink.pacer.pause_s > 0
    assert sample("worker_clickhouse_pause_seconds") == sink.pacer.pause_s
    flag.unlink()
    await asyncio.wait_for(write, timeout=30)
    assert await stored_offsets(sink, settings.database, "requests") == list(range(8))
    assert sample("worker_clickhouse_retries_total", reason="overloaded") >= overloaded + 2
    assert sink.pacer.max_rows == 100_000, "too many parts: fewer inserts, not smaller ones"


@pytest.mark.asyncio
async def test_a_memory_limit_makes_later_inserts_smaller_but_retries_the_chunk_as_it_was(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
    tmp_path: Path,
) -> None:
    flag = tmp_path / "clickhouse-down"
    sink, settings = await make_sink(lambda client: ClickHouseOutage(client, flag), max_rows=16)
    flag.write_text("memory_limit_exceeded")
    write = asyncio.create_task(sink.write([make_slice(range(16))]))
    await eventually(lambda: sink.retries >= 2)
    flag.unlink()
    await asyncio.wait_for(write, timeout=30)
    assert sink.inserts == 1, "the chunk already cut is resent whole, with its token"
    assert sink.pacer.max_rows == 4

    await sink.write([make_slice(range(16, 32))])
    assert sink.inserts == 1 + 4, "the next slice goes in smaller inserts"
    assert await stored_offsets(sink, settings.database, "requests") == list(range(32))
    assert sample("worker_clickhouse_insert_max_rows") == sink.pacer.max_rows


@pytest.mark.asyncio
async def test_confirmed_inserts_are_timed_and_counted(
    make_sink: Callable[..., Awaitable[tuple[ClickHouseSink, ClickHouseSettings]]],
    make_slice: MakeSlice,
) -> None:
    sink, _ = await make_sink()
    timed = sample("worker_clickhouse_insert_seconds_count", table="requests")
    rows = sample("worker_clickhouse_inserted_rows_total", table="requests")
    dead = sample("worker_clickhouse_inserted_rows_total", table="dead_letters")
    before = time.time()
    await sink.write([make_slice(range(7), dead=[1, 2]), make_slice(range(3), partition=1)])
    after = time.time()
    for table in ("requests", "dead_letters"):
        confirmed = sample("worker_clickhouse_last_insert_timestamp_seconds", table=table)
        assert before <= confirmed <= after
    # Both partitions' slices fit in one block: one insert per table for the batch.
    assert sample("worker_clickhouse_insert_seconds_count", table="requests") == timed + 1
    assert sample("worker_clickhouse_inserted_rows_total", table="requests") == rows + 10
    assert sample("worker_clickhouse_inserted_rows_total", table="dead_letters") == dead + 2
