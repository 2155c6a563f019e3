"""A per-caller token bucket in Redis, shared by every API process.

One Lua script reads the bucket, refills it for the time elapsed (Redis's own clock, so API
processes with skewed clocks agree), takes or refunds points and writes it back; Redis runs
scripts atomically, so concurrent requests of one caller on different processes never both
spend the same points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 1
local wait = 0
if cost > 0 and tokens < cost then
  allowed = 0
  wait = (cost - tokens) / rate
else
  tokens = math.min(capacity, tokens - cost)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(wait)}
"""


@dataclass(frozen=True)
class BucketState:
    """The outcome of taking points: whether they were granted, what is left, when to retry."""

    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter:
    """Token buckets of `capacity` points refilled at `rate` points per second, per key."""

    def __init__(self, redis_url: str, prefix: str, capacity: int, rate: float) -> None:
        self._redis = aioredis.Redis.from_url(redis_url)
        self._script = self._redis.register_script(_TAKE)
        self._prefix = f"{prefix}:cost:"
        self.capacity = capacity
        self.rate = rate

    async def take(self, key: str, points: int) -> BucketState:
        """Take `points` from `key`'s bucket (a negative number refunds them)."""
        allowed, tokens, wait = await self._script(
            keys=[self._prefix + key], args=[self.capacity, self.rate, points]
        )
        return BucketState(
            allowed=bool(int(allowed)),
            remaining=max(0, math.floor(float(tokens))),
            retry_after=math.ceil(float(wait)),
        )

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()
