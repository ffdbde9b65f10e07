"""An in-process token bucket with the same semantics as the Redis script."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from worker.ratelimit.base import Ask, Grant


class MemoryRateLimiter:
    """Buckets in a dict; the clock is injectable so tests control time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, asks: Sequence[Ask]) -> list[Grant]:
        now = self._clock()
        tokens: dict[str, float] = {}
        for ask in asks:
            for key, limit in ask.buckets:
                if key not in tokens:
                    level, stamp = self._buckets.get(key, (float(limit.burst), now))
                    tokens[key] = min(float(limit.burst), level + (now - stamp) * limit.rate)
        grants = []
        for ask in asks:
            granted = ask.count
            for key, _ in ask.buckets:
                granted = min(granted, math.floor(tokens[key]))
            retry_after_ms = 0
            for key, limit in ask.buckets:
                tokens[key] -= granted
                if granted < ask.count and tokens[key] < 1.0:
                    wait = math.ceil((1.0 - tokens[key]) / limit.rate * 1000.0)
                    retry_after_ms = max(retry_after_ms, wait)
            grants.append(Grant(granted, retry_after_ms))
        for key, level in tokens.items():
            self._buckets[key] = (level, now)
        return grants

    async def close(self) -> None:
        return None
