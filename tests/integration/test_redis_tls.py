"""The worker's Redis clients over real TLS, with certificate verification and an ACL user.

A dedicated ``redis-server`` (TLS only, default user disabled) is started with a
throwaway CA; the shared Redis is not involved.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.settings import settings_under
from tests.support.tls import make_pki
from tests.support.tls_redis import KEY_PREFIX, USER, TlsRedis, tls_redis
from worker.auth.credentials.redis import RedisCredentialStore
from worker.auth.keys import KeyManager
from worker.auth.secrets import SecretBox, new_master_key
from worker.doctor import check_redis
from worker.errors import CacheError, RateLimiterError
from worker.ratelimit.base import Ask, Limit
from worker.ratelimit.redis import RedisRateLimiter
from worker.settings import RedisSettings

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    with tls_redis(tmp_path_factory.mktemp("tls-redis"), secrets.token_urlsafe(16)) as running:
        yield running


def settings_for(server: TlsRedis, **values: Any) -> RedisSettings:
    chosen: dict[str, Any] = {
        "url": SecretStr(server.url),
        "username": USER,
        "password": SecretStr(server.password),
        "tls_ca_cert": server.pki.ca_cert,
        "key_prefix": KEY_PREFIX,
        **values,
    }
    return RedisSettings(**chosen)


@pytest.mark.asyncio
async def test_rate_limiter_and_credential_store_work_over_verified_tls(server: TlsRedis) -> None:
    settings = settings_for(server)
    limiter = RedisRateLimiter(settings)
    store = RedisCredentialStore(settings)
    try:
        grants = await limiter.acquire([Ask((("tenant:tls", Limit(1.0, 3)),), 5)])
        assert [grant.granted for grant in grants] == [3]
        box = SecretBox(base64.urlsafe_b64decode(new_master_key()))
        issued = await KeyManager(store, box).create("acme", ["price:read"], description="tls")
        found = await store.get_many([issued.credential.key_id, "rk_unknown"])
        assert list(found) == [issued.credential.key_id]
        assert found[issued.credential.key_id].tenant == "acme"
    finally:
        await limiter.close()
        await store.close()


@pytest.mark.asyncio
async def test_the_doctor_reaches_redis_through_the_same_settings(
    server: TlsRedis, tmp_path: Path
) -> None:
    settings = settings_under(tmp_path, redis=settings_for(server))
    [finding] = await check_redis(settings, timeout_s=5)
    assert (finding.check, finding.status) == ("redis", "ok"), finding.detail


@pytest.mark.asyncio
async def test_a_server_certificate_from_another_ca_is_refused(
    server: TlsRedis, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path, name="stranger")
    limiter = RedisRateLimiter(settings_for(server, tls_ca_cert=stranger.ca_cert))
    try:
        with pytest.raises(RateLimiterError, match="certificate verify failed") as refused:
            await limiter.acquire([Ask((("tenant:tls", Limit(1.0, 3)),), 1)])
        assert refused.value.code == "rate_limiter_unavailable"
    finally:
        await limiter.close()


@pytest.mark.asyncio
async def test_a_wrong_password_is_the_typed_error_and_never_quoted(server: TlsRedis) -> None:
    wrong = "not-the-" + server.password
    store = RedisCredentialStore(settings_for(server, password=SecretStr(wrong)))
    try:
        with pytest.raises(CacheError, match=r"WRONGPASS|invalid username-password") as refused:
            await store.get_many(["rk_any"])
        assert refused.value.code == "cache_unavailable"
        assert wrong not in str(refused.value)
        assert server.password not in str(refused.value)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_the_acl_user_cannot_reach_keys_outside_its_prefix(server: TlsRedis) -> None:
    store = RedisCredentialStore(settings_for(server, key_prefix="other-app:"))
    try:
        with pytest.raises(CacheError, match=r"NOPERM|no permissions"):
            await store.get_many(["rk_any"])
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_plaintext_client_gets_nothing_from_the_tls_port(server: TlsRedis) -> None:
    plain = RedisSettings(
        url=SecretStr(f"redis://localhost:{server.port}/0"),
        username=USER,
        password=SecretStr(server.password),
        key_prefix=KEY_PREFIX,
        socket_timeout_s=2.0,
    )
    limiter = RedisRateLimiter(plain)
    try:
        with pytest.raises(RateLimiterError):
            await limiter.acquire([Ask((("tenant:tls", Limit(1.0, 3)),), 1)])
    finally:
        await limiter.close()
