"""The dispatcher: retries, target rotation, timeouts, breakers and fallbacks, on scripted providers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lmdeck.gateway.context import Completed, Streamed
from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.retry import RetryPolicy
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState, TargetState
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
    assert isinstance(result, Streamed)
    words = [c.choices[0]["delta"]["content"] async for c in result.chunks]  # type: ignore[attr-defined]
    assert words == ["reply", "from", "b"]
    assert ctx.trace.metadata["upstream_errors"][0]["kind"] == "ttft_timeout" and ctx.trace.retries == 1
    assert slow.in_flight == 0 and quick.in_flight == 0


async def test_ttft_timeout_with_nowhere_else_to_go() -> None:
    slow = target("a", ["hang", "hang"], ttft_timeout=0.02, max_retries=1)
    with pytest.raises(UpstreamTimeout) as info:
        await Dispatcher(router_of(route("chat", slow)))(chat_context("chat", stream=True))
    assert info.value.kind == "ttft_timeout"


async def test_failure_after_the_first_chunk_ends_the_stream_without_retry() -> None:
    clock = Clock()
    broken, other = target("a", ["fail_after_first"], weight=1), target("b", weight=0)
    router = router_of(route("chat", broken, other), clock=clock, threshold=1)
    ctx = chat_context("chat", stream=True)
    result = await Dispatcher(router)(ctx)
    assert isinstance(result, Streamed)
    received = []
    with pytest.raises(UpstreamError, match="mid-stream"):
        async for chunk in result.chunks:
            received.append(chunk)
    assert len(received) == 1 and provider(other).calls == 0
    assert router.breaker_states()[broken.id] == "open" and broken.in_flight == 0
    assert ctx.trace.metadata["upstream_errors"][0]["error"] == "broke mid-stream"


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
