"""Outcomes in Redis: one MGET per batch to look up, one pipeline of SET NX EX to store."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from worker.errors import CacheError
from worker.flow.records import StoredOutcome
from worker.idempotency.base import dump, load
from worker.settings import RedisSettings


class RedisOutcomeStore:
    """The Redis :class:`~worker.idempotency.base.OutcomeStore` (keys ``{prefix}idem:...``)."""

    def __init__(self, settings: RedisSettings) -> None:
        self._client = aioredis.Redis.from_url(
            settings.url.get_secret_value(),
            socket_timeout=settings.socket_timeout_s,
            socket_connect_timeout=settings.socket_timeout_s,
        )
        self._prefix = f"{settings.key_prefix}idem:"

    async def get_many(self, keys: Sequence[str]) -> list[StoredOutcome | None]:
        if not keys:
            return []
        try:
            values = await self._client.mget([self._prefix + key for key in keys])
        except (RedisError, OSError) as exc:
            raise CacheError(f"idempotency store unavailable: {exc}") from exc
        return [None if value is None else load(value) for value in values]

    async def put_many(self, items: Sequence[tuple[str, StoredOutcome]], ttl_s: int) -> None:
        if not items:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, outcome in items:
                    pipe.set(self._prefix + key, dump(outcome), ex=ttl_s, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheError(f"idempotency store unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
