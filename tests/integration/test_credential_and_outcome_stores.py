"""One contract per port, run against Redis (real server) and the in-memory store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from tests.conftest import Services
from worker.auth.credentials.base import Credential, CredentialStore, SecretVersion
from worker.auth.credentials.memory import MemoryCredentialStore
from worker.auth.credentials.redis import RedisCredentialStore
from worker.errors import CacheError
from worker.flow.records import StoredOutcome
from worker.idempotency.base import OutcomeStore
from worker.idempotency.memory import MemoryOutcomeStore
from worker.idempotency.redis import RedisOutcomeStore
from worker.settings import RedisSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def redis_settings(services: Services) -> RedisSettings:
    return RedisSettings(
        url=services.redis_url,  # type: ignore[arg-type]
        key_prefix=f"test-{uuid.uuid4().hex[:8]}:",
    )


@pytest_asyncio.fixture(params=["redis", "memory"])
async def make_credentials(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[Callable[[], CredentialStore]]:
    made: list[CredentialStore] = []

    def make() -> CredentialStore:
        store: CredentialStore = (
            RedisCredentialStore(redis_settings(services))
            if request.param == "redis"
            else MemoryCredentialStore()
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest_asyncio.fixture(params=["redis", "memory"])
async def make_outcomes(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[Callable[[], OutcomeStore]]:
    made: list[OutcomeStore] = []

    def make() -> OutcomeStore:
        store: OutcomeStore = (
            RedisOutcomeStore(redis_settings(services))
            if request.param == "redis"
            else MemoryOutcomeStore()
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def credential(key_id: str, tenant: str = "acme") -> Credential:
    return Credential(
        key_id=key_id,
        tenant=tenant,
        scopes=frozenset({"price:read"}),
        versions=(SecretVersion(version=1, sealed="c2VhbGVk", created_at=time.time()),),
        created_at=time.time(),
    )


def outcome(offset: int, fingerprint: str = "fp") -> StoredOutcome:
    return StoredOutcome(fingerprint, "requests", 1, offset, "ok", {"n": offset}, None)


async def test_credentials_are_found_by_id_in_one_call(
    make_credentials: Callable[[], CredentialStore],
) -> None:
    store = make_credentials()
    await store.put(credential("rk_a"))
    await store.put(credential("rk_b", tenant="globex"))
    found = await store.get_many(["rk_a", "rk_missing", "rk_b"])
    assert set(found) == {"rk_a", "rk_b"}
    assert found["rk_b"].tenant == "globex"
    assert found["rk_a"] == credential("rk_a").model_copy(
        update={"created_at": found["rk_a"].created_at, "versions": found["rk_a"].versions}
    )


async def test_put_replaces_and_list_is_ordered(
    make_credentials: Callable[[], CredentialStore],
) -> None:
    store = make_credentials()
    await store.put(credential("rk_b"))
    await store.put(credential("rk_a"))
    await store.put(credential("rk_b").model_copy(update={"status": "revoked"}))
    listed = await store.list()
    assert [(c.key_id, c.status) for c in listed] == [("rk_a", "active"), ("rk_b", "revoked")]


async def test_outcomes_are_kept_first_write_wins_and_expire(
    make_outcomes: Callable[[], OutcomeStore],
) -> None:
    store = make_outcomes()
    assert await store.get_many(["k1", "k2"]) == [None, None]
    await store.put_many([("k1", outcome(1)), ("k2", outcome(2))], ttl_s=60)
    await store.put_many([("k1", outcome(9, "other"))], ttl_s=60)
    assert await store.get_many(["k2", "k1", "k3"]) == [outcome(2), outcome(1), None]
    await store.put_many([("short", outcome(3))], ttl_s=1)
    await asyncio.sleep(1.2)
    assert await store.get_many(["short"]) == [None]


async def test_unreachable_redis_is_a_cache_error() -> None:
    settings = RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout_s=0.5)  # type: ignore[arg-type]
    credentials, outcomes = RedisCredentialStore(settings), RedisOutcomeStore(settings)
    try:
        with pytest.raises(CacheError):
            await credentials.get_many(["rk_a"])
        with pytest.raises(CacheError):
            await outcomes.get_many(["k"])
        with pytest.raises(CacheError):
            await outcomes.put_many([("k", outcome(1))], ttl_s=5)
    finally:
        await credentials.close()
        await outcomes.close()
