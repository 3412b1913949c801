"""The cascade strategy: the cheap target's confident answers stand, the others escalate."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import Completed, RequestContext, Streamed
from lmdeck.protocol import APIError, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import BreakerSettings, RetrySettings, TargetConfig
from lmdeck.testing.scripted_provider import ScriptedProvider, route

FAST = RetrySettings(backoff_base=0.001, backoff_max=0.002, max_retry_after=0.01)


class Scored(ScriptedProvider):
    """A FAKE provider whose answers carry the token log-probabilities it is given; it keeps every request."""

    def __init__(self, name: str, logprobs: list[float], script: list[Any] | None = None) -> None:
        super().__init__(name, list(script or []))
        self.logprobs = logprobs
        self.seen: list[ChatCompletionRequest] = []

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        self.seen.append(request)
        step = self._next()
        if isinstance(step, UpstreamError):
            raise step
        choice: dict[str, Any] = {"message": {"role": "assistant", "content": self.text}, "finish_reason": "stop"}
        if request.logprobs:
            choice["logprobs"] = {"content": [{"token": "t", "logprob": v} for v in self.logprobs]}
        return ChatCompletionResponse.model_validate(
            {
                "id": "x",
                "created": 0,
                "model": self.name,
                "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> Any:
        self.seen.append(request)
        async for chunk in self._stream(self.text, 10):
            yield chunk


def scored(name: str, logprobs: list[float], script: list[Any] | None = None) -> TargetState:
    return TargetState(TargetConfig(model=name, max_retries=0), Scored(name, logprobs, script))


def cascade_route(*targets: TargetState, **cascade: Any) -> RouteState:
    config: dict[str, Any] = {"checks": [{"kind": "logprob", "min_logprob": -0.5}], **cascade}
    return route("smart", *targets, strategy="cascade", cascade=config)


def router_of(state: RouteState) -> Router:
    breakers = CircuitBreakers(BreakerSettings(), InProcessBreakerStore())
    return Router({state.name: state}, retry=FAST, breakers=breakers, rng=random.Random(0))


def context(stream: bool = False, **extra: Any) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": "smart", "messages": [{"role": "user", "content": "What is 2+2?"}], "stream": stream, **extra}
    )
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name="smart")


def seen(t: TargetState) -> list[ChatCompletionRequest]:
    assert isinstance(t.provider, Scored)
    return t.provider.seen


async def test_a_confident_cheap_answer_is_kept_without_the_logprobs_the_client_did_not_ask_for() -> None:
    small, large = scored("small", [-0.1, -0.2]), scored("large", [])
    ctx = context()
    result = await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert isinstance(result, Completed)
    assert result.response.choices[0].message["content"] == "reply from small"
    assert result.response.choices[0].logprobs is None
    assert seen(small)[0].logprobs is True and seen(large) == []
    decision = ctx.trace.metadata["routing"]
    assert decision["strategy"] == "cascade" and decision["answered_by"] == small.id and decision["tier"] == 0
    assert decision["reason"] == "confident: mean token logprob -0.15 >= -0.5"
    assert ctx.trace.target == small.id


async def test_an_unconfident_cheap_answer_escalates_and_the_trace_says_why() -> None:
    small, large = scored("small", [-0.1, -3.0]), scored("large", [])
    ctx = context()
    result = await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert isinstance(result, Completed)
    assert result.response.choices[0].message["content"] == "reply from large"
    assert seen(large)[0].logprobs is None  # the last tier is sent the request as the client wrote it
    decision = ctx.trace.metadata["routing"]
    assert decision["answered_by"] == large.id and decision["tier"] == 1
    assert decision["tiers"][0] == {
        "target": small.id,
        "outcome": "escalated",
        "reason": "mean token logprob -1.55 < -0.5",
        "score": -1.55,
    }
    assert decision["reason"] == "escalated: mean token logprob -1.55 < -0.5"
    assert ctx.trace.target == large.id


async def test_the_min_aggregate_escalates_on_one_doubtful_token() -> None:
    small, large = scored("small", [-0.01, -0.9]), scored("large", [])
    state = cascade_route(small, large, checks=[{"kind": "logprob", "min_logprob": -0.5, "aggregate": "min"}])
    ctx = context()
    await Dispatcher(router_of(state))(ctx)
    assert ctx.trace.metadata["routing"]["tier"] == 1


async def test_a_client_that_asked_for_logprobs_keeps_them() -> None:
    small, large = scored("small", [-0.1]), scored("large", [])
    result = await Dispatcher(router_of(cascade_route(small, large)))(context(logprobs=True))
    assert isinstance(result, Completed) and result.response.choices[0].logprobs is not None


async def test_a_failing_cheap_target_escalates() -> None:
    small, large = scored("small", [-0.1], [UpstreamError(503, "down")]), scored("large", [])
    ctx = context()
    result = await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert isinstance(result, Completed) and result.response.choices[0].message["content"] == "reply from large"
    first = ctx.trace.metadata["routing"]["tiers"][0]
    assert first["outcome"] == "failed" and first["target"] == small.id


async def test_every_tier_failing_gives_the_last_failure() -> None:
    small = scored("small", [-0.1], [UpstreamError(503, "down")])
    large = scored("large", [], [UpstreamError(400, "bad request", retryable=False)])
    ctx = context()
    with pytest.raises(UpstreamError, match="bad request"):
        await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert ctx.trace.metadata["routing"]["answered_by"] is None


async def test_a_stream_gets_the_kept_cheap_answer_replayed_with_usage() -> None:
    small, large = scored("small", [-0.1]), scored("large", [])
    ctx = context(stream=True)
    result = await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert isinstance(result, Streamed)
    chunks = [c async for c in result.chunks]
    assert "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices) == "reply from small"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    assert seen(small)[0].stream is False  # judged whole before the client saw it


async def test_a_stream_escalated_streams_from_the_last_tier() -> None:
    small, large = scored("small", [-2.0]), scored("large", [])
    ctx = context(stream=True)
    result = await Dispatcher(router_of(cascade_route(small, large)))(ctx)
    assert isinstance(result, Streamed)
    chunks = [c async for c in result.chunks]
    assert "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices) == "reply from large"
    assert seen(large)[0].stream is True
    assert ctx.trace.metadata["routing"]["tier"] == 1


async def test_a_route_that_refuses_streams_says_so_by_name() -> None:
    state = cascade_route(scored("small", [-0.1]), scored("large", []), stream="refuse")
    with pytest.raises(APIError) as raised:
        await Dispatcher(router_of(state))(context(stream=True))
    assert raised.value.status == 400 and raised.value.param == "stream"
