"""``rollback_release`` and ``disable_flag``: the progressive-delivery actions, through
``ReleaseService.rollback`` and ``FlagRuntime.disable_flag`` of :mod:`lmdeck.delivery` (each audited there
too). An evaluator built without them refuses the action, saying so."""

from __future__ import annotations

from lmdeck.monitoring.actions.base import ActionContext, ActionError, group_value
from lmdeck.monitoring.incidents import Incident
from lmdeck.protocol import APIError
from lmdeck.protocol.alerts import ActionSpec


class RollbackRelease:
    """``{type: rollback_release, release: rel_...}``; the release defaults to the alert's ``release`` label."""

    async def run(self, ctx: ActionContext, spec: ActionSpec, incident: Incident) -> str:
        release = group_value(spec.release, incident, "release", "rollback_release")
        if ctx.rollback_release is None:
            raise ActionError(
                f"cannot roll back release {release!r}: this gateway has no release controller (lmdeck.delivery)"
            )
        try:
            await ctx.rollback_release(
                release, f"alert {incident.rule} fired ({incident.id})", f"alert:{incident.rule}"
            )
        except APIError as exc:  # no such release, or one already finished
            raise ActionError(f"cannot roll back release {release!r}: {exc.message}") from None
        return f"release {release!r} rolled back"


class DisableFlag:
    """``{type: disable_flag, flag: new-ui}``; the flag defaults to the alert's ``flag`` label."""

    async def run(self, ctx: ActionContext, spec: ActionSpec, incident: Incident) -> str:
        flag = group_value(spec.flag, incident, "flag", "disable_flag")
        if ctx.disable_flag is None:
            raise ActionError(f"cannot disable flag {flag!r}: this gateway has no feature flags (lmdeck.delivery)")
        try:
            await ctx.disable_flag(flag, f"alert:{incident.rule}")
        except APIError as exc:
            raise ActionError(f"cannot disable flag {flag!r}: {exc.message}") from None
        return f"flag {flag!r} disabled"
