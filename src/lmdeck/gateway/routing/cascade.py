"""The ``cascade`` strategy: the cheapest target first, escalating when its answer is not confident.

Targets are tried in the order the route lists them (cheapest first). Each answer but the
last target's must pass every check of the route's ``cascade.checks`` (see
:mod:`lmdeck.gateway.routing.confidence`); a failing check, or a failed call, escalates to the
next target. A ``logprob`` check asks the target for token log-probabilities whatever the client
asked, and removes them again from an answer the client did not ask them for::

    routes:
      - name: smart
        strategy: cascade
        targets: [local:demo, openai:gpt-4o]
        cascade:
          checks: [{kind: logprob, min_logprob: -0.3}]

The decision (which target answered, and why each earlier one was passed over) is on the
trace in ``metadata["routing"]`` (see :mod:`lmdeck.gateway.routing.tiers`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from lmdeck.gateway.routing.confidence import (
    ConfidenceCheck,
    ConfidenceChecks,
    Verdict,
    with_logprobs,
    without_logprobs,
)
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.gateway.routing.tiers import RoutingDecision, TierCall, whole
from lmdeck.pipeline.context import RequestContext
from lmdeck.protocol import APIError
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import CascadeConfig, RouteConfig


class CascadeStrategy:
    """Serves a request from the cheapest target whose answer passes the route's checks.

    >>> CascadeStrategy(ConfidenceChecks.builtin()).name
    'cascade'
    """

    name = "cascade"

    def __init__(self, checks: ConfidenceChecks) -> None:
        self._registry = checks
        self._checks: dict[int, tuple[RouteConfig, list[ConfidenceCheck]]] = {}

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        return list(targets)

    def stream_mode(self, route: RouteState) -> Literal["buffer", "refuse"]:
        return (route.config.cascade or CascadeConfig()).stream

    def prepare(self, route: RouteState) -> None:
        """Build the route's checks now, so that a check it cannot build is a start-up ``ConfigError``."""
        self.checks(route)

    def checks(self, route: RouteState) -> list[ConfidenceCheck]:
        cached = self._checks.get(id(route.config))
        if cached is not None and cached[0] is route.config:
            return cached[1]
        config = route.config.cascade or CascadeConfig()
        built = [self._registry.create(c) for c in config.checks]
        self._checks[id(route.config)] = (route.config, built)
        return built

    async def serve(self, ctx: RequestContext, route: RouteState, targets: list[TargetState], call: TierCall) -> Any:
        checks = self.checks(route)
        decision = RoutingDecision(self.name)
        tier_of = {t.id: i for i, t in enumerate(route.targets)}
        needs_logprobs = any(c.needs_logprobs for c in checks)
        asked_logprobs = _asked_logprobs(ctx.body)
        last_error: UpstreamError | APIError | None = None
        for position, target in enumerate(targets):
            final = position == len(targets) - 1
            body = ctx.body if final else whole(ctx.body)
            if needs_logprobs and not final:
                body = with_logprobs(body)
            try:
                answer = await call(target, body)
            except (UpstreamError, APIError) as exc:
                last_error = exc
                decision.note(target, "failed", f"{getattr(exc, 'status', '')} {exc}".strip())
                continue
            if final:
                decision.note(target, "answered", "last tier")
                reason = "last tier" if position == 0 else f"escalated: {decision.tiers[-2]['reason']}"
                decision.record(ctx, target, tier_of.get(target.id), reason)
                return answer
            verdict = await _judge(checks, ctx.body, answer)
            if verdict.passed:
                decision.note(target, "answered", verdict.reason, verdict.score)
                decision.record(ctx, target, tier_of.get(target.id), f"confident: {verdict.reason}")
                return answer if asked_logprobs or not needs_logprobs else without_logprobs(answer)
            decision.note(target, "escalated", verdict.reason, verdict.score)
        decision.record(ctx, None, None, "every tier failed")
        assert last_error is not None
        raise last_error


async def _judge(checks: list[ConfidenceCheck], request: Any, answer: BaseModel) -> Verdict:
    """The first failing check's verdict, or the last passing one's."""
    verdict = Verdict(True, "no checks")
    for check in checks:
        verdict = await check.judge(request, answer)
        if not verdict.passed:
            return verdict
    return verdict


def _asked_logprobs(body: Any) -> bool:
    value = getattr(body, "logprobs", None)
    return value is not None and value is not False
