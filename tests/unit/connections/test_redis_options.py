"""What ``REDIS_*`` settings turn into inside the real redis-py client: URL, ACL user, TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from redis.asyncio.connection import Connection, SSLConnection

from tests.support.tls import Pki, make_pki
from worker.connections.redis import redis_client
from worker.settings import RedisSettings

PASSWORD = "redis-pw-Hk27"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def connection_of(settings: RedisSettings) -> Any:
    """The connection the client would open first (not connected), then the client is closed."""
    client = redis_client(settings)
    try:
        return client.connection_pool.make_connection()
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_rediss_verifies_against_the_configured_ca_and_logs_in_as_the_acl_user(
    pki: Pki,
) -> None:
    settings = RedisSettings(
        url=SecretStr("rediss://cache.internal:6380/2"),
        username="worker",
        password=SecretStr(PASSWORD),
        tls_ca_cert=pki.ca_cert,
        socket_timeout_s=1.5,
    )
    connection = await connection_of(settings)
    assert isinstance(connection, SSLConnection)
    assert (connection.host, connection.port, connection.db) == ("cache.internal", 6380, 2)
    assert (connection.username, connection.password) == ("worker", PASSWORD)
    assert connection.socket_timeout == 1.5
    context = connection.ssl_context.get()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "test CA"} in subjects


@pytest.mark.asyncio
async def test_a_client_certificate_is_presented_for_mutual_tls(pki: Pki) -> None:
    settings = RedisSettings(
        url=SecretStr("rediss://127.0.0.1:6380/0"),
        tls_ca_cert=pki.ca_cert,
        tls_client_cert=pki.client_cert,
        tls_client_key=pki.client_key,
    )
    connection = await connection_of(settings)
    assert (connection.certfile, connection.keyfile) == (
        str(pki.client_cert),
        str(pki.client_key),
    )
    # Loading the chain proves the pair is usable, not only that the paths were passed on.
    assert connection.ssl_context.get().verify_mode == ssl.CERT_REQUIRED


@pytest.mark.asyncio
async def test_verification_is_off_only_when_asked() -> None:
    settings = RedisSettings(url=SecretStr("rediss://127.0.0.1:6380/0"), tls_verify=False)
    context = (await connection_of(settings)).ssl_context.get()
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.asyncio
async def test_a_redis_url_is_plaintext_with_the_credentials_of_the_url() -> None:
    settings = RedisSettings(url=SecretStr(f"redis://worker:{PASSWORD}@127.0.0.1:6379/0"))
    connection = await connection_of(settings)
    assert isinstance(connection, Connection)
    assert not isinstance(connection, SSLConnection)
    assert (connection.username, connection.password) == ("worker", PASSWORD)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in settings.describe()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls_ca_cert": Path(__file__)}, "REDIS_TLS_CA_CERT need a rediss:// REDIS_URL"),
        ({"tls_verify": False}, "REDIS_TLS_VERIFY need a rediss://"),
        (
            {"url": SecretStr("redis://:a@h:6379/0"), "password": SecretStr("b")},
            "both in REDIS_URL and in REDIS_PASSWORD",
        ),
        ({"url": SecretStr("http://h:6379")}, "redis://, rediss:// or unix://"),
        (
            {"url": SecretStr("rediss://h:6380"), "tls_ca_cert": Path("/nonexistent/ca.pem")},
            "no such file",
        ),
    ],
)
def test_contradictory_redis_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        RedisSettings(**values)
    assert "a@h" not in str(refused.value), "the URL (with its password) is never quoted"
