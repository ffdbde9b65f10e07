"""Token buckets in Redis: one Lua script call per batch, atomic, on the server's clock."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from worker.errors import RateLimiterError
from worker.ratelimit.base import Grant
from worker.settings import RedisSettings

# KEYS: one bucket per key. ARGV: rate per second, burst, then one count per key.
# Returns a flat list: granted, retry_after_ms for each key.
# Redis's own TIME is the clock, so workers with skewed clocks share buckets fairly.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.ceil(burst / rate * 1000) + 1000
local out = {}
for i, key in ipairs(KEYS) do
  local want = tonumber(ARGV[i + 2])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil then
    tokens = burst
    ts = now
  end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  local granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
  local retry = 0
  if granted < want then
    retry = math.ceil((1 - tokens) / rate * 1000)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, ttl)
  out[#out + 1] = granted
  out[#out + 1] = retry
end
return out
"""


class RedisRateLimiter:
    """The Redis implementation of :class:`~worker.ratelimit.base.RateLimiter`."""

    def __init__(self, settings: RedisSettings, rate: float, burst: int) -> None:
        self._client = aioredis.Redis.from_url(
            settings.url.get_secret_value(),
            socket_timeout=settings.socket_timeout_s,
            socket_connect_timeout=settings.socket_timeout_s,
        )
        self._prefix = f"{settings.key_prefix}bucket:"
        self._script = self._client.register_script(_BUCKET_SCRIPT)
        self._rate = rate
        self._burst = burst

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> list[Grant]:
        if not wants:
            return []
        keys = [self._prefix + key for key, _ in wants]
        args = [self._rate, self._burst, *(count for _, count in wants)]
        try:
            flat = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise RateLimiterError(f"rate limiter unavailable: {exc}") from exc
        return [Grant(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def close(self) -> None:
        await self._client.aclose()
