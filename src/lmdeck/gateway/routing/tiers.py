"""Tiered strategies: the strategy itself serves the request, one target (tier) at a time.

Most strategies only order a route's targets (:class:`~lmdeck.gateway.routing.state.Strategy`);
a tiered one (``cascade``, ``learned``) also decides, per request, which target answers and
whether an answer stands, so the dispatcher hands it the eligible targets and a way to call
one of them (with that target's retries, breaker and timeout)::

    answer = await strategy.serve(ctx, route, targets, call)   # call(target, body) -> response

A streamed request is served by a cheaper tier whole (it must be judged before the client sees
it) and replayed as a stream; the last tier streams as usual. Each records its decision on the trace in ``metadata["routing"]``::

    {"strategy": "cascade", "answered_by": "openai:gpt-4o", "tier": 1,
     "reason": "escalated: mean token logprob -1.9 < -0.5",
     "tiers": [{"target": "local:demo", "outcome": "escalated", "reason": "...", "score": -1.9},
               {"target": "openai:gpt-4o", "outcome": "answered", "reason": "last tier"}]}

``tier`` counts from 0 (the cheapest target listed); ``escalated`` in the metrics is
``tier > 0``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import RequestContext

#: Calls one target with a request body; raises ``UpstreamError`` or ``APIError`` when it fails. A whole
#: answer for a body that does not stream; for one that streams, the dispatcher's handle on the
#: stream (past its commit point), which a strategy hands back as it is.
TierCall = Callable[[TargetState, Any], Awaitable[Any]]

#: The trace metadata key of a tiered strategy's decision.
ROUTING = "routing"

Outcome = Literal["answered", "escalated", "failed", "skipped"]


@runtime_checkable
class TieredStrategy(Protocol):
    """A strategy that serves the request itself, tier by tier (see the module docstring)."""

    name: str

    def prepare(self, route: RouteState) -> None:
        """Check that ``route`` can be served (at start-up); raises ``ConfigError`` naming the fix."""
        ...

    def stream_mode(self, route: RouteState) -> Literal["buffer", "refuse"]:
        """How a streamed request is served: ``buffer`` (whole, checked, then replayed) or ``refuse`` (400)."""
        ...

    async def serve(self, ctx: RequestContext, route: RouteState, targets: list[TargetState], call: TierCall) -> Any:
        """The answer that stands (what ``call`` returned for it); raises the last failure when every tier failed."""
        ...


@functools.cache
def _serves_itself(cls: Hashable) -> bool:
    return all(callable(getattr(cls, method, None)) for method in ("prepare", "stream_mode", "serve"))


def as_tiered(strategy: object) -> TieredStrategy | None:
    """``strategy`` when it is a :class:`TieredStrategy`, else None.

    The same answer as ``isinstance(strategy, TieredStrategy)`` for strategies whose methods are
    defined by their class, without the runtime protocol check's cost on every request.
    """
    # A class is hashable; mypy's check of type objects against Hashable says otherwise.
    if strategy is None or not _serves_itself(type(strategy)) or not hasattr(strategy, "name"):  # type: ignore[arg-type]
        return None
    return cast(TieredStrategy, strategy)


@dataclass
class RoutingDecision:
    """What a tiered strategy did for one request; :meth:`record` writes it on the trace."""

    strategy: str
    tiers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self, target: TargetState, outcome: Outcome, reason: str, score: float | None = None) -> None:
        entry: dict[str, Any] = {"target": target.id, "outcome": outcome, "reason": reason}
        if score is not None:
            entry["score"] = score
        self.tiers.append(entry)

    def record(self, ctx: RequestContext, answered: TargetState | None, tier: int | None, reason: str) -> None:
        decision: dict[str, Any] = {
            "strategy": self.strategy,
            "answered_by": answered.id if answered is not None else None,
            "tier": tier,
            "reason": reason,
            "tiers": self.tiers,
            **self.extra,
        }
        ctx.trace.metadata[ROUTING] = decision


def whole(body: Any) -> Any:
    """``body`` asking for a whole answer: a streamed request's copy without ``stream``/``stream_options``."""
    if getattr(body, "stream", False):
        return body.model_copy(update={"stream": False, "stream_options": None})
    return body
