"""The row sink contract, checked against the in-memory sink and ClickHouse on embedded chDB.

Both must store a slice once however often it is written, skip the rows of a
redelivered batch that a partition already holds, and store the rows below a
partition's highest stored offset that it does not hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from worker.errors import DatabaseError
from worker.flow.output import (
    DEAD_LETTER_COLUMNS,
    REQUEST_COLUMNS,
    DeadLetterRow,
    PartitionRows,
    RequestRow,
)
from worker.settings import ClickHouseSettings
from worker.sinks.base import RowSink
from worker.sinks.clickhouse import ClickHouseSink
from worker.sinks.memory import MemorySink

MakeSlice = Callable[..., PartitionRows]
MakeRow = Callable[..., RequestRow]


async def clickhouse_rows(sink: ClickHouseSink, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the sink's own client, on the sink's own thread.

    Test-only use of private attributes: the sink keeps its chDB client private
    and calls it from one dedicated thread; asking through the same client and
    thread reads exactly what the sink wrote without opening a second connection.
    """
    return await sink._call(lambda: sink._client.query(sql).result_rows)


@dataclass
class SinkUnderTest:
    """A started sink and the ways to look at what it stored."""

    sink: RowSink
    #: How many rows the sink's storage holds.
    count: Callable[[], Awaitable[int]]
    #: Every stored (topic, partition, offset), sorted, duplicates included.
    stored: Callable[[], Awaitable[list[tuple[str, int, int]]]]
    #: The same for the stored dead letters.
    dead_stored: Callable[[], Awaitable[list[tuple[str, int, int]]]]
    #: Makes the sink forget (without re-reading) the positions it holds for a topic,
    #: as a sink that missed a write would: only the deduplication token is left.
    lose_positions: Callable[[str], None]


def memory_sink(insert_max_rows: int = 100_000) -> SinkUnderTest:
    sink = MemorySink(insert_max_rows=insert_max_rows)
    topic, partition, offset = (
        REQUEST_COLUMNS.index(c) for c in ("source_topic", "source_partition", "source_offset")
    )
    dead_topic, dead_partition, dead_offset = (
        DEAD_LETTER_COLUMNS.index(c) for c in ("source_topic", "source_partition", "source_offset")
    )

    async def count() -> int:
        return len(sink.rows)

    async def stored() -> list[tuple[str, int, int]]:
        return sorted((row[topic], row[partition], row[offset]) for row in sink.rows)

    async def dead_stored() -> list[tuple[str, int, int]]:
        return sorted(
            (str(row[dead_topic]), int(row[dead_partition]), int(row[dead_offset]))
            for row in sink.dead_letters
        )

    def lose_positions(name: str) -> None:
        sink.high_water = {key: mark for key, mark in sink.high_water.items() if key[0] != name}

    return SinkUnderTest(sink, count, stored, dead_stored, lose_positions)


def clickhouse_sink(settings: ClickHouseSettings, insert_max_rows: int = 100_000) -> SinkUnderTest:
    sink = ClickHouseSink(settings.model_copy(update={"insert_max_rows": insert_max_rows}))

    async def count() -> int:
        rows = await clickhouse_rows(sink, f"SELECT count() FROM {settings.database}.requests")  # noqa: S608
        return int(rows[0][0])

    async def positions_of(table: str) -> list[tuple[str, int, int]]:
        rows = await clickhouse_rows(
            sink,
            "SELECT source_topic, source_partition, source_offset "  # noqa: S608 - test database name
            f"FROM {settings.database}.{table} ORDER BY 1, 2, 3",
        )
        return [(str(t), int(p), int(o)) for t, p, o in rows]

    async def stored() -> list[tuple[str, int, int]]:
        return await positions_of("requests")

    async def dead_stored() -> list[tuple[str, int, int]]:
        return await positions_of("dead_letters")

    def lose_positions(name: str) -> None:
        # Test-only reach into the sink's position cache: an empty cached mark for the
        # topic means the next write neither skips nor reads the table.
        sink._high_water[name] = {}

    return SinkUnderTest(sink, count, stored, dead_stored, lose_positions)


@pytest_asyncio.fixture(params=["memory", "clickhouse"])
async def new_sink(
    request: pytest.FixtureRequest, chdb_settings: Callable[[], ClickHouseSettings]
) -> AsyncIterator[Callable[..., Awaitable[SinkUnderTest]]]:
    """A factory of started sinks of one implementation; all are closed after the test."""
    made: list[SinkUnderTest] = []

    async def make(insert_max_rows: int = 100_000) -> SinkUnderTest:
        under_test = (
            memory_sink(insert_max_rows)
            if request.param == "memory"
            else clickhouse_sink(chdb_settings(), insert_max_rows)
        )
        await under_test.sink.start()
        made.append(under_test)
        return under_test

    yield make
    for under_test in made:
        await under_test.sink.close()


NewSink = Callable[..., Awaitable[SinkUnderTest]]


def positions(
    offsets: range | list[int], topic: str = "requests", partition: int = 0
) -> list[tuple[str, int, int]]:
    return [(topic, partition, offset) for offset in offsets]


@pytest.mark.asyncio
async def test_a_written_slice_is_stored(new_sink: NewSink, make_slice: MakeSlice) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5))])
    assert await under_test.stored() == positions(range(5))


@pytest.mark.asyncio
async def test_ping_answers_while_the_database_is_reachable(new_sink: NewSink) -> None:
    under_test = await new_sink()
    assert await under_test.sink.ping() is None  # raises when the database is unreachable


@pytest.mark.asyncio
async def test_writing_nothing_stores_nothing(new_sink: NewSink) -> None:
    under_test = await new_sink()
    await under_test.sink.write([])
    assert await under_test.count() == 0


@pytest.mark.asyncio
async def test_the_same_slice_written_twice_is_stored_once(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5))])
    await under_test.sink.write([make_slice(range(5))])
    assert await under_test.count() == 5
    assert await under_test.stored() == positions(range(5))


@pytest.mark.asyncio
async def test_the_same_slice_is_stored_once_even_when_positions_are_lost(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5))])
    under_test.lose_positions("requests")
    await under_test.sink.write([make_slice(range(5))])  # only the token can tell
    assert await under_test.count() == 5
    assert await under_test.stored() == positions(range(5))


@pytest.mark.asyncio
async def test_a_redelivery_with_other_boundaries_stores_only_the_new_offsets(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5))])
    await under_test.sink.write([make_slice(range(3, 10))])
    assert await under_test.stored() == positions(range(10))


@pytest.mark.asyncio
async def test_a_redelivered_slice_inside_what_is_stored_is_skipped(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(10))])
    await under_test.sink.write([make_slice(range(2, 6))])
    await under_test.sink.write([make_slice([9])])
    assert await under_test.stored() == positions(range(10))


@pytest.mark.asyncio
async def test_forgetting_positions_still_skips_what_is_stored(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5))])
    under_test.sink.forget_positions()  # partitions were reassigned
    await under_test.sink.write([make_slice(range(2, 8))])
    assert await under_test.stored() == positions(range(8))


@pytest.mark.asyncio
async def test_partitions_and_topics_keep_their_own_positions(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(100, 105))])
    await under_test.sink.write(
        [
            make_slice(range(3), partition=1),
            make_slice(range(3), topic="other"),
            make_slice(range(98, 106)),
        ]
    )
    # 100 to 104 are stored already: skipped. 98 and 99 are below the partition's
    # high-water mark (104) but were never stored: kept.
    assert await under_test.stored() == sorted(
        [
            *positions(range(98, 106)),
            *positions(range(3), partition=1),
            *positions(range(3), topic="other"),
        ]
    )


@pytest.mark.asyncio
async def test_offsets_need_not_be_contiguous(new_sink: NewSink, make_slice: MakeSlice) -> None:
    # Compacted topics and transaction markers leave gaps in the offsets.
    under_test = await new_sink()
    await under_test.sink.write([make_slice([0, 2, 7])])
    await under_test.sink.write([make_slice([2, 7, 8, 11])])
    assert await under_test.stored() == positions([0, 2, 7, 8, 11])


@pytest.mark.asyncio
async def test_dead_letters_are_stored_with_their_slice_once(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(6), dead=[1, 4])])
    await under_test.sink.write([make_slice(range(6), dead=[1, 4])])
    assert await under_test.stored() == positions(range(6))
    assert await under_test.dead_stored() == positions([1, 4])


@pytest.mark.asyncio
async def test_dead_letters_are_stored_once_even_when_positions_are_lost(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(6), dead=[0, 5])])
    under_test.lose_positions("requests")
    await under_test.sink.write([make_slice(range(6), dead=[0, 5])])
    assert await under_test.dead_stored() == positions([0, 5])
    assert await under_test.count() == 6


@pytest.mark.asyncio
async def test_a_redelivery_stores_only_the_dead_letters_past_what_is_stored(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice(range(5), dead=[2])])
    await under_test.sink.write([make_slice(range(2, 9), dead=[2, 7])])
    assert await under_test.dead_stored() == positions([2, 7])
    assert await under_test.stored() == positions(range(9))


@pytest.mark.asyncio
async def test_a_large_slice_is_stored_in_chunks_each_once(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink(insert_max_rows=4)
    whole = make_slice(range(10), dead=[3, 4, 9])
    await under_test.sink.write([whole])
    under_test.lose_positions("requests")
    await under_test.sink.write([make_slice(range(10), dead=[3, 4, 9])])  # tokens per chunk
    assert await under_test.stored() == positions(range(10))
    assert await under_test.dead_stored() == positions([3, 4, 9])


@pytest.mark.asyncio
async def test_chunks_of_a_redelivery_skip_what_earlier_chunks_stored(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink(insert_max_rows=3)
    await under_test.sink.write([make_slice(range(4))])
    await under_test.sink.write([make_slice(range(1, 11), dead=[2, 10])])
    assert await under_test.stored() == positions(range(11))
    assert await under_test.dead_stored() == positions([10])


@pytest.mark.asyncio
async def test_memory_sink_counts_token_duplicates(make_slice: MakeSlice) -> None:
    under_test = memory_sink()
    sink = under_test.sink
    assert isinstance(sink, MemorySink)
    await sink.write([make_slice(range(3))])
    under_test.lose_positions("requests")
    await sink.write([make_slice(range(3))])
    assert sink.deduplicated == 1
    assert len(sink.rows) == 3


class TestClickHouseSink:
    @pytest.mark.asyncio
    async def test_a_restarted_sink_reads_the_stored_positions(
        self, chdb_settings: Callable[[], ClickHouseSettings], make_slice: MakeSlice
    ) -> None:
        settings = chdb_settings()
        first = clickhouse_sink(settings)
        await first.sink.start()
        try:
            await first.sink.write([make_slice(range(5)), make_slice(range(2), partition=3)])
        finally:
            await first.sink.close()

        second = clickhouse_sink(settings)
        await second.sink.start()
        try:
            await second.sink.write([make_slice(range(6)), make_slice(range(3), partition=3)])
            assert await second.stored() == sorted(
                [*positions(range(6)), *positions(range(3), partition=3)]
            )
            sink = second.sink
            assert isinstance(sink, ClickHouseSink)
            # Only the rows past each partition's stored position, both in one insert.
            assert sink.inserts == 1
        finally:
            await second.sink.close()

    @pytest.mark.asyncio
    async def test_what_is_below_the_marks_is_asked_for_in_one_query(
        self, chdb_settings: Callable[[], ClickHouseSettings], make_slice: MakeSlice
    ) -> None:
        under_test = clickhouse_sink(chdb_settings())
        sink = under_test.sink
        assert isinstance(sink, ClickHouseSink)
        await sink.start()
        try:
            await sink.write([make_slice([0, 4]), make_slice([1, 3], partition=1)])
            client = sink._client
            asked: list[str] = []
            query = client.query

            def counted(text: str, *args: Any, **kwargs: Any) -> Any:
                asked.append(text)
                return query(text, *args, **kwargs)

            client.query = counted
            await sink.write([make_slice(range(6)), make_slice(range(5), partition=1)])
            assert len([text for text in asked if "source_offset BETWEEN" in text]) == 1
            assert await under_test.stored() == sorted(
                [*positions(range(6)), *positions(range(5), partition=1)]
            )
        finally:
            await sink.close()

    @pytest.mark.asyncio
    async def test_every_dead_letter_column_round_trips(
        self,
        chdb_settings: Callable[[], ClickHouseSettings],
        make_row: MakeRow,
        make_dead_letter_row: Callable[..., DeadLetterRow],
    ) -> None:
        settings = chdb_settings()
        sink = clickhouse_sink(settings).sink
        assert isinstance(sink, ClickHouseSink)
        await sink.start()
        try:
            letter = make_dead_letter_row(7, topic="in", partition=1)
            part = PartitionRows("in", 1)
            part.add(make_row(7, topic="in", partition=1), 7)
            part.add_dead_letter(letter, 7)
            await sink.write([part])
            names = [f"{c}" for c in DEAD_LETTER_COLUMNS if c not in ("key", "payload")]
            (stored,) = await clickhouse_rows(
                sink,
                f"SELECT {', '.join(names)}, hex(key), hex(payload) "  # noqa: S608
                f"FROM {settings.database}.dead_letters",
            )
        finally:
            await sink.close()
        expected = dict(zip(DEAD_LETTER_COLUMNS, letter, strict=True))
        got = dict(zip([*names, "key", "payload"], stored, strict=True))
        got["received_at"] = got["received_at"].replace(tzinfo=UTC)
        got["key"] = bytes.fromhex(got["key"])
        got["payload"] = bytes.fromhex(got["payload"])
        assert got == expected

    @pytest.mark.asyncio
    async def test_every_column_round_trips(
        self,
        chdb_settings: Callable[[], ClickHouseSettings],
        make_row: MakeRow,
    ) -> None:
        settings = chdb_settings()
        under_test = clickhouse_sink(settings)
        sink = under_test.sink
        assert isinstance(sink, ClickHouseSink)
        await sink.start()
        try:
            row = make_row(42, topic="in", partition=2)
            part = PartitionRows("in", 2)
            part.add(row, 42)
            await sink.write([part])
            (stored,) = await clickhouse_rows(
                sink,
                f"SELECT {', '.join(REQUEST_COLUMNS)} FROM {settings.database}.requests",  # noqa: S608
            )
        finally:
            await sink.close()
        normalized = tuple(
            value.replace(tzinfo=UTC)
            if hasattr(value, "tzinfo") and value.tzinfo is None
            else value
            for value in stored
        )
        assert normalized == row


@pytest.mark.asyncio
async def test_clickhouse_ping_fails_when_the_server_cannot_be_reached() -> None:
    def unreachable() -> Any:
        raise DatabaseError("cannot open ClickHouse at http://nowhere:8123")

    sink = ClickHouseSink(ClickHouseSettings(path=Path("unused")), unreachable)
    try:
        with pytest.raises(DatabaseError, match="nowhere"):
            await sink.ping()
    finally:
        await sink.close()


@pytest.mark.asyncio
async def test_a_record_handed_over_after_later_ones_is_stored(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    # Around a rebalance: 447 and 448 were processed before the seek to the committed
    # offset (446) brought 446 and them again.
    under_test = await new_sink()
    await under_test.sink.write([make_slice([447, 448])])
    await under_test.sink.write([make_slice(range(446, 470))])
    assert await under_test.stored() == positions(range(446, 470))


@pytest.mark.asyncio
async def test_holes_below_the_mark_are_filled_and_nothing_is_stored_twice(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write([make_slice([0, 1, 5, 9])])
    await under_test.sink.write([make_slice([1, 2, 3, 9])])
    await under_test.sink.write([make_slice(range(12))])
    assert await under_test.stored() == positions(range(12))


@pytest.mark.asyncio
async def test_holes_in_several_partitions_of_one_write_are_each_filled(
    new_sink: NewSink, make_slice: MakeSlice
) -> None:
    under_test = await new_sink()
    await under_test.sink.write(
        [make_slice([0, 4]), make_slice([1, 3], partition=1), make_slice([2], topic="other")]
    )
    await under_test.sink.write(
        [
            make_slice(range(6)),
            make_slice(range(5), partition=1),
            make_slice(range(4), topic="other"),
        ]
    )
    assert await under_test.stored() == sorted(
        [
            *positions(range(6)),
            *positions(range(5), partition=1),
            *positions(range(4), topic="other"),
        ]
    )
