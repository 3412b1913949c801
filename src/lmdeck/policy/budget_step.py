"""The budget step: refuse a request whose worst-case cost does not fit what is left.

The worst case is the request's prompt bound plus its ``max_tokens`` (see
:mod:`lmdeck.policy.estimate`), priced at the dearest model its route (or a
fallback route) may send it to, every prompt token at that model's dearest input
price (a cache write when the request marks ``cache_control``), rounded up to a
micro-dollar. The reservation is settled with the real cost that
:class:`lmdeck.policy.cost.MeterCost` wrote on the trace (``cost_micros``)::

    EnforceBudget(ledger, prices, route_models=router_models(router), assumed_max_tokens=4096)

A refused request gets OpenAI's quota error: 429 with type and code
``insufficient_quota``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from lmdeck.gateway.routing.router import Router
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.policy.estimate import token_need
from lmdeck.policy.ledger import BudgetExceeded, BudgetLedger, Hold, Subject
from lmdeck.policy.metering import observed
from lmdeck.policy.pricing import PriceTable
from lmdeck.protocol import APIError

#: (provider, upstream model) pairs a route may send a request to.
RouteModels = Callable[[str], Sequence[tuple[str, str]]]


def router_models(router: Router) -> RouteModels:
    """The targets of a route and of its fallback routes, as (provider, model) pairs."""

    def models(route_name: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        todo, seen = [route_name], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            route = router.get(name)
            if route is None:
                continue
            out += [(t.config.provider, t.config.model) for t in route.targets]
            todo += list(route.config.fallbacks)
        return out

    return models


def marks_cache(body: object) -> bool:
    """Whether a request marks a prompt-cache breakpoint (``cache_control``), so it may be charged cache writes."""
    messages = getattr(body, "messages", None) or []
    for message in messages:
        content = getattr(message, "content", None)
        if isinstance(content, list) and any(isinstance(p, dict) and "cache_control" in p for p in content):
            return True
    return False


def subjects_of(ctx: RequestContext) -> list[Subject]:
    principal = ctx.principal
    if principal is None:
        return []
    out: list[Subject] = [("key", principal.key_id)]
    if principal.team_id:
        out.append(("team", principal.team_id))
    return out


class EnforceBudget:
    """Reserves the worst-case cost before the call and settles the real cost after it."""

    name = "budget"

    def __init__(
        self, ledger: BudgetLedger, prices: PriceTable, route_models: RouteModels, assumed_max_tokens: int = 4096
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.route_models = route_models
        self.assumed_max_tokens = assumed_max_tokens

    def worst_case(self, ctx: RequestContext) -> int:
        """The most the request may cost, in micro-dollars."""
        need = token_need(ctx, assumed_max_tokens=self.assumed_max_tokens)
        writes = marks_cache(ctx.body)
        costs = [
            self.prices.price(model, provider).bound(need.worst_prompt, need.max_output, cache_writes=writes)
            for provider, model in self.route_models(ctx.route_name)
        ]
        return max(costs, default=0)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        subjects = subjects_of(ctx)
        if not self.ledger.applies(subjects):
            return await call_next(ctx)
        worst = self.worst_case(ctx)
        try:
            hold = await self.ledger.reserve(subjects, worst)
        except BudgetExceeded as exc:
            raise APIError(429, str(exc), type="insufficient_quota", code="insufficient_quota") from None
        try:
            result = await call_next(ctx)
        except BaseException:
            await self.ledger.settle(hold, ctx.trace.cost_micros)
            raise
        if isinstance(result, Completed):
            await self.ledger.settle(hold, ctx.trace.cost_micros)
            return result
        assert isinstance(result, Streamed)
        return Streamed(observed(result.chunks, self._settler(ctx, hold)), result.headers)

    def _settler(self, ctx: RequestContext, hold: Hold) -> Callable[[BaseException | None], Awaitable[None]]:
        async def settle(_: BaseException | None) -> None:
            await self.ledger.settle(hold, ctx.trace.cost_micros)

        return settle
