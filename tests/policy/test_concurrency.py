"""Caps on requests in flight and streams open, per key and per team: a 429 naming the limit, places given back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from lmdeck.pipeline.context import RequestContext, Result, Streamed
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.concurrency import ConcurrencyLimiter, ConcurrencyRefused
from lmdeck.policy.concurrency_step import ConcurrencyCap
from lmdeck.protocol import APIError, ChatCompletionChunk, ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.caller import CURRENT_CALLER, Caller
from lmdeck.settings import ConcurrencySettings

from .deck import fake_route, policy_settings, started_deck


def test_each_limit_counts_its_own_requests() -> None:
    limiter = ConcurrencyLimiter(ConcurrencySettings(key_in_flight=3, key_streams=1, team_in_flight=4, team_streams=9))
    stream = limiter.acquire(key="a", team="t", stream=True)
    with pytest.raises(ConcurrencyRefused) as refused:
        limiter.acquire(key="a", team="t", stream=True)
    assert refused.value.limit.code == "key_streams_exceeded"
    assert "policy.concurrency.key_streams" in str(refused.value)
    calls = [limiter.acquire(key="a", team="t", stream=False) for _ in range(2)]
    with pytest.raises(ConcurrencyRefused) as refused:
        limiter.acquire(key="a", team="t", stream=False)
    assert refused.value.limit.code == "key_in_flight_exceeded"
    other = limiter.acquire(key="b", team="t", stream=False)  # the team's fourth
    with pytest.raises(ConcurrencyRefused) as refused:
        limiter.acquire(key="c", team="t", stream=False)
    assert refused.value.limit.code == "team_in_flight_exceeded"
    limiter.acquire(key="c", team=None, stream=False)  # a key without a team has only its own limits
    for lease in (stream, *calls, other, stream):  # releasing twice gives back once
        limiter.release(lease)
    assert limiter.held("key", "in_flight", "a") == 0 and limiter.held("team", "in_flight", "t") == 0


def context(key: str, team: str | None, stream: bool) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    ctx = RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name="m")
    ctx.principal = Principal(key_id=key, role="inference", team_id=team)
    return ctx


async def test_an_open_stream_holds_its_place_until_it_ends() -> None:
    limiter = ConcurrencyLimiter(ConcurrencySettings(key_streams=2))
    step = ConcurrencyCap(limiter)
    release = asyncio.Event()
    callers: list[Caller | None] = []

    async def chunks() -> AsyncIterator[BaseModel]:
        await release.wait()  # an unread stream: it stays open until its client reads or leaves
        yield ChatCompletionChunk(id="c", created=0, model="m")

    async def upstream(ctx: RequestContext) -> Result:
        callers.append(CURRENT_CALLER.get())
        return Streamed(chunks())

    opened = [await step(context("k1", "red", stream=True), upstream) for _ in range(2)]
    assert callers == [Caller("k1", "red"), Caller("k1", "red")]  # the engine learns whom to share with
    with pytest.raises(APIError) as refused:
        await step(context("k1", "red", stream=True), upstream)
    assert (refused.value.status, refused.value.code) == (429, "key_streams_exceeded")
    assert refused.value.headers["retry-after"] == "1"
    assert "limit 2" in refused.value.message
    await step(context("k2", "red", stream=True), upstream)  # another key has its own count
    release.set()
    first = opened[0]
    assert isinstance(first, Streamed)
    assert [c async for c in first.chunks]  # read to its end: the place is given back
    await step(context("k1", "red", stream=True), upstream)
    second = opened[1]
    assert isinstance(second, Streamed)
    await anext(second.chunks)  # the gateway always pulls the first chunk before answering
    await second.chunks.aclose()  # type: ignore[attr-defined]  # then the client went away: given back too
    assert limiter.held("key", "streams", "k1") == 1


async def test_requests_in_flight_over_the_team_cap_are_refused(tmp_path: Path) -> None:
    routes = [fake_route(delay=30)]
    settings = policy_settings(tmp_path, routes=routes, policy={"concurrency": {"team_in_flight": 2}})
    async with started_deck(settings) as deck:
        team = (await deck.admin("POST", "/api/teams", json={"name": "search"})).json()
        keys = [(await deck.new_key(name=f"k{i}", team_id=team["id"]))["key"] for i in range(3)]
        slow = [asyncio.create_task(deck.chat(k)) for k in keys[:2]]
        limiter = next(s for s in deck.gateway.pipeline._steps if s.name == "concurrency").limiter  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60  # the two slow requests hold their places (their upstream takes 30 s)
        while limiter.held("team", "in_flight", team["id"]) != 2:
            assert time.monotonic() < deadline, "the two slow requests never took their places"
            await asyncio.sleep(0.01)
        refused = await deck.chat(keys[2])
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "team_in_flight_exceeded"
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        deadline = time.monotonic() + 60
        while limiter.held("team", "in_flight", team["id"]) != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert limiter.held("team", "in_flight", team["id"]) == 0  # cancelled requests gave their places back
