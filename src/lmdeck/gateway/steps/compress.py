"""The ``compress`` step (phase ``resolve``, after ``bundle``): a route's opt-in prompt compression.

It rewrites a chat request's messages as :mod:`lmdeck.gateway.compression` describes, when the
route's ``compression`` block is enabled, so that every later step (limits, budgets, the cache,
the upstream) sees the compressed request; the counts go on the trace in
``metadata["compression"]``::

    {"tokens_before": 812, "tokens_after": 496, "tokens_saved": 316, "duplicates_dropped": 1,
     "turns_dropped": 4, "over_budget": false, "tokenizer": "wordpiece (all-MiniLM-L6-v2)"}

Legacy completions (a single prompt) are left as they are. The tokenizer is loaded with the
first request that needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.gateway.compression import TokenCounter, WordPieceCounter, compress
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.settings import RouteConfig

#: The route's configuration by name (the applied registry routes first), or None.
RouteConfigLookup = Callable[[str], RouteConfig | None]

COMPRESSION = "compression"


class CompressPrompt:
    """Compresses the messages of requests to routes that opt in.

    >>> compression_steps(route_config)  # doctest: +SKIP
    [StepDeclaration(step=<CompressPrompt>, phase='resolve', after=('bundle',))]
    """

    name = "compress"

    def __init__(self, routes: RouteConfigLookup, counter: TokenCounter | None = None) -> None:
        self.routes = routes
        self._counter = counter

    @property
    def counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = WordPieceCounter.load()
        return self._counter

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        body = ctx.body
        route = self.routes(ctx.route_name)
        config = route.compression if route is not None else None
        if config is not None and config.enabled and isinstance(body, ChatCompletionRequest) and body.messages:
            counter = self.counter
            outcome = compress(body.messages, config, counter)
            ctx.trace.metadata[COMPRESSION] = outcome.trace_entry(counter)
            if outcome.tokens_saved or len(outcome.messages) != len(body.messages):
                ctx.body = body.model_copy(update={"messages": outcome.messages})
        return await call_next(ctx)


def compression_steps(routes: RouteConfigLookup, counter: TokenCounter | None = None) -> list[StepDeclaration]:
    """The ``compress`` step, declared in phase ``resolve`` after the ``bundle`` step."""
    return [StepDeclaration(CompressPrompt(routes, counter), "resolve", after=("bundle",))]
