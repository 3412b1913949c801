"""Breaker transitions: closed → open → half-open → closed or open again."""

from __future__ import annotations

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.settings import BreakerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breakers(clock: Clock, **settings: float) -> CircuitBreakers:
    config = BreakerSettings.model_validate({"failure_threshold": 2, "reset_timeout": 10, **settings})
    return CircuitBreakers(config, InProcessBreakerStore(), clock=clock)


async def test_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    b = breakers(clock)
    permit = await b.acquire("t")
    assert permit is not None and not permit.probe
    await b.failure(permit)
    await b.success(permit)  # a success in between resets the count
    await b.failure(permit)
    assert b.states() == {"t": "closed"}
    await b.failure(permit)
    assert b.states() == {"t": "open"}
    assert await b.acquire("t") is None
    assert await b.retry_in("t") == 10


async def test_half_open_probe_closes_or_reopens() -> None:
    clock = Clock()
    b = breakers(clock, half_open_max=1)
    permit = await b.acquire("t")
    assert permit is not None
    await b.failure(permit)
    await b.failure(permit)
    clock.now += 10
    assert b.states() == {"t": "half_open"}
    probe = await b.acquire("t")
    assert probe is not None and probe.probe
    assert await b.acquire("t") is None  # only one probe at a time
    await b.failure(probe)
    assert b.states() == {"t": "open"} and await b.acquire("t") is None

    clock.now += 10
    probe = await b.acquire("t")
    assert probe is not None
    await b.success(probe)
    assert b.states() == {"t": "closed"}
    assert await b.acquire("t") is not None


async def test_a_released_probe_frees_its_slot() -> None:
    clock = Clock()
    b = breakers(clock, failure_threshold=1)
    permit = await b.acquire("t")
    assert permit is not None
    await b.failure(permit)
    clock.now += 11
    probe = await b.acquire("t")
    assert probe is not None
    await b.release(probe)
    assert await b.acquire("t") is not None


async def test_a_probe_that_never_reports_frees_its_slot_after_a_reset_timeout() -> None:
    # Its process died, or its verdict was lost while the shared store was away.
    clock = Clock()
    b = breakers(clock, failure_threshold=1, half_open_max=1)
    permit = await b.acquire("t")
    assert permit is not None
    await b.failure(permit)
    clock.now += 11
    lost = await b.acquire("t")
    assert lost is not None and lost.probe
    clock.now += 9
    assert await b.acquire("t") is None  # the probe may still be running
    clock.now += 1
    again = await b.acquire("t")
    assert again is not None and again.probe
    await b.success(again)
    assert b.states()["t"] == "closed"


async def test_unknown_targets_are_closed() -> None:
    b = breakers(Clock())
    assert b.states() == {}
    assert await b.retry_in("never-seen") == 0
