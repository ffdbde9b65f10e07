"""The in-memory token bucket (the reference for the Redis script's semantics)."""

from __future__ import annotations

import asyncio

from worker.ratelimit.base import Ask, Grant, Limit
from worker.ratelimit.memory import MemoryRateLimiter


class Clock:
    """A clock the test moves by hand (by binary fractions, so sums stay exact)."""

    def __init__(self) -> None:
        self.now = 64.0

    def __call__(self) -> float:
        return self.now


def one(key: str, count: int, rate: float, burst: int) -> Ask:
    return Ask(((key, Limit(rate, burst)),), count)


def acquire(limiter: MemoryRateLimiter, *asks: Ask) -> list[Grant]:
    return asyncio.run(limiter.acquire(list(asks)))


def test_a_full_bucket_grants_up_to_its_burst() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    assert acquire(limiter, one("a", 3, 10.0, 5)) == [Grant(3, 0)]
    # Two tokens left; one more is refused until it refills at 10/s: 100 ms.
    assert acquire(limiter, one("a", 3, 10.0, 5)) == [Grant(2, 100)]


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    acquire(limiter, one("a", 5, 10.0, 5))
    clock.now += 0.25
    # 2.5 tokens: two granted, the half left needs another 50 ms to make a whole one.
    assert acquire(limiter, one("a", 5, 10.0, 5)) == [Grant(2, 50)]
    clock.now += 60.0
    assert acquire(limiter, one("a", 9, 10.0, 5)) == [Grant(5, 100)]


def test_keys_have_their_own_buckets() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    assert acquire(limiter, one("a", 2, 1.0, 2), one("b", 1, 1.0, 2), one("a", 1, 1.0, 2)) == [
        Grant(2, 0),
        Grant(1, 0),
        Grant(0, 1000),
    ]


def test_an_ask_on_two_buckets_gets_what_the_emptier_one_has() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    tenant = ("tenant:a", Limit(100.0, 10))
    operation = ("op:a:quote", Limit(1.0, 3))
    grants = acquire(limiter, Ask((tenant, operation), 5), Ask((tenant,), 10))
    # The operation bucket allows 3; the tenant bucket then has 7 left for the other ask.
    assert grants == [Grant(3, 1000), Grant(7, 10)]
