"""Which targets may serve a request: the one check every hop goes through.

A request goes to a target only when

1. the caller's key may use the route the target serves (the key's and team's ``allowed_models``), and
2. the target's data class (``external``, ``in_house``) is among those the request's data may go to,
   when a step restricted them (:data:`ALLOWED_DATA_CLASSES`, the guardrails' data policy), and
3. the target offers the request's endpoint and honours every parameter the request uses: its
   provider's declared capabilities less the target's ``unsupported_params``
   (see :mod:`lmdeck.providers.capabilities`).

The dispatcher asks it for the requested route and for every fallback route, whatever brought the
request there (an experiment variant, a prompt's route, an applied registry route, a registry alias
target): ineligible targets are skipped. When no target of any route was eligible, the request is
refused with the requested route's reason::

    targets, refusal = eligible_targets(ctx, route, router.order(route))
    if not targets:
        raise refusal        # 403 model_not_allowed, or 400 unsupported_parameter naming `param`

Each skip is noted on the trace in ``metadata["skipped_targets"]``.
"""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import RequestContext, Slot
from lmdeck.protocol import APIError
from lmdeck.protocol.parameters import ENDPOINT_NAMES
from lmdeck.providers.capabilities import Refusal, capabilities_of

SKIPPED = "skipped_targets"

#: The data classes of the targets the request may be sent to; no value: any target.
ALLOWED_DATA_CLASSES: Slot[frozenset[str]] = Slot("eligibility.data_classes")


def route_refusal(ctx: RequestContext, route: str) -> APIError | None:
    """A 403 when the caller's key may not use ``route``; None when it may (or the request is lmdeck's own)."""
    principal = ctx.principal
    if principal is None or principal.may_use(route):
        return None
    return APIError(403, f"this key may not use the model {route!r}", code="model_not_allowed", param="model")


def target_refusal(ctx: RequestContext, target: TargetState) -> Refusal | None:
    """Why ``target`` cannot honour the request, or None when it can."""
    capabilities = capabilities_of(target.provider).refusing(target.config.unsupported_params)
    return capabilities.refusal(ctx.body)


def refusal_error(route: str, refusal: Refusal) -> APIError:
    """The 400 a client gets when no target can honour its request."""
    if refusal.param is None:
        return APIError(
            400,
            f"the model {route!r} does not serve {ENDPOINT_NAMES[refusal.endpoint]}: call a model that does",
            param="model",
            code=refusal.code,
        )
    return APIError(
        400,
        f"the model {route!r} does not support the parameter `{refusal.param}`: remove it, "
        "or call a model that supports it",
        param=refusal.param,
        code=refusal.code,
    )


def eligible_targets(
    ctx: RequestContext, route: RouteState, ordered: list[TargetState]
) -> tuple[list[TargetState], APIError | None]:
    """The targets of ``ordered`` that may serve the request, and the reason for refusing it when none may."""
    denied = route_refusal(ctx, route.name)
    if denied is not None:
        _note(ctx, route.name, None, "model_not_allowed", None)
        return [], denied
    eligible: list[TargetState] = []
    first: Refusal | None = None
    allowed = ctx.slots.get(ALLOWED_DATA_CLASSES)
    held_back = False
    for target in ordered:
        if allowed is not None and target.config.data_classification not in allowed:
            held_back = True
            _note(ctx, route.name, target.id, "data_class", None)
            continue
        refusal = target_refusal(ctx, target)
        if refusal is None:
            eligible.append(target)
            continue
        first = first or refusal
        _note(ctx, route.name, target.id, refusal.code, refusal.param)
    if eligible:
        return eligible, None
    if first is None and held_back:
        return [], data_class_refusal(route.name, allowed or frozenset())
    if first is None:
        return eligible, None
    return [], refusal_error(route.name, first)


def data_class_refusal(route: str, allowed: frozenset[str]) -> APIError:
    """The 422 a request gets when its data may not go to any target of ``route``."""
    classes = " or ".join(sorted(allowed))
    return APIError(
        422,
        f"the data policy allows this request only on {classes} targets and the model {route!r} has none: "
        f"add a target with data_class {classes} to it or to its fallbacks",
        param="model",
        code="content_policy_violation",
    )


#: ``check(ctx, route_name)``: the refusal a request would get from that route, or None.
RouteCheck = Callable[[RequestContext, str], APIError | None]


class RouteEligibility:
    """Whether some target of a named route may serve a request (a step's check before moving it there).

    >>> check = RouteEligibility(router.get)
    >>> check(ctx, "variant-b")   # None, or the 403/400 the request would get there
    """

    def __init__(self, lookup: Callable[[str], RouteState | None]) -> None:
        self.lookup = lookup

    def __call__(self, ctx: RequestContext, route: str) -> APIError | None:
        state = self.lookup(route)
        if state is None:
            return route_refusal(ctx, route)
        return eligible_targets(ctx, state, state.targets)[1]


def _note(ctx: RequestContext, route: str, target: str | None, reason: str, param: str | None) -> None:
    skipped = ctx.trace.metadata.setdefault(SKIPPED, [])
    skipped.append({"route": route, "target": target, "reason": reason, "param": param})
