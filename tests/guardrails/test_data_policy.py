"""Data policy on scripted targets: restricted input stays on in_house targets, moves, is masked or refused."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.eligibility import SKIPPED, RouteEligibility
from lmdeck.gateway.routing.router import Router
from lmdeck.guardrails.base import GuardResources
from lmdeck.guardrails.config import GuardrailConfig
from lmdeck.guardrails.data_policy import DECISION
from lmdeck.guardrails.service import GuardrailService
from lmdeck.guardrails.steps import steps
from lmdeck.pipeline.context import Completed, RequestContext
from lmdeck.pipeline.order import build_pipeline
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import BreakerSettings, RetrySettings, Settings
from lmdeck.testing.scripted_provider import ScriptedProvider, route, target

from .guarded import test_registry

EMAIL_MESSAGE = "mail bob@example.com"


def deck(action: str = "reroute", **policy: Any) -> tuple[Any, Router]:
    routes = [
        route("support", target("cloud", data_class="external"), target("house", data_class="in_house")),
        route("public", target("cloud2"), fallbacks=[]),
        route("local", target("local-model", provider="local")),
    ]
    router = Router(
        {r.name: r for r in routes},
        retry=RetrySettings(backoff_base=0.001, backoff_max=0.002),
        breakers=CircuitBreakers(BreakerSettings(), InProcessBreakerStore()),
        rng=random.Random(0),
    )
    settings = Settings.model_validate(
        {
            "default_routes": False,
            "routes": [r.config.model_dump() for r in routes],
            "guardrails": {
                "definitions": {"pii": {"type": "emails"}},
                "data_policy": {"restricted": ["pii"], "action": action, "tags": ["customer"], **policy},
            },
        }
    )
    service = GuardrailService(
        GuardrailConfig.build(settings, test_registry(), GuardResources()),
        lambda name: router.get(name).config if router.get(name) else None,  # type: ignore[union-attr]
    )
    check = RouteEligibility(router.get)
    fallbacks = lambda name: router.get(name).config.fallbacks if router.get(name) else []  # type: ignore[union-attr]  # noqa: E731
    return build_pipeline(steps(service, check, fallbacks), terminal=Dispatcher(router)), router


async def run(pipeline: Any, model: str, content: str, tags: list[str] | None = None) -> tuple[RequestContext, Any]:
    body = ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": content}], "tags": tags}
    )
    ctx = RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=model)
    return ctx, await pipeline.run(ctx)


def served_by(result: Any) -> str:
    assert isinstance(result, Completed)
    return str(result.response.choices[0].message["content"]).removeprefix("reply from ")


async def test_restricted_input_is_served_by_the_routes_in_house_target_and_the_trace_says_why() -> None:
    pipeline, _ = deck()
    for _ in range(4):  # whatever the weighted pick, never the external target
        ctx, result = await run(pipeline, "support", EMAIL_MESSAGE)
        assert served_by(result) == "house"
    decision = ctx.trace.metadata[DECISION]
    assert decision["action"] == "reroute" and decision["allowed"] == ["in_house"]
    assert decision["entities"] == ["EMAIL_ADDRESS"] and "only in_house targets" in decision["reason"]
    assert {"route": "support", "target": "openai:cloud", "reason": "data_class", "param": None} in ctx.trace.metadata[
        SKIPPED
    ]


async def test_clean_input_may_go_anywhere() -> None:
    pipeline, _ = deck()
    served = {served_by((await run(pipeline, "support", "hello"))[1]) for _ in range(12)}
    assert served == {"cloud", "house"}


async def test_a_route_without_an_in_house_target_moves_to_the_policys_route() -> None:
    pipeline, _ = deck(route="local")
    ctx, result = await run(pipeline, "public", EMAIL_MESSAGE)
    assert served_by(result) == "local-model"
    assert ctx.trace.metadata[DECISION]["moved_to"] == "local"


async def test_without_somewhere_allowed_to_go_it_is_refused_with_the_fix() -> None:
    pipeline, _ = deck()
    with pytest.raises(APIError) as caught:
        await run(pipeline, "public", EMAIL_MESSAGE)
    assert caught.value.status == 422 and caught.value.code == "content_policy_violation"
    assert "data_policy.route" in caught.value.message


async def test_a_customer_tag_restricts_too() -> None:
    pipeline, _ = deck()
    ctx, result = await run(pipeline, "support", "nothing personal", tags=["customer"])
    assert served_by(result) == "house"
    assert ctx.trace.metadata[DECISION]["tags"] == ["customer"]


async def test_mask_sends_it_out_masked() -> None:
    pipeline, router = deck("mask")
    ctx, _ = await run(pipeline, "public", EMAIL_MESSAGE)
    state = router.get("public")
    assert state is not None
    provider = state.targets[0].provider
    assert isinstance(provider, ScriptedProvider) and provider.calls == 1
    assert ctx.body.messages[0].content == "mail <EMAIL_ADDRESS_1>"  # type: ignore[union-attr]
    assert ctx.trace.metadata[DECISION]["action"] == "mask"


async def test_refuse_refuses() -> None:
    pipeline, _ = deck("refuse")
    with pytest.raises(APIError) as caught:
        await run(pipeline, "support", EMAIL_MESSAGE)
    assert caught.value.status == 422 and "pii: EMAIL_ADDRESS" in caught.value.message
