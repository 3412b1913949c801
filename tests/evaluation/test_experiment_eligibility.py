"""An experiment moves a request to a variant's route only when that route may serve it."""

from __future__ import annotations

from typing import Any

from lmdeck.evaluation.experiments.step import ExperimentStep
from lmdeck.gateway.routing.eligibility import RouteEligibility
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.evaluation import ExperimentSpec
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.capabilities import Capabilities
from lmdeck.testing.scripted_provider import route, target

SPEC = ExperimentSpec.model_validate(
    {
        "name": "cheap-arm",
        "route": "gpt",
        "variants": [{"name": "control", "weight": 0.001}, {"name": "cheap", "weight": 1000, "route": "demo"}],
    }
)
ROUTES = {
    "gpt": route("gpt", target("gpt")),
    "demo": route("demo", target("demo", capabilities=Capabilities({"chat": frozenset({"temperature"})}))),
}


def context(principal: Principal | None = None, **fields: Any) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "user": "u1", **fields}
    )
    return RequestContext(
        kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name="gpt", principal=principal
    )


async def run(ctx: RequestContext) -> RequestContext:
    async def answer(ctx: RequestContext) -> Result:
        return Completed(ChatCompletionResponse(id="x", created=0, model=ctx.route_name, choices=[]))

    step = ExperimentStep(lambda: [SPEC], RouteEligibility(ROUTES.get))
    await step(ctx, answer)
    return ctx


async def test_an_eligible_variant_gets_the_request() -> None:
    ctx = await run(context())
    assert (ctx.route_name, ctx.trace.metadata["variant"]) == ("demo", "cheap")


async def test_a_variant_that_cannot_honour_a_parameter_leaves_the_request_with_the_control() -> None:
    ctx = await run(context(logprobs=True))
    assert (ctx.route_name, ctx.trace.metadata["variant"]) == ("gpt", "control")


async def test_a_variant_the_key_may_not_use_leaves_the_request_with_the_control() -> None:
    key = Principal(key_id="k", role="inference", allowed_models=frozenset({"gpt"}))
    ctx = await run(context(principal=key))
    assert (ctx.route_name, ctx.trace.metadata["variant"]) == ("gpt", "control")
