"""Data policy: which requests may leave the house, and where the others go.

Targets carry a data class (``external``: a third party's API; ``in_house``: the local engine,
a self-hosted server; see ``TargetConfig.data_class``). A request is *restricted* when a
guardrail named in ``guardrails.data_policy.restricted`` finds something in its input, or it
carries a tag in ``data_policy.tags``. A restricted request is then, per ``action``:

``reroute``
    served only by targets whose class is in ``allowed``: the route's own, then its
    fallbacks' (the dispatcher skips the others, see
    :mod:`lmdeck.gateway.routing.eligibility`); when none of them is allowed, the request
    moves to ``data_policy.route``, and without one it is refused.
``mask``
    sent where it was going, with what the restricted guardrails found masked (and restored
    in the answer).
``refuse``
    refused with a 422 ``content_policy_violation``.

The decision is on the trace as ``metadata["data_policy"]``::

    {"restricted": ["pii"], "entities": ["EMAIL_ADDRESS"], "action": "reroute",
     "allowed": ["in_house"], "route": "support", "moved_to": null,
     "reason": "input holds data restricted by the data policy (pii: EMAIL_ADDRESS); only in_house targets may serve it"}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmdeck.gateway.routing.eligibility import ALLOWED_DATA_CLASSES
from lmdeck.pipeline.context import RequestContext
from lmdeck.protocol import APIError
from lmdeck.protocol.guardrails import DataPolicy

#: The trace's ``metadata`` key of the decision.
DECISION = "data_policy"

#: ``check(ctx, route)``: the refusal the request would get from that route, or None when a target may serve it.
RouteCheck = Callable[[RequestContext, str], APIError | None]
#: ``fallbacks(route)``: the route's fallback routes, in order.
Fallbacks = Callable[[str], Sequence[str]]


@dataclass
class Restriction:
    """Why a request is restricted: the guardrails that found something (with entity types) and the tags."""

    guardrails: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.guardrails or self.tags)

    def describe(self) -> str:
        parts = [f"{name}: {', '.join(kinds)}" if kinds else name for name, kinds in self.guardrails.items()]
        parts += [f"tag {tag!r}" for tag in self.tags]
        return "; ".join(parts)


def restricted_tags(policy: DataPolicy, tags: Sequence[str] | None) -> list[str]:
    return [t for t in tags or () if t in policy.tags]


def policy_error(message: str) -> APIError:
    return APIError(422, message, code="content_policy_violation", param="messages")


def apply_reroute(
    ctx: RequestContext,
    policy: DataPolicy,
    restriction: Restriction,
    check: RouteCheck,
    fallbacks: Fallbacks,
) -> dict[str, Any]:
    """Keep the request on allowed targets (moving it to ``policy.route`` when none is on its way).

    Returns the decision for the trace; raises the 422 when no allowed target can serve it.
    """
    allowed = frozenset(policy.allowed)
    ctx.slots.put(ALLOWED_DATA_CLASSES, allowed)
    classes = " or ".join(sorted(allowed))
    decision: dict[str, Any] = {
        "restricted": sorted(restriction.guardrails),
        "tags": restriction.tags,
        "entities": sorted({k for kinds in restriction.guardrails.values() for k in kinds}),
        "action": "reroute",
        "allowed": sorted(allowed),
        "route": ctx.route_name,
        "moved_to": None,
        "reason": f"input holds data restricted by the data policy ({restriction.describe()}); "
        f"only {classes} targets may serve it",
    }
    on_the_way = [ctx.route_name, *fallbacks(ctx.route_name)]
    if any(check(ctx, name) is None for name in on_the_way):
        return decision
    if policy.route is not None and check(ctx, policy.route) is None:
        decision["moved_to"] = policy.route
        decision["reason"] += f"; route {ctx.route_name!r} has none, so it was sent to {policy.route!r}"
        ctx.route_name = policy.route
        return decision
    decision["action"] = "refuse"
    decision["reason"] += f"; no {classes} target of route {ctx.route_name!r} or its fallbacks can serve it"
    ctx.trace.metadata[DECISION] = decision
    raise policy_error(
        f"this request holds data the data policy keeps in house ({restriction.describe()}) and no {classes} "
        f"target of the model {ctx.route_name!r} can serve it: add a target with data_class {classes} to the route "
        "or its fallbacks, or set guardrails.data_policy.route"
    )
