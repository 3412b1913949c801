"""The learned strategy: the trained router's pick answers first, the rest fail over, the trace says why."""

from __future__ import annotations

import os
import random
from pathlib import Path

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.learned import LearnedRouters, TrainedRouter, request_text
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState
from lmdeck.gateway.routing.strategy import StrategyRegistry
from lmdeck.pipeline.context import Completed, RequestContext
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import BreakerSettings, RetrySettings
from lmdeck.testing.scripted_provider import route, target

FAST = RetrySettings(backoff_base=0.001, backoff_max=0.002, max_retry_after=0.01)


async def digit_feature(texts: list[str]) -> list[list[float]]:
    """A FAKE embedding: 1.0 when the text holds a digit."""
    return [[1.0 if any(c.isdigit() for c in t) else 0.0] for t in texts]


def write_router(path: Path, targets: list[str]) -> None:
    # Binary: P(tier 1) = sigmoid(-8 x + 4): a digit says the small model suffices.
    router = TrainedRouter("smart", targets, [0, 1], [[-8.0]], [4.0], {"accuracy": 1.0})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(router.to_json())


def setup(tmp_path: Path, *scripts: list[object], trained: bool = True) -> tuple[Router, RouteState]:
    if trained:
        write_router(tmp_path / "routers" / "smart.json", ["openai:small", "openai:large"])
    small = target("small", list(scripts[0]) if scripts else [], max_retries=0)
    large = target("large", list(scripts[1]) if len(scripts) > 1 else [], max_retries=0)
    state = route("smart", small, large, strategy="learned")
    strategies = StrategyRegistry.builtin(routers=LearnedRouters(embed=digit_feature, data_dir=tmp_path))
    breakers = CircuitBreakers(BreakerSettings(), InProcessBreakerStore())
    router = Router({"smart": state}, retry=FAST, breakers=breakers, strategies=strategies, rng=random.Random(0))
    return router, state


def context(question: str) -> RequestContext:
    body = ChatCompletionRequest.model_validate({"model": "smart", "messages": [{"role": "user", "content": question}]})
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name="smart")


def answer_of(result: object) -> str:
    assert isinstance(result, Completed)
    return str(result.response.choices[0].message["content"])


async def test_the_router_sends_each_request_to_the_cheapest_tier_it_predicts_suffices(tmp_path: Path) -> None:
    router, _ = setup(tmp_path)
    ctx = context("What is 2+2?")
    assert answer_of(await Dispatcher(router)(ctx)) == "reply from small"
    decision = ctx.trace.metadata["routing"]
    assert decision["strategy"] == "learned" and decision["tier"] == 0
    assert decision["reason"].startswith("predicted: P(tier <= 0 suffices) = 0.982 >= 0.5")
    ctx = context("Write me a sonnet")
    assert answer_of(await Dispatcher(router)(ctx)) == "reply from large"
    assert ctx.trace.metadata["routing"]["tier"] == 1


async def test_without_a_trained_router_the_last_target_answers(tmp_path: Path) -> None:
    router, _ = setup(tmp_path, trained=False)
    ctx = context("What is 2+2?")
    assert answer_of(await Dispatcher(router)(ctx)) == "reply from large"
    assert ctx.trace.metadata["routing"]["reason"].startswith("untrained")


async def test_a_failing_pick_fails_over_in_order(tmp_path: Path) -> None:
    router, _ = setup(tmp_path, [UpstreamError(503, "down")])
    ctx = context("What is 2+2?")
    assert answer_of(await Dispatcher(router)(ctx)) == "reply from large"
    decision = ctx.trace.metadata["routing"]
    assert decision["tiers"][0]["outcome"] == "failed" and decision["reason"].startswith("failover")


def test_a_retrained_file_is_read_again(tmp_path: Path) -> None:
    routers = LearnedRouters(embed=digit_feature, data_dir=tmp_path)
    path = tmp_path / "r.json"
    assert routers.get(path) is None
    write_router(path, ["a", "b"])
    routers._loaded.clear()  # the once-a-second check would otherwise wait
    first = routers.get(path)
    assert first is not None and first.intercept == [4.0]
    path.write_bytes(TrainedRouter("smart", ["a", "b"], [0, 1], [[-8.0]], [2.0], {}).to_json())
    os.utime(path, (1, 1))
    routers._loaded[path] = (routers._loaded[path][0], 0.0, first)
    again = routers.get(path)
    assert again is not None and again.intercept == [2.0]


def test_the_embedded_text_is_the_conversation_s_user_and_system_turns() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "assistant", "content": "ignored"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        }
    )
    assert request_text(body) == "be brief\nhi"
