"""Shared rate limits against a real redis-server: two limiters stand for two replicas on one Redis.

Refill is continuous (a bucket's size per minute), so checks that depend on time bound the result by the
elapsed time the test measured itself: they hold however slow the machine is.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from lmdeck.db.redis_link import RedisLink
from lmdeck.policy.ratelimit import Demand
from lmdeck.policy.ratelimit_redis import RedisRateLimiter
from lmdeck.protocol import APIError
from lmdeck.testing.redis_server import RedisServer, redis_link

#: Generous bound on any one call while Redis is away (redis.timeout is 1 s by default).
NEVER_HANGS = 30.0


async def test_two_replicas_never_admit_more_than_the_bucket_holds(links: list[RedisLink]) -> None:
    replicas = [RedisRateLimiter(link) for link in links]
    limit, amount = 1000, 10
    demand = [Demand("key:k1:tokens", limit=limit, amount=amount)]
    started = time.monotonic()
    grants = await asyncio.gather(*(replicas[i % 2].acquire(demand) for i in range(400)))
    elapsed = time.monotonic() - started
    admitted = sum(g.admitted for g in grants)
    # A full bucket, plus whatever refilled (limit per minute) while the requests ran, and not a unit more.
    assert limit // amount <= admitted
    assert admitted * amount <= limit + elapsed * limit / 60
    assert all(g.refused == demand[0] and g.retry_after is not None for g in grants if not g.admitted)
    assert not any(g.fallback for g in grants)


async def test_every_demand_is_checked_before_any_is_taken(links: list[RedisLink]) -> None:
    limiter = RedisRateLimiter(links[0])
    small = Demand("key:k1:requests", limit=60_000, amount=1, unit="requests")
    tight = Demand("team:t1:tokens", limit=100, amount=80)
    assert (await limiter.acquire([small, tight])).admitted
    refused = await limiter.acquire([small, tight])
    assert not refused.admitted and refused.refused == tight
    # The refused request took nothing from the first bucket: only the first grant's unit is gone.
    states = {s.bucket: s for s in refused.states}
    assert states[small.bucket].remaining >= 60_000 - 1
    too_big = await limiter.acquire([Demand("key:k2:tokens", limit=10, amount=11)])
    assert not too_big.admitted and too_big.retry_after is None


async def test_a_bucket_refills_by_redis_time_for_every_replica(links: list[RedisLink]) -> None:
    first, second = (RedisRateLimiter(link) for link in links)
    limit = 6000  # 100 a second: one unit is back within milliseconds
    started = time.monotonic()
    assert (await first.acquire([Demand("key:k1:tokens", limit=limit, amount=limit)])).admitted
    refused = await second.acquire([Demand("key:k1:tokens", limit=limit, amount=limit)])
    elapsed = time.monotonic() - started
    assert not refused.admitted and refused.retry_after is not None
    # Empty a moment ago: waiting for the whole bucket takes a minute less what refilled since.
    assert 60.0 - elapsed - 1.0 <= refused.retry_after <= 60.0
    deadline = time.monotonic() + NEVER_HANGS
    while not (await second.acquire([Demand("key:k1:tokens", limit=limit, amount=1)])).admitted:
        assert time.monotonic() < deadline, "the bucket never refilled"
        await asyncio.sleep(0.02)


async def test_settling_gives_back_the_unused_part_and_may_leave_a_debt(links: list[RedisLink]) -> None:
    limiter, other = (RedisRateLimiter(link) for link in links)
    bucket = "key:k1:tokens"
    started = time.monotonic()
    grant = await limiter.acquire([Demand(bucket, limit=1000, amount=800)])
    assert grant.states[0].remaining == 200
    await limiter.settle(grant, {bucket: 100})
    await limiter.settle(grant, {bucket: 0})  # once only
    after = await other.acquire([Demand(bucket, limit=1000, amount=1)])
    assert after.states[0].remaining >= 1000 - 100 - 1
    # Used far more than estimated: the bucket goes into debt, seen by the other replica too.
    grant = await limiter.acquire([Demand(bucket, limit=1000, amount=500)])
    await limiter.settle(grant, {bucket: 2000})
    refused = await other.acquire([Demand(bucket, limit=1000, amount=1)])
    elapsed = time.monotonic() - started
    assert not refused.admitted and refused.states[0].remaining == 0
    # level ≈ 1000 - 101 - 2000 (+ refill): about 1100 units (66 s) short, less what refilled since start.
    assert refused.retry_after is not None and 66.0 - elapsed - 1.0 <= refused.retry_after <= 67.0


async def test_idle_buckets_expire(links: list[RedisLink]) -> None:
    limiter = RedisRateLimiter(links[0])
    await limiter.acquire([Demand("key:k1:tokens", limit=600, amount=600)])
    ttl = await links[0].client.ttl(links[0].key("rl", "key:k1:tokens"))
    # Empty: full again in a minute, then two minutes' grace.
    assert 60 < ttl <= 60 + 120


async def test_an_open_policy_counts_in_this_process_while_redis_is_down(
    redis_server: RedisServer, redis_url: str
) -> None:
    link = redis_link(redis_url, on_unavailable={"rate_limits": "open"})
    limiter = RedisRateLimiter(link)
    demand = [Demand("key:k1:tokens", limit=100, amount=60)]
    redis_server.kill()
    grant = await asyncio.wait_for(limiter.acquire(demand), NEVER_HANGS)
    assert grant.admitted and grant.fallback
    await asyncio.wait_for(limiter.settle(grant, {"key:k1:tokens": 10}), NEVER_HANGS)
    # The fallback bucket got 50 back: another 60 fits in it.
    assert (await asyncio.wait_for(limiter.acquire(demand), NEVER_HANGS)).admitted
    await link.close()


async def test_a_closed_policy_refuses_with_a_503_when_redis_stops_answering(
    redis_server: RedisServer, redis_url: str
) -> None:
    link = redis_link(redis_url, on_unavailable={"rate_limits": "closed"}, retry_interval=60, timeout=1.0)
    limiter = RedisRateLimiter(link)
    demand = [Demand("key:k1:requests", limit=10, amount=1, unit="requests")]
    assert (await limiter.acquire(demand)).admitted
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)  # alive but silent: only the timeout ends the wait
    try:
        for _ in range(2):  # the first waits out redis.timeout, the second is refused at once
            with pytest.raises(APIError) as refused:
                await asyncio.wait_for(limiter.acquire(demand), NEVER_HANGS)
            assert refused.value.status == 503 and refused.value.code == "shared_state_unavailable"
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    await link.close()
