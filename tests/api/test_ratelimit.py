"""The cost budget's leases (api/ratelimit.py) against the real Redis: a caller never gets more
than the shared bucket holds, whichever process serves them; a request is refused only when
the bucket, less what other processes hold unspent, cannot pay for it; leases save round
trips; and idle leases go back to the bucket."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.api.ratelimit import RateLimiter
from tests.conftest import RUN_ID

# So slow a refill that no test can see it (the arithmetic below allows for it).
RATE = 1e-6
EPSILON = 0.01


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(redis_url: str, prefix: str, capacity: int, clock: FakeClock) -> RateLimiter:
    return RateLimiter(redis_url, prefix, capacity, RATE, sync_seconds=1.0, clock=clock)


async def bucket_tokens(redis_url: str, prefix: str, key: str) -> float | None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        value = await client.hget(f"{prefix}:cost:{key}", "tokens")
    finally:
        await client.aclose()
    return None if value is None else float(value)


def new_prefix() -> str:
    return f"signoff-test-{RUN_ID}-rl-{uuid.uuid4().hex[:8]}"


async def test_requests_are_served_from_a_lease_with_few_round_trips(redis_url):
    prefix, clock = new_prefix(), FakeClock()
    one = limiter(redis_url, prefix, 5000, clock)
    try:
        states = [await one.take("user:t:a", 10) for _ in range(100)]
        assert all(s.allowed for s in states)
        # each round trip takes the request's 10 points and a lease of 250 (a 20th of the
        # bucket): 26 requests per round trip
        assert one.round_trips == 4
        assert states[-1].remaining == 5000 - 1000
        await one.return_idle(everything=True)
    finally:
        await one.close()
    assert await bucket_tokens(redis_url, prefix, "user:t:a") == pytest.approx(4000, abs=EPSILON)


async def test_an_idle_lease_goes_back_to_the_bucket_after_sync_seconds(redis_url):
    prefix, clock = new_prefix(), FakeClock()
    one = limiter(redis_url, prefix, 5000, clock)
    try:
        await one.take("user:t:a", 10)
        assert await bucket_tokens(redis_url, prefix, "user:t:a") == pytest.approx(
            5000 - 10 - 250, abs=EPSILON
        )
        clock.now = 0.99
        assert await one.return_idle() == 0
        clock.now = 1.0
        assert await one.return_idle() == 1
        assert await bucket_tokens(redis_url, prefix, "user:t:a") == pytest.approx(
            4990, abs=EPSILON
        )
        # nothing is left to give back twice
        assert await one.return_idle(everything=True) == 0
    finally:
        await one.close()
    assert await bucket_tokens(redis_url, prefix, "user:t:a") == pytest.approx(4990, abs=EPSILON)


async def test_a_bucket_near_its_limit_is_decided_on_the_bucket_alone(redis_url):
    """Below half its capacity a bucket hands out no lease: two processes alternating spend
    exactly the capacity, and the next request is refused with a Retry-After."""
    prefix, clock = new_prefix(), FakeClock()
    one, two = (limiter(redis_url, prefix, 40, clock) for _ in range(2))
    try:
        spent = 0
        while spent + 4 <= 40:
            state = await (one if spent % 8 == 0 else two).take("user:t:a", 4)
            assert state.allowed, spent
            spent += 4
        refused = await two.take("user:t:a", 4)
        assert not refused.allowed
        assert refused.retry_after >= 1
        again = await one.take("user:t:a", 4)
        assert not again.allowed
    finally:
        await one.close()
        await two.close()


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 2), st.integers(1, 60)),
        st.tuples(st.just("refund"), st.integers(0, 2), st.integers(1, 30)),
        st.tuples(st.just("idle"), st.integers(0, 2), st.floats(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.integers(20, 400), operations=OPERATIONS)
async def test_no_caller_ever_gets_more_than_the_shared_bucket(redis_url, capacity, operations):
    """Three processes share one caller's bucket. At every step: what was granted, what the
    processes hold and what the bucket holds add up to the capacity; a refusal happens only
    when the bucket less the other processes' leases cannot pay; and once every lease is
    given back the bucket holds exactly what was not spent."""
    prefix, clock = new_prefix(), FakeClock()
    processes = [limiter(redis_url, prefix, capacity, clock) for _ in range(3)]
    key = "user:t:a"
    spent = 0  # granted minus refunded: what the caller has used
    charged: list[list[int]] = [[] for _ in processes]  # per process, refundable charges
    try:
        for kind, index, amount in operations:
            process = processes[index]
            if kind == "take":
                held_elsewhere = sum(
                    p._leases[key].points
                    for i, p in enumerate(processes)
                    if i != index and key in p._leases
                )
                state = await process.take(key, amount)
                if state.allowed:
                    spent += amount
                    charged[index].append(amount)
                else:
                    assert capacity - spent - held_elsewhere < amount
            elif kind == "refund" and charged[index]:
                back = min(amount, charged[index].pop())
                await process.take(key, -back)
                spent -= back
            elif kind == "idle":
                clock.now += amount
                await process.return_idle()
            held = sum(p._leases[key].points for p in processes if key in p._leases)
            in_bucket = await bucket_tokens(redis_url, prefix, key)
            if in_bucket is not None:
                assert spent + held + in_bucket == pytest.approx(capacity, abs=EPSILON)
            assert 0 <= spent <= capacity
        for process in processes:
            await process.return_idle(everything=True)
        in_bucket = await bucket_tokens(redis_url, prefix, key)
        assert (capacity if in_bucket is None else in_bucket) == pytest.approx(
            capacity - spent, abs=EPSILON
        )
    finally:
        for process in processes:
            await process.close()


async def test_concurrent_requests_on_several_processes_never_share_points(redis_url):
    """60 requests of 7 points at once, spread over three processes, against 100 points: at
    most 14 are granted, and the bucket ends holding exactly what they did not spend."""
    prefix, clock = new_prefix(), FakeClock()
    processes = [limiter(redis_url, prefix, 100, clock) for _ in range(3)]
    try:
        states = await asyncio.gather(*(processes[n % 3].take("user:t:a", 7) for n in range(60)))
        granted = sum(1 for s in states if s.allowed)
        assert 1 <= granted <= 100 // 7
        for process in processes:
            await process.return_idle(everything=True)
        in_bucket = await bucket_tokens(redis_url, prefix, "user:t:a")
        assert in_bucket == pytest.approx(100 - 7 * granted, abs=EPSILON)
    finally:
        for process in processes:
            await process.close()
