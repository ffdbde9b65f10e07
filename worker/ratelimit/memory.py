"""An in-process token bucket with the same semantics as the Redis script."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from worker.ratelimit.base import Grant


class MemoryRateLimiter:
    """Buckets in a dict; the clock is injectable so tests control time."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> list[Grant]:
        now = self._clock()
        grants = []
        for key, count in wants:
            tokens, stamp = self._buckets.get(key, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - stamp) * self._rate)
            granted = min(count, math.floor(tokens))
            tokens -= granted
            retry_after_ms = 0
            if granted < count:
                retry_after_ms = math.ceil((1.0 - tokens) / self._rate * 1000.0)
            self._buckets[key] = (tokens, now)
            grants.append(Grant(granted, retry_after_ms))
        return grants

    async def close(self) -> None:
        return None
