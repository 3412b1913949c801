"""``shift_weight``: move a target's routing weight to the route's other targets, applied as ``lmdeck apply``
would (an applied route, audited by the registry), so it holds across restarts until changed back."""

from __future__ import annotations

from lmdeck.monitoring.actions.base import ActionContext, ActionError, group_value
from lmdeck.monitoring.incidents import Incident
from lmdeck.protocol.alerts import ActionSpec
from lmdeck.settings import RouteConfig


def shifted(route: RouteConfig, target: str) -> RouteConfig:
    """``route`` with ``target``'s weight 0 and the others' raised by its share (their ratios kept).

    ``ActionError`` when the route has no such target, or no other target with weight to take it.
    """
    ids = [t.id for t in route.targets]
    if target not in ids:
        raise ActionError(f"route {route.name!r} has no target {target!r}; its targets: {', '.join(ids)}")
    moved = sum(t.weight for t in route.targets if t.id == target)
    others = sum(t.weight for t in route.targets if t.id != target)
    if others <= 0:
        raise ActionError(f"route {route.name!r} has no other target with weight to take {target!r}'s traffic")
    targets = [
        t.model_copy(update={"weight": 0.0 if t.id == target else t.weight + moved * t.weight / others})
        for t in route.targets
    ]
    return route.model_copy(update={"targets": targets})


class ShiftWeight:
    """``{type: shift_weight, route: chat, target: "openai:gpt-4o"}``; both default to the alert's labels."""

    async def run(self, ctx: ActionContext, spec: ActionSpec, incident: Incident) -> str:
        route_name = group_value(spec.route, incident, "route", "shift_weight")
        target = group_value(spec.target, incident, "target", "shift_weight")
        if ctx.route_config is None or ctx.apply_route is None:
            raise ActionError("shift_weight needs the gateway's registry, which this evaluator was not given")
        route = ctx.route_config(route_name)
        if route is None:
            raise ActionError(f"no route named {route_name!r}")
        changed = shifted(route, target)
        if changed == route:
            return f"{target} already has no weight on route {route_name!r}"
        await ctx.apply_route(changed)
        weights = ", ".join(f"{t.id}={t.weight:g}" for t in changed.targets)
        return f"route {route_name!r} weights now {weights}"
