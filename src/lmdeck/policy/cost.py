"""The cost step: price the response's token usage and write it on the trace, in micro-dollars.

It is declared in phase ``meter``, inside every other policy step and next to the
dispatcher, so that by the time the steps around it look at the response (budget
settlement, token limits, the record step writing the trace) ``ctx.trace.cost_micros``
and the :data:`USAGE` slot are set::

    StepDeclaration(MeterCost(PriceTable.from_settings(settings), settings.policy.assumed_max_tokens), "meter")

A stream's usage comes in its last chunk (the openai provider asks upstream for
it). A stream that ends early has no usage: its cost is estimated from the
prompt and the pieces of text already sent, and the trace records those estimated
tokens (``metadata["usage_estimated"]``), so that its tokens and its cost agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Slot, Streamed
from lmdeck.policy.estimate import token_need
from lmdeck.policy.metering import Usage, content_pieces, observed, usage_of
from lmdeck.policy.pricing import PriceTable

#: The response's token usage, once known (the rate limiter settles its token buckets with it).
USAGE: Slot[Usage] = Slot("policy.usage")


@dataclass
class _Tally:
    usage: Usage | None = None
    pieces: int = 0
    model: str | None = None

    def add(self, chunk: object) -> None:
        if self.model is None:
            self.model = getattr(chunk, "model", None)
        found = usage_of(chunk)
        if found is not None:
            self.usage = found
        else:
            self.pieces += content_pieces(chunk)


class MeterCost:
    """Sets ``ctx.trace.cost_micros`` (whole micro-dollars) and the :data:`USAGE` slot once usage is known."""

    name = "cost"

    def __init__(self, prices: PriceTable, assumed_max_tokens: int = 4096) -> None:
        self.prices = prices
        self.assumed_max_tokens = assumed_max_tokens

    def settle(self, ctx: RequestContext, usage: Usage, response_model: str | None = None) -> None:
        """Price ``usage`` at the upstream model's price, or the answering model's when the former is unknown."""
        ctx.slots.put(USAGE, usage)
        if usage.estimated:
            ctx.trace.input_tokens, ctx.trace.output_tokens = usage.input_tokens, usage.output_tokens
            ctx.trace.metadata["usage_estimated"] = True
        trace = ctx.trace
        if trace.cache_hit:
            trace.cost_micros = 0
            return
        price = self.prices.price(trace.upstream_model, trace.provider)
        if price.free and response_model:
            price = self.prices.price(response_model, trace.provider)
        trace.cost_micros = price.cost(usage)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        try:
            result = await call_next(ctx)
        except BaseException:
            self.settle(ctx, Usage())  # an upstream that failed bills nothing
            raise
        if isinstance(result, Completed):
            usage = usage_of(result.response)
            if usage is None:
                need = token_need(ctx, assumed_max_tokens=self.assumed_max_tokens)
                usage = Usage(input_tokens=need.prompt, estimated=True)
            self.settle(ctx, usage, getattr(result.response, "model", None))
            return result
        assert isinstance(result, Streamed)
        tally = _Tally()

        async def end(error: BaseException | None) -> None:
            if tally.usage is not None:
                self.settle(ctx, tally.usage, tally.model)
            elif tally.pieces:
                need = token_need(ctx, assumed_max_tokens=self.assumed_max_tokens)
                estimated = Usage(input_tokens=need.prompt, output_tokens=tally.pieces, estimated=True)
                self.settle(ctx, estimated, tally.model)
            else:
                self.settle(ctx, Usage())

        return Streamed(observed(result.chunks, end, tally.add), result.headers)
