"""The endpoint as a service: listening, publishing its file, stopping cleanly."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import clickhouse_connect
import pytest
import pytest_asyncio
from clickhouse_connect.driver.exceptions import DatabaseError

from worker.clickhouse.endpoint.backend import QueryBackend
from worker.clickhouse.endpoint.chdb_backend import ChdbBackend
from worker.clickhouse.endpoint.discovery import endpoint_file, running
from worker.clickhouse.endpoint.memory import Gate, MemoryBackend
from worker.clickhouse.endpoint.service import ClickHouseEndpoint
from worker.errors import ConfigurationError
from worker.settings import ClickHouseHttpSettings, ClickHouseSettings

Start = Callable[..., Any]
CONFIGURED = "configured-secret"
WRONG = "wrong"


@pytest_asyncio.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Starts endpoints on free ports with their data in ``tmp_path``; stops them afterwards."""
    endpoints: list[ClickHouseEndpoint] = []

    async def make(
        backend: QueryBackend,
        chdb_path: Path | None = None,
        database: str = "worker",
        **settings: Any,
    ) -> ClickHouseEndpoint:
        endpoint = ClickHouseEndpoint(
            ClickHouseHttpSettings(port=0, **settings),
            backend,
            database=database,
            chdb_path=chdb_path or tmp_path / "chdb",
            data_dir=tmp_path / "data",
        )
        await endpoint.start()
        endpoints.append(endpoint)
        return endpoint

    yield make
    for endpoint in endpoints:
        await endpoint.stop()


@pytest.mark.asyncio
async def test_it_publishes_where_it_listens_and_withdraws_on_stop(
    start: Start, tmp_path: Path
) -> None:
    backend = MemoryBackend()
    endpoint = await start(backend)
    assert backend.started
    path = endpoint_file(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = running(path, tmp_path / "chdb")
    assert info is not None
    assert (info.pid, info.port, info.user) == (os.getpid(), endpoint.port, "analyst")
    assert info.password == endpoint.password, "a generated password is published"

    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{info.url}/", data=b"SELECT 1", headers=basic("analyst", info.password)
        )
        assert (response.status, await response.read()) == (200, b"SELECT 1\n")

    await endpoint.stop()
    assert not path.exists()
    assert backend.closed
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", info.port)) != 0, "nothing listens any more"


@pytest.mark.asyncio
async def test_a_configured_password_is_never_written(start: Start, tmp_path: Path) -> None:
    endpoint = await start(MemoryBackend(), password=CONFIGURED)
    assert endpoint.password == CONFIGURED
    assert CONFIGURED not in endpoint_file(tmp_path / "data").read_text()


@pytest.mark.asyncio
async def test_stopping_cancels_running_queries(start: Start) -> None:
    gate = Gate()

    class Killable(MemoryBackend):
        def cancel(self, tag: str | None = None) -> None:
            super().cancel(tag)
            gate.open()  # as KILL QUERY ends chDB's query

    backend = Killable(gate)
    endpoint = await start(backend)
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(
            session.post(
                f"http://127.0.0.1:{endpoint.port}/",
                data=b"SELECT sleep(3)",
                headers=basic("analyst", endpoint.password),
            )
        )
        await asyncio.to_thread(gate.entered.wait, 10)
        await endpoint.stop()
        assert None in backend.cancelled, "every analyst query was cancelled"
        response = await request
        assert response.status == 200
    assert backend.closed


def test_a_port_in_use_is_a_configuration_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        endpoint = ClickHouseEndpoint(
            ClickHouseHttpSettings(port=taken.getsockname()[1]),
            MemoryBackend(),
            database="worker",
            chdb_path=tmp_path / "chdb",
            data_dir=tmp_path / "data",
        )
        with pytest.raises(ConfigurationError, match="CLICKHOUSE_HTTP_PORT"):
            endpoint.bind()


@pytest.mark.asyncio
async def test_clickhouse_connect_works_unchanged_over_http(
    start: Start,
    chdb_dir: Path,
    open_chdb: Callable[[ClickHouseSettings], Any],
    chdb_settings: Callable[[], ClickHouseSettings],
) -> None:
    """The whole protocol path on real chDB: connect, query, types, parameters, errors."""
    settings = chdb_settings()
    writer = open_chdb(settings)
    db = settings.database
    writer.command(f"CREATE DATABASE {db}")
    writer.command(
        f"CREATE TABLE {db}.events (id UInt64, kind LowCardinality(String), "
        "at DateTime64(3, 'UTC'), score Nullable(Float32)) ENGINE = MergeTree ORDER BY id"
    )
    writer.command(
        f"INSERT INTO {db}.events SELECT number, ['a', 'b'][number % 2 + 1], "  # noqa: S608
        "toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + number, "
        "if(number % 3 = 0, NULL, number / 2) FROM numbers(100)"
    )
    endpoint = await start(
        ChdbBackend(chdb_dir), chdb_path=chdb_dir, database=db, password=CONFIGURED
    )

    def analyst() -> None:
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=endpoint.port, username="analyst", password=CONFIGURED
        )
        try:
            assert client.server_version == endpoint_version(chdb_dir)
            result = client.query(
                "SELECT kind, count() AS n, max(at) AS last, sum(score) AS total "
                "FROM events WHERE id < {limit:UInt64} GROUP BY kind ORDER BY kind",
                parameters={"limit": 50},
            )
            assert result.column_names == ("kind", "n", "last", "total")
            assert [row[:2] for row in result.result_rows] == [("a", 25), ("b", 25)]
            assert client.query("SELECT * FROM events LIMIT 0").column_names == (
                "id",
                "kind",
                "at",
                "score",
            )
            assert client.command("SELECT count() FROM events") == 100
            assert client.raw_query("SELECT 1 AS x FORMAT JSONEachRow") == b'{"x":1}\n'
            with client.query_row_block_stream("SELECT id FROM events") as stream:
                assert sum(len(block) for block in stream) == 100
            for statement in (
                "INSERT INTO events (id) VALUES (1)",
                "DROP TABLE events",
                "SET readonly = 0",
            ):
                with pytest.raises(DatabaseError) as caught:
                    client.command(statement)
                assert caught.value.code == 164, statement
            with pytest.raises(DatabaseError) as inserting:
                client.insert("events", [[1000, "c"]], column_names=["id", "kind"])
            assert inserting.value.code == 164
            assert client.command("SELECT count() FROM events") == 100
        finally:
            client.close()
        with pytest.raises(DatabaseError) as caught:
            clickhouse_connect.get_client(
                host="127.0.0.1", port=endpoint.port, username="analyst", password=WRONG
            )
        assert caught.value.code == 516

    await asyncio.to_thread(analyst)


def basic(user: str, password: str | None) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password or "")}


def endpoint_version(chdb_dir: Path) -> str:
    backend = ChdbBackend(chdb_dir)
    backend.start()
    try:
        return backend.version
    finally:
        backend.close()
