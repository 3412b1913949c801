"""The dispatcher: retries, target rotation, timeouts, breakers and fallbacks, on scripted providers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.retry import RetryPolicy
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import Completed, Streamed
from lmdeck.protocol import APIError
from lmdeck.providers.base import UpstreamError, UpstreamTimeout
from lmdeck.settings import BreakerSettings, RetrySettings
from lmdeck.testing.scripted_provider import ScriptedProvider, chat_context, route, target

FAST = RetrySettings(backoff_base=0.001, backoff_max=0.002, max_retry_after=0.01)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingPolicy(RetryPolicy):
    """Records each computed wait and sleeps not at all."""

    def __init__(self) -> None:
        super().__init__(FAST)
        object.__setattr__(self, "calls", [])

    def delay(self, retry: int, rng: random.Random, retry_after: float | None, same_target: bool) -> float:
        self.calls.append((retry, retry_after, same_target))  # type: ignore[attr-defined]
        return 0.0


def router_of(*routes: RouteState, clock: Clock | None = None, threshold: int = 5) -> Router:
    breakers = CircuitBreakers(
        BreakerSettings(failure_threshold=threshold, reset_timeout=10), InProcessBreakerStore(), clock=clock or Clock()
    )
    return Router({r.name: r for r in routes}, retry=FAST, breakers=breakers, rng=random.Random(0))


def text(result: Any) -> str:
    assert isinstance(result, Completed)
    return str(result.response.choices[0].message["content"])


async def drain(result: Any) -> list[Any]:
    assert isinstance(result, Streamed)
    return [chunk async for chunk in result.chunks]


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)


def provider(t: TargetState) -> ScriptedProvider:
    assert isinstance(t.provider, ScriptedProvider)
    return t.provider


async def test_retries_a_retryable_failure_on_the_same_target() -> None:
    only = target("a", [UpstreamError(503, "busy"), "ok"])
    ctx = chat_context("chat")
    result = await Dispatcher(router_of(route("chat", only)))(ctx)
    assert text(result) == "reply from a"
    assert ctx.trace.retries == 1 and ctx.trace.target == only.id and not ctx.trace.fallback_used
    assert ctx.trace.metadata["upstream_errors"] == [
        {"target": only.id, "status": 503, "kind": "upstream_error", "error": "busy"}
    ]
    assert ctx.trace.upstream_ms is not None and only.in_flight == 0


async def test_a_client_error_is_not_retried() -> None:
    only = target("a", [UpstreamError(400, "bad request")])
    with pytest.raises(UpstreamError, match="bad request"):
        await Dispatcher(router_of(route("chat", only)))(chat_context("chat"))
    assert provider(only).calls == 1


async def test_retry_moves_to_the_next_target_and_honours_retry_after_only_there() -> None:
    first, second = target("a", [UpstreamError(429, "slow down", retry_after=2)], weight=1), target("b", weight=0)
    router = router_of(route("chat", first, second))
    policy = RecordingPolicy()
    router.retry = policy
    ctx = chat_context("chat")
    assert text(await Dispatcher(router)(ctx)) == "reply from b"
    assert policy.calls == [(0, 2, False)]  # type: ignore[attr-defined]
    assert ctx.trace.target == second.id

    lone = target("c", [UpstreamError(429, "slow down", retry_after=2)])
    router = router_of(route("solo", lone))
    router.retry = policy
    await Dispatcher(router)(chat_context("solo"))
    assert policy.calls[-1] == (0, 2, True)  # type: ignore[attr-defined]


async def test_retries_are_bounded_by_max_retries() -> None:
    only = target("a", [UpstreamError(500, "e1"), UpstreamError(500, "e2"), UpstreamError(500, "e3")], max_retries=1)
    ctx = chat_context("chat")
    with pytest.raises(UpstreamError, match="e2"):
        await Dispatcher(router_of(route("chat", only)))(ctx)
    assert provider(only).calls == 2 and ctx.trace.retries == 1 and ctx.trace.upstream_ms is not None


async def test_fallback_route_after_the_first_is_spent() -> None:
    primary = target("a", [UpstreamError(500, "down")], max_retries=0)
    backup = target("b")
    router = router_of(route("main", primary, fallbacks=["spare"]), route("spare", backup))
    ctx = chat_context("main")
    assert text(await Dispatcher(router)(ctx)) == "reply from b"
    assert ctx.trace.fallback_used and ctx.trace.metadata["served_by_route"] == "spare"
    assert ctx.trace.route == "main" and ctx.trace.target == backup.id and ctx.trace.retries == 1


async def test_upstream_misconfiguration_falls_back_without_retrying() -> None:
    primary = target("a", [UpstreamError(401, "bad upstream key")], max_retries=3)
    router = router_of(route("main", primary, fallbacks=["spare"]), route("spare", target("b")))
    assert text(await Dispatcher(router)(chat_context("main"))) == "reply from b"
    assert provider(primary).calls == 1


async def test_breaker_opens_skips_the_target_and_recovers_half_open() -> None:
    clock = Clock()
    flaky = target("a", [UpstreamError(502, "x"), UpstreamError(502, "y")], max_retries=0)
    router = router_of(route("chat", flaky), clock=clock, threshold=2)
    dispatch = Dispatcher(router)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await dispatch(chat_context("chat"))
    assert router.breaker_states() == {flaky.id: "open"}
    with pytest.raises(APIError) as info:
        await dispatch(chat_context("chat"))
    assert info.value.status == 503 and info.value.code == "circuit_open" and info.value.headers["retry-after"] == "10"
    assert provider(flaky).calls == 2  # the open breaker kept the request away

    clock.now += 10
    assert router.breaker_states() == {flaky.id: "half_open"}
    assert text(await dispatch(chat_context("chat"))) == "reply from a"
    assert router.breaker_states() == {flaky.id: "closed"}


async def test_open_breaker_sends_requests_to_the_fallback() -> None:
    clock = Clock()
    flaky = target("a", [UpstreamError(500, "x")], max_retries=0)
    backup = target("b")
    router = router_of(route("main", flaky, fallbacks=["spare"]), route("spare", backup), clock=clock, threshold=1)
    dispatch = Dispatcher(router)
    await dispatch(chat_context("main"))
    calls = provider(flaky).calls
    ctx = chat_context("main")
    assert text(await dispatch(ctx)) == "reply from b"
    assert provider(flaky).calls == calls and ctx.trace.fallback_used


async def test_whole_call_timeout_is_retried_elsewhere() -> None:
    slow, quick = target("a", ["hang"], timeout=0.05, weight=1), target("b", weight=0)
    ctx = chat_context("chat")
    assert text(await Dispatcher(router_of(route("chat", slow, quick)))(ctx)) == "reply from b"
    assert ctx.trace.metadata["upstream_errors"][0]["kind"] == "timeout"
    assert slow.in_flight == 0


async def test_ttft_timeout_before_the_first_chunk_is_retried() -> None:
    slow, quick = target("a", ["hang"], ttft_timeout=0.05, weight=1), target("b", weight=0)
    ctx = chat_context("chat", stream=True)
    result = await Dispatcher(router_of(route("chat", slow, quick)))(ctx)
    assert streamed_text(await drain(result)) == "reply from b"
    assert ctx.trace.metadata["upstream_errors"][0]["kind"] == "ttft_timeout" and ctx.trace.retries == 1
    assert slow.in_flight == 0 and quick.in_flight == 0


async def test_ttft_timeout_with_nowhere_else_to_go() -> None:
    slow = target("a", ["hang", "hang"], ttft_timeout=0.02, max_retries=1)
    with pytest.raises(UpstreamTimeout) as info:
        await Dispatcher(router_of(route("chat", slow)))(chat_context("chat", stream=True))
    assert info.value.kind == "ttft_timeout"


async def test_a_stream_failing_before_its_commit_point_is_retried_unseen() -> None:
    clock = Clock()
    broken, other = target("a", ["fail_after:2"], weight=1), target("b", weight=0)
    # Held for 3 content chunks, with a hold time no stall of a loaded machine reaches.
    commit = {"chunks": 3, "max_hold_ms": 5000}
    router = router_of(route("chat", broken, other, stream_commit=commit), clock=clock, threshold=1)
    ctx = chat_context("chat", stream=True)
    chunks = await drain(await Dispatcher(router)(ctx))
    # The two words "a" sent were held back: the client sees one clean stream from "b".
    assert streamed_text(chunks) == "reply from b" and {c.id for c in chunks} == {"id-b"}
    assert sum("role" in c.choices[0]["delta"] for c in chunks if c.choices) == 1
    assert ctx.trace.target == other.id and ctx.trace.retries == 1
    assert ctx.trace.metadata["upstream_errors"][0]["error"] == "broke mid-stream"
    assert "stream_resumed" not in ctx.trace.metadata
    assert router.breaker_states()[broken.id] == "open" and broken.in_flight == 0 and other.in_flight == 0


async def test_a_stream_commits_after_its_hold_time_even_without_enough_chunks() -> None:
    stalling = target("a", ["stall_after:1"])
    commit = {"chunks": 50, "max_hold_ms": 500}  # time enough to read the word that came, however loaded the machine
    result = await Dispatcher(router_of(route("chat", stalling, stream_commit=commit)))(chat_context("chat", True))
    assert isinstance(result, Streamed)
    # Held back until the hold ran out, then sent: the role chunk and the one word that came.
    received = [await asyncio.wait_for(anext(result.chunks), 5) for _ in range(2)]
    assert streamed_text(received) == "reply "
    await result.chunks.aclose()  # type: ignore[attr-defined]
    assert stalling.in_flight == 0


async def test_a_stream_cut_after_its_commit_point_resumes_where_it_stopped() -> None:
    text = "one two three four five"
    broken = target("a", ["fail_after:3"], reply=text, weight=1, continues=True)
    spare = target("b", reply=text, weight=0, continues=True)
    router = router_of(route("chat", broken, spare, stream_commit={"chunks": 2}))
    ctx = chat_context("chat", stream=True)
    chunks = await drain(await Dispatcher(router)(ctx))
    assert streamed_text(chunks) == text
    assert provider(spare).continued_from == ["one two three "]
    # One stream to the client: the first upstream's id and model throughout, one role chunk, one finish.
    assert {(c.id, c.model) for c in chunks} == {("id-a", "a")}
    assert sum("role" in c.choices[0]["delta"] for c in chunks if c.choices) == 1
    assert [c.choices[0]["finish_reason"] for c in chunks if c.choices and c.choices[0]["finish_reason"]] == ["stop"]
    assert ctx.trace.metadata["stream_resumed"] == [
        {"from": broken.id, "to": spare.id, "offset": 3, "offset_chars": 14, "continued": True}
    ]
    assert ctx.trace.target == spare.id and broken.in_flight == 0 and spare.in_flight == 0


async def test_a_resumed_stream_reports_what_every_upstream_call_used() -> None:
    text = "one two three four five"
    broken = target("a", ["fail_after:3"], reply=text, weight=1, continues=True)
    spare = target("b", reply=text, weight=0, continues=True)
    router = router_of(route("chat", broken, spare, stream_commit={"chunks": 1}))
    chunks = await drain(await Dispatcher(router)(chat_context("chat", stream=True)))
    (usage,) = [c.usage for c in chunks if c.usage is not None]
    # The continuation: 10 + 3 prompt tokens, 2 words; the cut call: 10 prompt tokens, 3 words.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (23, 5, 28)


async def test_a_cut_stream_resumes_on_a_fallback_route() -> None:
    text = "one two three four five"
    broken = target("a", ["fail_after:2"], reply=text, continues=True, max_retries=0)
    elsewhere = target("b", reply=text, continues=True)
    router = router_of(
        route("main", broken, fallbacks=["spare"], stream_commit={"chunks": 1}), route("spare", elsewhere)
    )
    ctx = chat_context("main", stream=True)
    assert streamed_text(await drain(await Dispatcher(router)(ctx))) == text
    assert ctx.trace.fallback_used and ctx.trace.metadata["served_by_route"] == "spare"
    assert ctx.trace.metadata["stream_resumed"][0]["to"] == elsewhere.id


async def test_the_failed_target_continues_its_own_answer_when_it_is_the_only_one() -> None:
    text = "one two three four five"
    only = target("a", ["fail_after:3"], reply=text, continues=True)
    ctx = chat_context("chat", stream=True)
    result = await Dispatcher(router_of(route("chat", only, stream_commit={"chunks": 1})))(ctx)
    assert streamed_text(await drain(result)) == text
    assert provider(only).continued_from == ["one two three "] and only.in_flight == 0


async def test_a_cut_stream_that_no_target_can_continue_ends_with_the_error() -> None:
    clock = Clock()
    text = "one two three four five"
    broken, other = target("a", ["fail_after:3"], reply=text, weight=1), target("b", reply=text, weight=0)
    router = router_of(route("chat", broken, other, stream_commit={"chunks": 1}), clock=clock, threshold=1)
    ctx = chat_context("chat", stream=True)
    result = await Dispatcher(router)(ctx)
    assert isinstance(result, Streamed)
    received = []
    with pytest.raises(UpstreamError, match="mid-stream"):
        async for chunk in result.chunks:
            received.append(chunk)
    assert streamed_text(received) == "one two three " and provider(other).calls == 0
    assert router.breaker_states()[broken.id] == "open" and broken.in_flight == 0
    assert ctx.trace.metadata["upstream_errors"][0]["error"] == "broke mid-stream"


async def test_a_stream_that_fails_after_its_last_token_just_ends() -> None:
    broken = target("a", ["fail_after:9"], continues=True)
    ctx = chat_context("chat", stream=True)
    chunks = await drain(await Dispatcher(router_of(route("chat", broken, stream_commit={"chunks": 1})))(ctx))
    assert streamed_text(chunks) == "reply from a" and chunks[-1].choices[0]["finish_reason"] == "stop"
    assert provider(broken).calls == 1 and len(ctx.trace.metadata["upstream_errors"]) == 1


async def test_resumptions_are_bounded_by_the_routes_attempts() -> None:
    text = "one two three four five six"
    flaky = target("a", ["fail_after:2", "fail_after:1", "fail_after:1"], reply=text, continues=True, max_retries=0)
    ctx = chat_context("chat", stream=True)
    result = await Dispatcher(router_of(route("chat", flaky, stream_commit={"chunks": 1})))(ctx)
    assert isinstance(result, Streamed)
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in result.chunks:
            received.append(chunk)
    assert streamed_text(received) == "one two three " and provider(flaky).calls == 2
    assert len(ctx.trace.metadata["stream_resumed"]) == 1 and flaky.in_flight == 0


async def test_a_stream_abandoned_by_the_client_frees_its_target() -> None:
    only = target("a")
    result = await Dispatcher(router_of(route("chat", only)))(chat_context("chat", stream=True))
    assert isinstance(result, Streamed) and only.in_flight == 1
    await anext(result.chunks)
    await result.chunks.aclose()  # type: ignore[attr-defined]
    assert only.in_flight == 0


async def test_unknown_model_is_a_404() -> None:
    with pytest.raises(APIError) as info:
        await Dispatcher(router_of(route("chat", target("a"))))(chat_context("nope"))
    assert info.value.status == 404 and info.value.code == "model_not_found"
