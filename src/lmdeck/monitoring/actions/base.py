"""The action contract: ``await Action.run(ctx, spec, incident) -> str`` (what was done), or :class:`ActionError`.

The evaluator reports incidents that fired; the alert service runs their rules' actions once per
incident, off the request path, and records each outcome in the incident's history and the audit log
(actor ``alert:<rule>``). :class:`ActionContext` carries what actions reach in the gateway, each
``None`` where the gateway has no such part (the action then refuses, saying what is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from lmdeck.gateway.routing.breaker import CircuitBreakers
from lmdeck.monitoring.incidents import Incident, IncidentStore
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.alerts import ActionSpec, AlertRuleSpec
from lmdeck.settings import RouteConfig

log = logging.getLogger(__name__)


class ActionError(Exception):
    """An action could not be carried out; the message says why and what would let it."""


@dataclass
class ActionContext:
    """The gateway's parts actions act on (see the module docs).

    ``breakers``: the circuit breakers of the served routes; ``route_config``: a route's live config
    (applied or from the file); ``apply_route``: applies a changed route config as ``lmdeck apply`` does
    (audited by the registry); ``rollback_release(release, reason, actor)`` and ``disable_flag(flag,
    actor)``: the delivery functions, where the gateway has releases and flags.
    """

    breakers: Callable[[], CircuitBreakers] | None = None
    route_config: Callable[[str], RouteConfig | None] | None = None
    apply_route: Callable[[RouteConfig], Awaitable[None]] | None = None
    rollback_release: Callable[[str, str, str], Awaitable[Any]] | None = None
    disable_flag: Callable[[str, str], Awaitable[Any]] | None = None


class Action(Protocol):
    """Does one thing to the gateway when an alert fires."""

    async def run(self, ctx: ActionContext, spec: ActionSpec, incident: Incident) -> str:
        """Carry out ``spec`` for ``incident``; a one-line account of what was done, or :class:`ActionError`."""
        ...


def group_value(spec_value: str | None, incident: Incident, label: str, action: str) -> str:
    """The action's ``label`` (target, route...): as written in the spec, else the alert's group label."""
    value = spec_value or incident.labels.get(label)
    if not value:
        raise ActionError(f"{action} needs `{label}`: set it on the action, or split the rule by {label}")
    return str(value)


async def run_actions(
    actions: Mapping[str, Action],
    ctx: ActionContext,
    incident: Incident,
    rule: AlertRuleSpec,
    incidents: IncidentStore,
    audit: AuditLog | None,
    now: float,
) -> list[dict[str, Any]]:
    """Run ``rule``'s actions for a fired ``incident``; each outcome recorded and audited, and returned."""
    outcomes = []
    for spec in rule.actions:
        action = actions.get(spec.type)
        try:
            if action is None:
                raise ActionError(f"unknown action type {spec.type!r}; known: {', '.join(sorted(actions))}")
            done = await action.run(ctx, spec, incident)
            outcome = {"type": spec.type, "ok": True, "result": done}
        except ActionError as exc:
            outcome = {"type": spec.type, "ok": False, "error": str(exc)}
        except Exception as exc:  # an action's own failure must not stop the others, nor the evaluator
            log.exception("alert action %s of rule %r failed", spec.type, rule.name)
            outcome = {"type": spec.type, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        outcomes.append(outcome)

        def record(outcome: dict[str, Any] = outcome, spec: ActionSpec = spec) -> None:
            with incidents.db.engine.begin() as conn:
                incidents.event(conn, incident.id, now, "action", outcome)
            if audit is not None:
                audit.append(
                    f"alert:{rule.name}",
                    f"alerts.action.{spec.type}",
                    incident.id,
                    before=spec.model_dump(exclude_none=True),
                    after=outcome,
                )

        await anyio.to_thread.run_sync(record)
    return outcomes
