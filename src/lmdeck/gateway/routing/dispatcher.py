"""The terminal step of the pipeline: send the request to a target of its route."""

from __future__ import annotations

from lmdeck.gateway.context import Completed, RequestContext, Result, Streamed
from lmdeck.gateway.routing.router import Router, TargetState
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest, EmbeddingRequest


class Dispatcher:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, ctx: RequestContext) -> Result:
        route = self.router.get(ctx.route_name)
        if route is None:
            raise APIError(404, f"the model {ctx.route_name!r} does not exist", code="model_not_found", param="model")
        target = route.targets[0]
        self._stamp(ctx, target)
        return await call_target(ctx, target)

    @staticmethod
    def _stamp(ctx: RequestContext, target: TargetState) -> None:
        ctx.trace.route = ctx.route_name
        ctx.trace.target = target.id
        ctx.trace.provider = target.config.provider
        ctx.trace.upstream_model = target.config.model


async def call_target(ctx: RequestContext, target: TargetState) -> Result:
    provider = target.provider
    body = ctx.body
    if isinstance(body, ChatCompletionRequest):
        if body.stream:
            return Streamed(provider.stream_chat(body))
        return Completed(await provider.chat(body))
    if isinstance(body, CompletionRequest):
        if body.stream:
            return Streamed(provider.stream_completions(body))
        return Completed(await provider.completions(body))
    if isinstance(body, EmbeddingRequest):
        return Completed(await provider.embeddings(body))
    raise TypeError(f"unknown request body {type(body).__name__}")
