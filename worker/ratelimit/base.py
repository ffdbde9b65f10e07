"""The rate limiter port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Grant:
    """How many of the tokens asked for one key were granted.

    ``retry_after_ms`` is when the first refused token will be available again
    (0 when everything was granted).
    """

    granted: int
    retry_after_ms: int


class RateLimiter(Protocol):
    """Token buckets of ``burst`` tokens refilled at ``rate`` per second, one per key."""

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> list[Grant]:
        """Take up to ``count`` tokens for each ``(key, count)``, in one round trip.

        Raises :class:`~worker.errors.RateLimiterError` when the store is unreachable.
        """

    async def close(self) -> None:
        """Release connections."""
