"""Rate limits: token buckets, OpenAI's headers and 429s, reservations settled with real usage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lmdeck.policy.ratelimit import Demand, MemoryRateLimiter
from lmdeck.policy.ratelimit_step import format_reset
from policy.deck import fake_route, policy_settings, started_deck


class FrozenClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_bucket_refills_continuously() -> None:
    clock = FrozenClock()
    limiter = MemoryRateLimiter(clock=clock)
    demand = [Demand("key:k:requests", limit=60, amount=1, unit="requests")]
    admitted = [(await limiter.acquire(demand)).admitted for _ in range(61)]
    assert admitted.count(True) == 60 and admitted[-1] is False
    refused = await limiter.acquire(demand)
    assert refused.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    assert (await limiter.acquire(demand)).admitted
    assert not (await limiter.acquire(demand)).admitted


async def test_settling_gives_back_what_was_not_used_and_takes_what_was() -> None:
    limiter = MemoryRateLimiter(clock=FrozenClock())
    grant = await limiter.acquire([Demand("t", limit=1000, amount=800)])
    assert grant.states[0].remaining == 200
    await limiter.settle(grant, {"t": 100})
    again = await limiter.acquire([Demand("t", limit=1000, amount=850)])
    assert again.admitted and again.states[0].remaining == 50
    await limiter.settle(again, {"t": 1000})  # the estimate was low: the bucket goes into debt
    assert not (await limiter.acquire([Demand("t", limit=1000, amount=1)])).admitted


async def test_a_request_larger_than_the_limit_is_refused_without_retry() -> None:
    grant = await MemoryRateLimiter(clock=FrozenClock()).acquire([Demand("t", limit=100, amount=101)])
    assert not grant.admitted and grant.retry_after is None


async def test_all_buckets_of_a_request_are_checked_before_any_is_taken() -> None:
    limiter = MemoryRateLimiter(clock=FrozenClock())
    await limiter.acquire([Demand("team", limit=10, amount=10)])
    refused = await limiter.acquire([Demand("key", limit=10, amount=5), Demand("team", limit=10, amount=5)])
    assert not refused.admitted
    assert (await limiter.acquire([Demand("key", limit=10, amount=10)])).admitted  # key bucket untouched


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert format_reset(0.12) == "120ms"
    assert format_reset(1.0) == "1s"
    assert format_reset(1.5) == "1.5s"
    assert format_reset(360.0) == "6m0s"


async def test_rpm_limit_answers_openai_shaped_429_with_headers(tmp_path: Path) -> None:
    async with started_deck(policy_settings(tmp_path)) as deck:
        deck.policy.limiter.clock = FrozenClock()  # type: ignore[attr-defined]  # no refill: the limit alone decides
        key = (await deck.new_key(name="slow", rpm=2))["key"]
        first = await deck.chat(key)
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-reset-requests"].endswith(("s", "ms"))
        assert (await deck.chat(key)).status_code == 200
        refused = await deck.chat(key)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert "Limit 2" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        refused_traces = [t for t in deck.sink.records if t.status_code == 429]
        assert len(refused_traces) == 1 and refused_traces[0].key_id is not None


async def test_team_and_route_limits_apply_too(tmp_path: Path) -> None:
    settings = policy_settings(
        tmp_path,
        routes=[fake_route(), fake_route("capped", model="fake-gpt-model")],
        policy={"route_limits": {"capped": {"rpm": 1}}},
    )
    async with started_deck(settings) as deck:
        deck.policy.limiter.clock = FrozenClock()  # type: ignore[attr-defined]  # no refill: the limits alone decide
        team = (await deck.admin("POST", "/api/teams", json={"name": "search", "rpm": 3})).json()
        a = (await deck.new_key(name="a", team_id=team["id"]))["key"]
        b = (await deck.new_key(name="b", team_id=team["id"]))["key"]
        statuses = [(await deck.chat(k)).status_code for k in (a, b, a, b)]
        assert statuses == [200, 200, 200, 429]
        other = (await deck.new_key(name="c"))["key"]
        assert (await deck.chat(other, model="capped")).status_code == 200
        assert (await deck.chat(other, model="capped")).status_code == 429


async def test_concurrent_requests_never_take_more_tokens_than_the_tpm_limit(tmp_path: Path) -> None:
    prompt = "count the words in this sentence please " * 5  # 200 bytes: about 50 tokens for a real tokenizer
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=50, completion_tokens="max", delay=0.02)])
    async with started_deck(settings) as deck:
        deck.policy.limiter.clock = FrozenClock()  # type: ignore[attr-defined]  # no refill: the limit alone decides
        key = (await deck.new_key(name="tpm", tpm=2000))["key"]
        admitted, refused = [], []
        for _ in range(3):  # waves: what settles from one wave is given back before the next
            wave = await asyncio.gather(
                *(deck.chat(key, max_tokens=100, messages=[{"role": "user", "content": prompt}]) for _ in range(20))
            )
            admitted += [r for r in wave if r.status_code == 200]
            refused += [r for r in wave if r.status_code == 429]
        assert admitted and refused
        assert {r.json()["error"]["type"] for r in refused} == {"tokens"}
        used = sum(r.json()["usage"]["total_tokens"] for r in admitted)
        assert used <= 2000
        assert used > 2000 - 2 * 310  # and the limit is used: settling gave back what was reserved but not used
