"""The rate limiter port: token buckets, asked for a whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Limit:
    """A bucket of ``burst`` tokens refilled at ``rate`` tokens per second."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Ask:
    """``count`` requests, each needing one token from every bucket in ``buckets``.

    A request passes only if all its buckets (e.g. the tenant's and the
    tenant+operation's) have a token; the granted count is taken from each.
    """

    buckets: tuple[tuple[str, Limit], ...]
    count: int


@dataclass(frozen=True, slots=True)
class Grant:
    """How many of an ask's requests were granted.

    ``retry_after_ms`` is when the first refused request could pass (0 when
    everything was granted).
    """

    granted: int
    retry_after_ms: int


class RateLimiter(Protocol):
    """Token buckets by key. Asks sharing a bucket are served in order."""

    async def acquire(self, asks: Sequence[Ask]) -> list[Grant]:
        """Grant what each ask can have, atomically and in one round trip.

        Raises :class:`~worker.errors.RateLimiterError` when the store is unreachable.
        """

    async def close(self) -> None:
        """Release connections."""
