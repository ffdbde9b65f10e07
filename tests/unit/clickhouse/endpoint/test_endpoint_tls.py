"""The analyst endpoint over HTTPS: real TLS handshakes, real certificate verification.

The endpoint serves real chDB with a certificate from a throwaway CA. Three clients
meet it: clickhouse-connect as an analyst would configure it, the worker's own
server-mode client (``CLICKHOUSE_URL=https://...`` with ``CLICKHOUSE_TLS_CA_CERT``),
and ``worker db query``'s discovery of the running endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
import pytest_asyncio
from clickhouse_connect.driver.exceptions import OperationalError
from pydantic import SecretStr

from tests.support.settings import settings_under
from tests.support.tls import Pki, make_pki
from worker.clickhouse.client import connect, connect_reader
from worker.clickhouse.endpoint.chdb_backend import ChdbBackend
from worker.clickhouse.endpoint.discovery import endpoint_file, running
from worker.clickhouse.endpoint.service import ClickHouseEndpoint
from worker.errors import ConfigurationError, DatabaseError
from worker.settings import ClickHouseHttpSettings, ClickHouseSettings, WorkerSettings

PASSWORD = "analyst-tls-pw"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), name="endpoint")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("stranger"), name="stranger")


@pytest_asyncio.fixture
async def https(
    pki: Pki,
    tmp_path: Path,
    chdb_dir: Path,
    chdb_settings: Callable[[], ClickHouseSettings],
    open_chdb: Callable[[ClickHouseSettings], Any],
) -> AsyncIterator[tuple[ClickHouseEndpoint, ClickHouseSettings]]:
    """An HTTPS endpoint on a free port over a database with one table."""
    settings = chdb_settings()
    writer = open_chdb(settings)
    writer.command(f"CREATE DATABASE {settings.database}")
    writer.command(f"CREATE TABLE {settings.database}.t (n UInt8) ENGINE = Memory")
    writer.command(f"INSERT INTO {settings.database}.t VALUES (1), (2)")  # noqa: S608
    endpoint = ClickHouseEndpoint(
        ClickHouseHttpSettings(
            port=0, password=SecretStr(PASSWORD), tls_cert=pki.server_cert, tls_key=pki.server_key
        ),
        ChdbBackend(chdb_dir),
        database=settings.database,
        chdb_path=chdb_dir,
        data_dir=tmp_path / "data",
    )
    await endpoint.start()
    try:
        yield endpoint, settings
    finally:
        await endpoint.stop()


def analyst(endpoint: ClickHouseEndpoint, **tls: Any) -> Any:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=endpoint.port,
        username="analyst",
        password=PASSWORD,
        secure=True,
        **tls,
    )


@pytest.mark.asyncio
async def test_an_analyst_connects_with_verification_against_the_ca(
    https: tuple[ClickHouseEndpoint, ClickHouseSettings], pki: Pki
) -> None:
    endpoint, _ = https

    def query() -> int:
        client = analyst(endpoint, verify=True, ca_cert=str(pki.ca_cert))
        try:
            return int(client.command("SELECT sum(n) FROM t"))
        finally:
            client.close()

    assert await asyncio.to_thread(query) == 3


@pytest.mark.asyncio
async def test_a_client_trusting_another_ca_fails_the_handshake(
    https: tuple[ClickHouseEndpoint, ClickHouseSettings], stranger: Pki
) -> None:
    endpoint, _ = https
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.to_thread(analyst, endpoint, verify=True, ca_cert=str(stranger.ca_cert))


@pytest.mark.asyncio
async def test_the_workers_server_mode_client_verifies_with_clickhouse_tls_ca_cert(
    https: tuple[ClickHouseEndpoint, ClickHouseSettings], pki: Pki, stranger: Pki
) -> None:
    endpoint, chdb = https
    url = SecretStr(f"https://analyst:{PASSWORD}@127.0.0.1:{endpoint.port}")

    def sum_with(ca: Path) -> int:
        client = connect(ClickHouseSettings(url=url, database=chdb.database, tls_ca_cert=ca))
        try:
            return int(client.command(f"SELECT sum(n) FROM {chdb.database}.t"))  # noqa: S608
        finally:
            client.close()

    assert await asyncio.to_thread(sum_with, pki.ca_cert) == 3
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED") as refused:
        await asyncio.to_thread(sum_with, stranger.ca_cert)
    assert PASSWORD not in str(refused.value)


@pytest.mark.asyncio
async def test_worker_db_query_finds_the_https_endpoint_and_verifies_it(
    https: tuple[ClickHouseEndpoint, ClickHouseSettings], pki: Pki, tmp_path: Path
) -> None:
    endpoint, chdb = https
    info = running(endpoint_file(tmp_path / "data"), chdb.path)
    assert info is not None
    assert info.tls
    assert info.url == f"https://127.0.0.1:{endpoint.port}"
    settings = settings_under(
        tmp_path,
        clickhouse=chdb,
        clickhouse_http=ClickHouseHttpSettings(
            password=SecretStr(PASSWORD), tls_ca_cert=pki.ca_cert
        ),
        worker=WorkerSettings(data_dir=tmp_path / "data"),
    )

    def query() -> tuple[int, str]:
        client, source = connect_reader(settings)
        try:
            return int(client.command("SELECT count() FROM t")), source
        finally:
            client.close()

    count, source = await asyncio.to_thread(query)
    assert count == 2
    assert source.startswith(info.url)


def test_a_key_without_its_certificate_and_a_broken_certificate_are_refused(
    tmp_path: Path, pki: Pki
) -> None:
    with pytest.raises(ValueError, match="CLICKHOUSE_HTTP_TLS_KEY needs CLICKHOUSE_HTTP_TLS_CERT"):
        ClickHouseHttpSettings(tls_key=pki.server_key)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_HTTP_TLS_CERT"):
        ClickHouseEndpoint(
            ClickHouseHttpSettings(port=0, tls_cert=broken),
            ChdbBackend(tmp_path / "never-opened"),
            database="worker",
            chdb_path=tmp_path / "never-opened",
            data_dir=tmp_path / "data",
        )
