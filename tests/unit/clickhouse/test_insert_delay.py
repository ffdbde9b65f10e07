"""The injected insert delay holds the inserts into its table, however the sink names it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from worker.clickhouse import latency
from worker.clickhouse.client import connect
from worker.flow.output import PartitionRows
from worker.settings import ClickHouseSettings
from worker.sinks.clickhouse import ClickHouseSink


@pytest.mark.asyncio
async def test_only_the_requests_inserts_wait(
    chdb_settings: Callable[[], ClickHouseSettings],
    make_slice: Callable[..., PartitionRows],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(latency, "time", SimpleNamespace(sleep=waits.append))
    settings = chdb_settings()
    delayed = latency.with_insert_delay(
        lambda: connect(settings), f"{settings.database}.requests", 0.25
    )
    sink = ClickHouseSink(settings, delayed)
    await sink.start()
    try:
        # Each write is an insert into dead_letters, then one into requests. A write
        # the wrapper breaks would be retried for ever.
        async with asyncio.timeout(30):
            await sink.write([make_slice(range(3), dead=[1])])
            await sink.write([make_slice(range(3, 6), dead=[4])])
    finally:
        await sink.close()
    assert sink.inserts == 2
    assert waits == [0.25, 0.25]


def test_a_table_named_in_the_call_is_delayed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(latency, "time", SimpleNamespace(sleep=waits.append))
    calls: list[tuple[Any, ...]] = []

    class Client:
        def insert(self, *args: Any, **kwargs: Any) -> None:
            calls.append(args)

    client = latency.with_insert_delay(Client, "db.requests", 0.5)()
    client.insert("db.requests", [[1]])
    client.insert("db.dead_letters", [[1]])
    assert waits == [0.5]
    assert calls == [("db.requests", [[1]]), ("db.dead_letters", [[1]])]


def test_no_delay_leaves_the_factory_as_it_is() -> None:
    def factory() -> None:
        return None

    assert latency.with_insert_delay(factory, "db.requests", 0) is factory
