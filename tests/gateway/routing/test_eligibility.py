"""Target eligibility on every hop: the key's allow-list and the targets' capabilities, on scripted providers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lmdeck.gateway.routing.breaker import CircuitBreakers, InProcessBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.eligibility import SKIPPED, RouteEligibility
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import Completed, RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.base import UpstreamError
from lmdeck.providers.capabilities import Capabilities
from lmdeck.settings import BreakerSettings, RetrySettings
from lmdeck.testing.scripted_provider import ScriptedProvider, route, target

FAST = RetrySettings(backoff_base=0.001, backoff_max=0.002, max_retry_after=0.01)
#: What the bundled demo model honours for chat: no tools, no logprobs, no response_format.
PLAIN = Capabilities({"chat": frozenset({"temperature", "max_tokens", "stop", "seed"})})
TOOLS = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}


def router_of(*routes: RouteState) -> Router:
    breakers = CircuitBreakers(BreakerSettings(failure_threshold=50), InProcessBreakerStore())
    return Router({r.name: r for r in routes}, retry=FAST, breakers=breakers, rng=random.Random(0))


def context(route_name: str, principal: Principal | None = None, **fields: Any) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": route_name, "messages": [{"role": "user", "content": "hi"}], **fields}
    )
    return RequestContext(
        kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=route_name, principal=principal
    )


def calls(t: TargetState) -> int:
    assert isinstance(t.provider, ScriptedProvider)
    return t.provider.calls


def served_by(result: Any) -> str:
    assert isinstance(result, Completed)
    return str(result.response.choices[0].message["content"]).removeprefix("reply from ")


def key(*allowed: str) -> Principal:
    return Principal(key_id="k", role="inference", allowed_models=frozenset(allowed))


DOWN = UpstreamError(503, "down")


# -- capabilities -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [TOOLS]),
        ("response_format", {"type": "json_object"}),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("tool_choice", "required"),
        ("some_future_parameter", {"x": 1}),
    ],
)
async def test_a_fallback_that_cannot_honour_a_parameter_is_skipped(field: str, value: Any) -> None:
    """Regression: an upstream failure used to fall back to the demo model, which answered plain text."""
    primary = target("upstream", [DOWN], max_retries=0)
    demo = target("demo", capabilities=PLAIN)
    router = router_of(route("gpt", primary, fallbacks=["demo"]), route("demo", demo))
    ctx = context("gpt", **{field: value})
    with pytest.raises(UpstreamError) as raised:
        await Dispatcher(router)(ctx)
    assert raised.value is DOWN, "a target that was tried and failed outranks the refusal of one that was not"
    assert calls(demo) == 0
    assert ctx.trace.metadata[SKIPPED] == [
        {"route": "demo", "target": "openai:demo", "reason": "unsupported_parameter", "param": field}
    ]


async def test_the_next_fallback_that_honours_the_parameter_serves() -> None:
    primary = target("upstream", [DOWN], max_retries=0)
    demo = target("demo", capabilities=PLAIN)
    spare = target("spare")
    router = router_of(route("gpt", primary, fallbacks=["demo", "spare"]), route("demo", demo), route("spare", spare))
    ctx = context("gpt", tools=[TOOLS])
    assert served_by(await Dispatcher(router)(ctx)) == "spare"
    assert calls(demo) == 0
    assert ctx.trace.fallback_used and ctx.trace.metadata["served_by_route"] == "spare"


async def test_a_request_no_target_can_honour_is_a_400_naming_the_parameter_and_the_model() -> None:
    demo = target("demo", capabilities=PLAIN)
    router = router_of(route("demo", demo))
    with pytest.raises(APIError) as raised:
        await Dispatcher(router)(context("demo", logprobs=True, top_logprobs=2))
    error = raised.value
    assert (error.status, error.param, error.code) == (400, "logprobs", "unsupported_parameter")
    assert "'demo'" in error.message and "`logprobs`" in error.message
    assert calls(demo) == 0


async def test_values_that_ask_for_nothing_are_honoured_everywhere() -> None:
    demo = target("demo", capabilities=PLAIN)
    router = router_of(route("demo", demo))
    ctx = context("demo", logprobs=False, n=1, tools=[], tool_choice="none", response_format={"type": "text"})
    assert served_by(await Dispatcher(router)(ctx)) == "demo"


async def test_within_a_route_only_the_targets_that_honour_the_request_are_tried() -> None:
    plain = target("plain", capabilities=PLAIN, weight=100)
    full = target("full", weight=0)
    router = router_of(route("mixed", plain, full))
    assert served_by(await Dispatcher(router)(context("mixed", logprobs=True))) == "full"
    assert calls(plain) == 0
    assert served_by(await Dispatcher(router)(context("mixed"))) == "plain"


async def test_a_targets_unsupported_params_narrow_what_its_provider_forwards() -> None:
    server = target("vllm", unsupported_params=["logprobs", "top_logprobs"])
    router = router_of(route("llama", server))
    with pytest.raises(APIError) as raised:
        await Dispatcher(router)(context("llama", logprobs=True))
    assert (raised.value.status, raised.value.param) == (400, "logprobs")
    assert served_by(await Dispatcher(router)(context("llama", temperature=0.2))) == "vllm"


async def test_an_endpoint_a_target_does_not_offer_is_refused_by_name() -> None:
    chat_only = target("chat-only", capabilities=PLAIN)
    router = router_of(route("c", chat_only))
    body = CompletionRequest.model_validate({"model": "c", "prompt": "1+1="})
    ctx = RequestContext(kind="completions", body=body, request_id="r", trace=TraceRecord(), route_name="c")
    with pytest.raises(APIError) as raised:
        await Dispatcher(router)(ctx)
    assert (raised.value.status, raised.value.code, raised.value.param) == (400, "unsupported_endpoint", "model")


# -- the key's allow-list ----------------------------------------------------------------------------


async def test_allowed_route_then_disallowed_fallback_is_skipped() -> None:
    """Regression: a fallback used to serve a route the key may not call."""
    primary = target("allowed", [DOWN], max_retries=0)
    secret = target("secret")
    router = router_of(route("allowed", primary, fallbacks=["secret"]), route("secret", secret))
    ctx = context("allowed", principal=key("allowed"))
    with pytest.raises(UpstreamError):
        await Dispatcher(router)(ctx)
    assert calls(secret) == 0
    assert ctx.trace.metadata[SKIPPED] == [
        {"route": "secret", "target": None, "reason": "model_not_allowed", "param": None}
    ]


async def test_allowed_route_then_disallowed_then_allowed_fallback_serves_the_allowed_one() -> None:
    primary = target("allowed", [DOWN], max_retries=0)
    secret = target("secret")
    spare = target("spare")
    router = router_of(
        route("allowed", primary, fallbacks=["secret", "spare"]), route("secret", secret), route("spare", spare)
    )
    assert served_by(await Dispatcher(router)(context("allowed", principal=key("allowed", "spare")))) == "spare"
    assert calls(secret) == 0


async def test_allowed_route_and_allowed_fallback_falls_back() -> None:
    primary = target("allowed", [DOWN], max_retries=0)
    spare = target("spare")
    router = router_of(route("allowed", primary, fallbacks=["spare"]), route("spare", spare))
    assert served_by(await Dispatcher(router)(context("allowed", principal=key("allowed", "spare")))) == "spare"


async def test_a_disallowed_route_is_a_403_even_when_a_fallback_is_allowed() -> None:
    """A route reached after the key check (a prompt's route, an experiment variant) is checked again here."""
    secret = target("secret")
    spare = target("spare")
    router = router_of(route("secret", secret, fallbacks=["spare"]), route("spare", spare))
    with pytest.raises(APIError) as raised:
        await Dispatcher(router)(context("secret", principal=key("spare")))
    assert (raised.value.status, raised.value.code, raised.value.param) == (403, "model_not_allowed", "model")
    assert calls(secret) == calls(spare) == 0


async def test_an_unrestricted_key_and_lmdecks_own_requests_may_use_every_route() -> None:
    primary = target("allowed", [DOWN, DOWN], max_retries=0)
    spare = target("spare")
    router = router_of(route("allowed", primary, fallbacks=["spare"]), route("spare", spare))
    unrestricted = Principal(key_id="k", role="inference")
    assert served_by(await Dispatcher(router)(context("allowed", principal=unrestricted))) == "spare"
    assert served_by(await Dispatcher(router)(context("allowed"))) == "spare"


async def test_disallowed_and_unable_fallbacks_together_leave_the_upstream_failure() -> None:
    primary = target("allowed", [DOWN], max_retries=0)
    secret = target("secret")
    demo = target("demo", capabilities=PLAIN)
    router = router_of(
        route("allowed", primary, fallbacks=["secret", "demo"]), route("secret", secret), route("demo", demo)
    )
    ctx = context("allowed", principal=key("allowed", "demo"), tools=[TOOLS])
    with pytest.raises(UpstreamError):
        await Dispatcher(router)(ctx)
    assert calls(secret) == calls(demo) == 0
    assert [s["reason"] for s in ctx.trace.metadata[SKIPPED]] == ["model_not_allowed", "unsupported_parameter"]


# -- the check other hops ask before moving a request ------------------------------------------------


async def test_route_eligibility_answers_for_a_named_route() -> None:
    demo = route("demo", target("demo", capabilities=PLAIN))
    full = route("full", target("full"))
    check = RouteEligibility({"demo": demo, "full": full}.get)
    assert check(context("x", logprobs=True), "full") is None
    refused = check(context("x", logprobs=True), "demo")
    assert refused is not None and (refused.status, refused.param) == (400, "logprobs")
    denied = check(context("x", principal=key("full")), "demo")
    assert denied is not None and denied.status == 403
    unknown = check(context("x", principal=key("full")), "elsewhere")
    assert unknown is not None and unknown.status == 403
