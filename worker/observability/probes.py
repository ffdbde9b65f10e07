"""Dependency checks for readiness: Redis and ClickHouse (the broker's is in the monitor)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from worker.connections.redis import redis_client
from worker.settings import RedisSettings


class RedisProbe:
    """PING on a connection of its own, so a check never waits behind the rate limiter."""

    name = "redis"

    def __init__(self, settings: RedisSettings, *, required: bool) -> None:
        self.required = required
        self._client = redis_client(settings)

    async def check(self) -> str:
        started = time.perf_counter()
        await self._client.ping()
        return f"PING answered in {(time.perf_counter() - started) * 1000:.1f} ms"

    async def close(self) -> None:
        """Release the connection."""
        await self._client.aclose()


class Pingable(Protocol):
    """A sink that can reach its database once (``ClickHouseSink.ping``)."""

    async def ping(self) -> None:
        """Reach the database; raise when it cannot be reached."""


class ClickHouseProbe:
    """``SELECT 1`` through the sink's own thread, never more than one at a time.

    The sink owns the only client (chDB wants one owner), so the check queues
    behind an insert in progress; a check that outlives its timeout is not
    repeated until it has finished, so slow checks cannot pile up.
    """

    name = "clickhouse"
    required = True

    def __init__(self, sink: Pingable) -> None:
        self._sink = sink
        self._pending: asyncio.Future[None] | None = None

    async def check(self) -> str:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._sink.ping())
            # Its outcome is read here, or by this callback once nobody waits any more.
            self._pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        started = time.perf_counter()
        # Shielded: a timed-out check leaves the ping running instead of cancelling it.
        await asyncio.shield(self._pending)
        return f"SELECT 1 answered in {(time.perf_counter() - started) * 1000:.1f} ms"
