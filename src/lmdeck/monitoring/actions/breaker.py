"""``open_breaker``: open a target's circuit breaker, so the route sends its traffic to the other targets
until the breaker's ``reset_timeout`` lets a probe through."""

from __future__ import annotations

from lmdeck.monitoring.actions.base import ActionContext, ActionError, group_value
from lmdeck.monitoring.incidents import Incident
from lmdeck.protocol.alerts import ActionSpec


class OpenBreaker:
    """``{type: open_breaker, target: "openai:gpt-4o"}``; the target defaults to the alert's ``target`` label."""

    async def run(self, ctx: ActionContext, spec: ActionSpec, incident: Incident) -> str:
        target = group_value(spec.target, incident, "target", "open_breaker")
        if ctx.breakers is None:
            raise ActionError("open_breaker needs the gateway's router, which this evaluator was not given")
        breakers = ctx.breakers()
        record = await breakers.trip(target)
        return f"breaker of {target} opened for {breakers.settings.reset_timeout:g}s (at {record.opened_at:.0f})"
