"""One contract, two token buckets: Redis (real server) and in-memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from tests.conftest import Services
from worker.errors import RateLimiterError
from worker.ratelimit.base import Ask, Limit, RateLimiter
from worker.ratelimit.memory import MemoryRateLimiter
from worker.ratelimit.redis import RedisRateLimiter
from worker.settings import RedisSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

Factory = Callable[[], RateLimiter]


def one(key: str, count: int, rate: float, burst: int) -> Ask:
    return Ask(((key, Limit(rate, burst)),), count)


@pytest_asyncio.fixture(params=["redis", "memory"])
async def make_limiter(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[Factory]:
    made: list[RateLimiter] = []

    def make() -> RateLimiter:
        if request.param == "redis":
            settings = RedisSettings(
                url=services.redis_url,  # type: ignore[arg-type]
                key_prefix=f"test-{uuid.uuid4().hex[:8]}:",
            )
            limiter: RateLimiter = RedisRateLimiter(settings)
        else:
            limiter = MemoryRateLimiter()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_grants_up_to_the_burst_then_refuses_with_a_retry_time(
    make_limiter: Factory,
) -> None:
    limiter = make_limiter()
    [first] = await limiter.acquire([one("tenant:a", 3, 10.0, 5)])
    [second] = await limiter.acquire([one("tenant:a", 4, 10.0, 5)])
    assert (first.granted, first.retry_after_ms) == (3, 0)
    assert second.granted == 2
    assert 0 < second.retry_after_ms <= 100  # one token at 10/s


async def test_keys_are_independent_and_answered_in_order(make_limiter: Factory) -> None:
    limiter = make_limiter()
    grants = await limiter.acquire(
        [one("tenant:a", 5, 1.0, 2), one("tenant:b", 1, 1.0, 2), one("tenant:c", 2, 1.0, 2)]
    )
    assert [g.granted for g in grants] == [2, 1, 2]
    assert grants[0].retry_after_ms > 0
    assert grants[1].retry_after_ms == 0


async def test_tokens_refill_at_the_rate(make_limiter: Factory) -> None:
    limiter = make_limiter()
    [drained] = await limiter.acquire([one("tenant:a", 2, 20.0, 2)])
    assert drained.granted == 2
    await asyncio.sleep(0.16)  # about three tokens' worth at 20/s, capped by the burst of 2
    [refilled] = await limiter.acquire([one("tenant:a", 5, 20.0, 2)])
    assert refilled.granted == 2


async def test_asks_sharing_a_bucket_are_served_in_order_and_take_from_every_bucket(
    make_limiter: Factory,
) -> None:
    limiter = make_limiter()
    tenant = ("tenant:a", Limit(100.0, 10))
    operation = ("op:a:quote", Limit(1.0, 3))
    grants = await limiter.acquire([Ask((tenant, operation), 5), Ask((tenant,), 10)])
    assert [g.granted for g in grants] == [3, 7]
    assert grants[0].retry_after_ms > 0
    [after] = await limiter.acquire([Ask((tenant,), 1)])
    assert after.granted == 0, "the tenant bucket was drained by both asks"


async def test_an_unreachable_redis_is_a_rate_limiter_error() -> None:
    settings = RedisSettings(
        url="redis://127.0.0.1:1/0",  # type: ignore[arg-type]
        socket_timeout_s=0.5,
    )
    limiter = RedisRateLimiter(settings)
    try:
        with pytest.raises(RateLimiterError):
            await limiter.acquire([one("tenant:a", 1, 10.0, 5)])
    finally:
        await limiter.close()
