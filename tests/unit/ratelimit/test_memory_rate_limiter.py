"""The in-memory token bucket (the reference for the Redis script's semantics)."""

from __future__ import annotations

import asyncio

from worker.ratelimit.base import Grant
from worker.ratelimit.memory import MemoryRateLimiter


class Clock:
    """A clock the test moves by hand (by binary fractions, so sums stay exact)."""

    def __init__(self) -> None:
        self.now = 64.0

    def __call__(self) -> float:
        return self.now


def acquire(limiter: MemoryRateLimiter, *wants: tuple[str, int]) -> list[Grant]:
    return asyncio.run(limiter.acquire(list(wants)))


def test_a_full_bucket_grants_up_to_its_burst() -> None:
    limiter = MemoryRateLimiter(rate=10.0, burst=5, clock=Clock())
    assert acquire(limiter, ("a", 3)) == [Grant(3, 0)]
    # Two tokens left; one more is refused until it refills at 10/s: 100 ms.
    assert acquire(limiter, ("a", 3)) == [Grant(2, 100)]


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(rate=10.0, burst=5, clock=clock)
    acquire(limiter, ("a", 5))
    clock.now += 0.25
    # 2.5 tokens: two granted, the half left needs another 50 ms to make a whole one.
    assert acquire(limiter, ("a", 5)) == [Grant(2, 50)]
    clock.now += 60.0
    assert acquire(limiter, ("a", 9)) == [Grant(5, 100)]  # the first refused token: 100 ms


def test_keys_have_their_own_buckets() -> None:
    limiter = MemoryRateLimiter(rate=1.0, burst=2, clock=Clock())
    assert acquire(limiter, ("a", 2), ("b", 1), ("a", 1)) == [
        Grant(2, 0),
        Grant(1, 0),
        Grant(0, 1000),
    ]
