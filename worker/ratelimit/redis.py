"""Token buckets in Redis: one Lua script call per batch, atomic, on the server's clock."""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError

from worker.connections.redis import redis_client
from worker.errors import RateLimiterError
from worker.ratelimit.base import Ask, Grant
from worker.settings import RedisSettings

# KEYS: every bucket of the batch once. ARGV: rate and burst of each key, then
# each ask as: count, number of buckets, the buckets' 1-based KEYS indexes.
# Returns a flat list: granted, retry_after_ms for each ask.
# Redis's own TIME is the clock, so workers with skewed clocks share buckets fairly.
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, tokens = {}, {}, {}
for i, key in ipairs(KEYS) do
  rate[i] = tonumber(ARGV[2 * i - 1])
  burst[i] = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local level = tonumber(state[1])
  local ts = tonumber(state[2])
  if level == nil then
    level = burst[i]
    ts = now
  end
  tokens[i] = math.min(burst[i], level + math.max(0, now - ts) * rate[i] / 1000)
end
local out = {}
local p = 2 * #KEYS + 1
while p <= #ARGV do
  local want = tonumber(ARGV[p])
  local nb = tonumber(ARGV[p + 1])
  local granted = want
  for j = 1, nb do
    granted = math.min(granted, math.floor(tokens[tonumber(ARGV[p + 1 + j])]))
  end
  local retry = 0
  for j = 1, nb do
    local k = tonumber(ARGV[p + 1 + j])
    tokens[k] = tokens[k] - granted
    if granted < want and tokens[k] < 1 then
      retry = math.max(retry, math.ceil((1 - tokens[k]) / rate[k] * 1000))
    end
  end
  out[#out + 1] = granted
  out[#out + 1] = retry
  p = p + 2 + nb
end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst[i] / rate[i] * 1000) + 1000)
end
return out
"""


class RedisRateLimiter:
    """The Redis implementation of :class:`~worker.ratelimit.base.RateLimiter`."""

    def __init__(self, settings: RedisSettings) -> None:
        self._client = redis_client(settings)
        self._prefix = f"{settings.key_prefix}bucket:"
        self._script = self._client.register_script(_BUCKET_SCRIPT)

    async def acquire(self, asks: Sequence[Ask]) -> list[Grant]:
        if not asks:
            return []
        index: dict[str, int] = {}
        limits: list[float] = []
        for ask in asks:
            for key, limit in ask.buckets:
                if key not in index:
                    index[key] = len(index) + 1
                    limits.extend((limit.rate, limit.burst))
        args: list[float] = list(limits)
        for ask in asks:
            args.extend((ask.count, len(ask.buckets), *(index[key] for key, _ in ask.buckets)))
        try:
            flat = await self._script(keys=[self._prefix + key for key in index], args=args)
        except (RedisError, OSError) as exc:
            raise RateLimiterError(f"rate limiter unavailable: {exc}") from exc
        return [Grant(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def close(self) -> None:
        await self._client.aclose()
