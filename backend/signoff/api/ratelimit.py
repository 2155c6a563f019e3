"""A per-caller token bucket in Redis, shared by every API process, spent through leases.

The bucket lives in Redis. One Lua script reads it, refills it for the time elapsed (Redis's
own clock, so API processes with skewed clocks agree), gives back what the process returns,
takes the request's cost and writes it back; Redis runs scripts atomically, so concurrent
requests of one caller on different processes never both spend the same points.

A round trip per request would cost every request a Redis call. So the script also hands
the process a *lease*: up to `lease` more points, taken from the bucket like any others,
that the process then spends locally on the caller's next requests without asking Redis.
Points only ever leave the bucket before they are spent, so a caller never gets more than
the bucket holds, whichever process serves them. What a lease changes:

- leases come only from the upper half of a bucket (the script never leaves less than half
  the capacity behind a lease), so a caller near the limit is decided on the bucket alone;
- a lease spent or not is given back with the caller's next round trip, and one left idle
  for `sync_seconds` is given back by the process (`return_idle`, run every `sync_seconds`),
  so another process can refuse a caller early by at most one lease, for at most that long;
- a refund (an operation that needed less than it was charged) goes into the lease too.

Refusals, `Retry-After` and the bucket's arithmetic are the script's, as before; `remaining`
is what the bucket held after the last round trip plus the lease still unspent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger("signoff.api.ratelimit")

_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local returned = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate + returned)
local allowed = 1
local wait = 0
local leased = 0
if cost > 0 and tokens < cost then
  allowed = 0
  wait = (cost - tokens) / rate
else
  tokens = tokens - cost
  leased = math.max(0, math.min(lease, math.floor(tokens - capacity / 2)))
  tokens = tokens - leased
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(wait), leased}
"""


@dataclass(frozen=True)
class BucketState:
    """The outcome of taking points: whether they were granted, what is left, when to retry."""

    allowed: bool
    remaining: int
    retry_after: int


@dataclass
class _Lease:
    """Points of one caller's bucket held by this process, and what the bucket held after the
    last round trip."""

    points: int = 0
    bucket: float = 0.0
    used_at: float = 0.0


class RateLimiter:
    """Token buckets of `capacity` points refilled at `rate` points per second, per key."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        capacity: int,
        rate: float,
        *,
        lease: int | None = None,
        sync_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = aioredis.Redis.from_url(redis_url)
        self._script = self._redis.register_script(_TAKE)
        self._prefix = f"{prefix}:cost:"
        self.capacity = capacity
        self.rate = rate
        self.lease = capacity // 20 if lease is None else lease
        self.sync_seconds = sync_seconds
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._syncer: asyncio.Task[None] | None = None
        self.round_trips = 0  # Redis calls made (for tests and the benchmark)

    async def take(self, key: str, points: int) -> BucketState:
        """Take `points` from `key`'s bucket (a negative number refunds them)."""
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease()
        lease.used_at = self._clock()
        if points <= 0 or lease.points >= points:
            lease.points -= points
            return BucketState(True, self._remaining(lease), 0)
        self._start_syncer()
        returned, lease.points = lease.points, 0
        try:
            allowed, tokens, wait, leased = await self._call(key, points, returned, self.lease)
        except BaseException:
            lease.points += returned
            raise
        lease.points += int(leased)
        lease.bucket = float(tokens)
        return BucketState(
            allowed=bool(int(allowed)),
            remaining=self._remaining(lease),
            retry_after=math.ceil(float(wait)),
        )

    def _remaining(self, lease: _Lease) -> int:
        return max(0, min(self.capacity, math.floor(lease.bucket + lease.points)))

    async def _call(self, key: str, cost: int, returned: int, lease: int) -> list[Any]:
        self.round_trips += 1
        result: list[Any] = await self._script(
            keys=[self._prefix + key], args=[self.capacity, self.rate, cost, returned, lease]
        )
        return result

    async def return_idle(self, *, everything: bool = False) -> int:
        """Give back to their buckets the leases unused for `sync_seconds` (all of them with
        `everything`); returns how many leases were given back."""
        now = self._clock()
        idle = [
            key
            for key, lease in self._leases.items()
            if everything or now - lease.used_at >= self.sync_seconds
        ]
        given = 0
        for key in idle:
            lease = self._leases.pop(key)
            if lease.points > 0:
                try:
                    await self._call(key, 0, lease.points, 0)
                except BaseException:
                    self._leases.setdefault(
                        key, _Lease(used_at=lease.used_at)
                    ).points += lease.points
                    raise
                given += 1
        return given

    def _start_syncer(self) -> None:
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.get_running_loop().create_task(self._sync_forever())

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                await self.return_idle()
            except Exception:  # Redis unreachable: the leases stay and are tried again
                log.warning("could not give leases back to the rate-limit buckets", exc_info=True)

    async def close(self) -> None:
        """Give every lease back and close the Redis connections."""
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
        try:
            await self.return_idle(everything=True)
        except Exception:
            log.warning("could not give leases back to the rate-limit buckets", exc_info=True)
        await self._redis.aclose()
