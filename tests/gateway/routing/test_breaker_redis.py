"""Breakers of two processes over one real Redis: what one sees the other sees, the half-open probe is
taken once, a trip reaches both, and a dead Redis follows redis.on_unavailable.breakers."""

from __future__ import annotations

import asyncio

import pytest

from lmdeck.db.redis_link import RedisLink
from lmdeck.gateway.routing.breaker import BreakerRecord, CircuitBreakers, Permit
from lmdeck.gateway.routing.breaker_redis import RedisBreakerStore, decode, encode
from lmdeck.protocol import APIError
from lmdeck.settings import BreakerSettings
from lmdeck.testing.redis_server import RedisServer, redis_link


class Clock:
    """A settable wall clock shared by both processes' breakers."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def replica(link: RedisLink, clock: Clock, **settings: float) -> CircuitBreakers:
    config = BreakerSettings.model_validate({"failure_threshold": 2, "reset_timeout": 10, **settings})
    return CircuitBreakers(config, RedisBreakerStore(link), clock=clock)


def test_records_round_trip_and_junk_reads_closed() -> None:
    record = BreakerRecord(state="half_open", failures=3, opened_at=1_700_000_000.25, probes=1)
    assert decode({str(k).encode(): str(v).encode() for k, v in encode(record).items()}) == record
    assert decode({}) == BreakerRecord()
    assert decode({b"state": b"melted"}) == BreakerRecord()
    assert decode({b"state": b"open", b"failures": b"x"}) == BreakerRecord()


def test_one_replica_opens_the_other_sees_it_open(redis_url: str) -> None:
    async def main() -> None:
        clock = Clock()
        link_a, link_b = redis_link(redis_url), redis_link(redis_url)
        a, b = replica(link_a, clock), replica(link_b, clock)
        permit = await a.acquire("t")
        assert permit is not None
        await a.failure(permit)
        assert await b.acquire("t") is not None  # one failure: still closed
        await a.failure(permit)
        assert await b.acquire("t") is None
        assert await b.retry_in("t") == 10
        assert b.states() == {"t": "open"}

        clock.now += 10
        probe = await b.acquire("t")
        assert probe is not None and probe.probe
        assert await a.acquire("t") is None  # the probe is out, on the other replica
        await b.success(probe)
        assert await a.acquire("t") is not None
        # Closed with no failures again: nothing is left in Redis.
        assert await link_a.run("breakers", lambda r: r.keys("*")) == []
        await link_a.close()
        await link_b.close()

    asyncio.run(main())


def test_exactly_one_of_many_concurrent_half_open_acquires_gets_the_probe(redis_url: str) -> None:
    async def main() -> None:
        clock = Clock()
        links = [redis_link(redis_url), redis_link(redis_url)]
        a, b = (replica(link, clock, half_open_max=1, failure_threshold=1) for link in links)
        await a.trip("t")
        clock.now += 10
        permits = await asyncio.gather(*(br.acquire("t") for _ in range(15) for br in (a, b)))
        granted = [p for p in permits if p is not None]
        assert granted == [Permit("t", probe=True)]
        raw = await links[0].run("breakers", lambda r: r.hgetall(links[0].key("breaker", "t")))
        assert decode(raw).probes == 1
        for link in links:
            await link.close()

    asyncio.run(main())


def test_a_trip_reaches_every_replica(redis_url: str) -> None:
    async def main() -> None:
        clock = Clock()
        link_a, link_b = redis_link(redis_url), redis_link(redis_url)
        a, b = replica(link_a, clock), replica(link_b, clock)
        record = await a.trip("openai:gpt-4o")
        assert record.state == "open"
        assert await b.acquire("openai:gpt-4o") is None
        assert b.states() == {"openai:gpt-4o": "open"}
        await link_a.close()
        await link_b.close()

    asyncio.run(main())


def test_open_policy_keeps_serving_on_local_state_while_redis_is_down(
    redis_server: RedisServer, redis_url: str
) -> None:
    async def main() -> None:
        clock = Clock()
        link = redis_link(redis_url, retry_interval=300)
        b = replica(link, clock)
        await b.trip("down")  # seen open in Redis before it went away
        redis_server.kill()
        # Answers at once from this process's own records: the open breaker stays open, others count here.
        assert await b.acquire("down") is None
        permit = await b.acquire("other")
        assert permit is not None
        await b.failure(permit)
        await b.failure(permit)
        assert await b.acquire("other") is None
        assert b.states() == {"down": "open", "other": "open"}
        assert not link.up
        await link.close()

    asyncio.run(main())


def test_closed_policy_refuses_with_503_while_redis_is_down(redis_server: RedisServer, redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url, retry_interval=300, on_unavailable={"breakers": "closed"})
        b = replica(link, Clock())
        assert await b.acquire("t") is not None
        redis_server.kill()
        for _ in range(2):  # the first after the outage and one inside the retry interval
            with pytest.raises(APIError) as refused:
                await asyncio.wait_for(b.acquire("t"), 60)
            assert refused.value.status == 503 and refused.value.code == "shared_state_unavailable"
        await link.close()

    asyncio.run(main())
