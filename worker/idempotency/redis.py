"""Outcomes in Redis: one MGET per batch to look up, one script call of SET NX EX to store."""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError

from worker.connections.redis import redis_client
from worker.errors import CacheError
from worker.flow.records import StoredOutcome
from worker.idempotency.base import dump, load
from worker.settings import RedisSettings

#: SET key value EX ttl NX for every key: one command for the whole batch. A
#: pipeline of a thousand SETs costs the client a command object, an encoding and
#: a parsed reply each; the script's arguments are packed once.
_PUT_MANY = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[i + 1], 'EX', ttl, 'NX')
end
return #KEYS
"""


class RedisOutcomeStore:
    """The Redis :class:`~worker.idempotency.base.OutcomeStore` (keys ``{prefix}idem:...``)."""

    def __init__(self, settings: RedisSettings) -> None:
        self._client = redis_client(settings)
        self._prefix = f"{settings.key_prefix}idem:"
        self._put_many = self._client.register_script(_PUT_MANY)

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
        keys = [self._prefix + key for key, _ in items]
        try:
            await self._put_many(keys=keys, args=[ttl_s, *(dump(outcome) for _, outcome in items)])
        except (RedisError, OSError) as exc:
            raise CacheError(f"idempotency store unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
