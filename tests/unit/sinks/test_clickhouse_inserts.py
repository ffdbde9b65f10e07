"""How the ClickHouse sink hands its inserts to clickhouse-connect.

``DateTime64`` columns go as ticks, stored as the datetimes are; and the insert
contexts are reused, so no insert leaves garbage holding its rows.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from clickhouse_connect.driver.insert import InsertContext

from worker.flow.output import PartitionRows
from worker.settings import ClickHouseSettings
from worker.sinks.clickhouse import ClickHouseSink, as_ticks

COLUMNS = ["at3", "at6", "naive", "label"]


def moments() -> list[datetime]:
    shared = datetime(2026, 11, 28, 19, 30, 15, 123_999, tzinfo=UTC)
    return [
        shared,
        shared,  # the same object twice, as a batch's received_at
        datetime(2026, 11, 28, 19, 30, 15, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500_001, tzinfo=UTC),
        datetime(2026, 3, 1, 8, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2000, 1, 1, tzinfo=UTC),
    ]


def test_ticks_read_back_as_the_datetimes_they_replace(
    chdb_settings: Callable[[], ClickHouseSettings], open_chdb: Callable[[ClickHouseSettings], Any]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    client.command(f"CREATE DATABASE IF NOT EXISTS {settings.database}")
    for table in ("by_client", "by_ticks"):
        client.command(
            f"CREATE TABLE {settings.database}.{table} (n UInt32, at3 DateTime64(3, 'UTC'), "
            "at6 DateTime64(6, 'UTC'), naive DateTime64(3, 'UTC'), label String) "
            "ENGINE = MergeTree ORDER BY n"
        )
    at = moments()
    # Naive datetimes are taken as the client takes them (the process's local time).
    naive = [value.replace(tzinfo=None) for value in at]
    labels = [str(i) for i in range(len(at))]
    names = ["n", *COLUMNS]
    context = client.create_insert_context(f"{settings.database}.by_client", names)
    types = list(context.column_types)

    def columns() -> list[list[Any]]:
        return [list(range(len(at))), list(at), list(at), list(naive), list(labels)]

    client.insert(
        f"{settings.database}.by_client", columns(), column_names=names, column_oriented=True
    )
    converted = columns()
    as_ticks(converted, types)
    assert all(type(value) is int for column in converted[1:4] for value in column)
    assert converted[4] == labels
    client.insert(
        f"{settings.database}.by_ticks",
        converted,
        column_names=names,
        column_types=types,
        column_oriented=True,
    )

    def stored(table: str) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT n, toUnixTimestamp64Micro(at3), toUnixTimestamp64Micro(at6), "  # noqa: S608 - test tables
            f"toUnixTimestamp64Micro(naive), label FROM {settings.database}.{table} ORDER BY n"
        )
        return [tuple(row) for row in client.query(sql).result_rows]

    by_client = stored("by_client")
    assert len(by_client) == len(at)
    assert stored("by_ticks") == by_client
    # Millisecond columns keep the floor of the millisecond, microsecond ones every digit.
    assert by_client[0][1] == int(at[0].timestamp()) * 1_000_000 + 123_000
    assert by_client[0][2] == int(at[0].timestamp()) * 1_000_000 + 123_999


def test_columns_of_other_values_are_left_to_the_client(
    chdb_settings: Callable[[], ClickHouseSettings], open_chdb: Callable[[ClickHouseSettings], Any]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    client.command(f"CREATE DATABASE IF NOT EXISTS {settings.database}")
    client.command(
        f"CREATE TABLE {settings.database}.mixed (at DateTime64(3, 'UTC'), "
        "maybe Nullable(DateTime64(3, 'UTC')), n UInt32) ENGINE = MergeTree ORDER BY n"
    )
    context = client.create_insert_context(f"{settings.database}.mixed", ["at", "maybe", "n"])
    types = list(context.column_types)
    when = datetime(2026, 11, 28, tzinfo=UTC)
    texts: list[Any] = [when, "2026-11-28T00:00:01+00:00"]  # a string among datetimes
    nullable: list[Any] = [when, None]
    numbers: list[Any] = [1, 2]
    columns = [list(texts), list(nullable), list(numbers)]
    as_ticks(columns, types)
    assert columns == [texts, nullable, numbers]


@pytest.mark.asyncio
async def test_inserts_leave_no_cycles_holding_their_rows(
    chdb_settings: Callable[[], ClickHouseSettings],
    make_slice: Callable[..., PartitionRows],
) -> None:
    # A clickhouse-connect insert context refers to itself and keeps its columns
    # after the insert: one made per insert would wait for the cycle collector.
    settings = chdb_settings()
    sink = ClickHouseSink(settings)
    await sink.start()
    try:
        await sink.write([make_slice(range(10), dead=[3])])
        gc.collect()
        gc.disable()
        try:
            for start in range(10, 60, 10):
                await sink.write([make_slice(range(start, start + 10), dead=[start])])
            contexts = [
                o
                for o in gc.get_objects()
                if isinstance(o, InsertContext) and o.table.startswith(f"{settings.database}.")
            ]
        finally:
            gc.enable()
        assert sink.inserts == 6
        assert len(contexts) == 2  # one per table: requests and dead_letters
        assert all(context.empty for context in contexts)
    finally:
        await sink.close()
