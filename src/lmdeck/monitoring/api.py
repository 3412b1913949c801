"""Serving class of ``/api/alerts``: alerts and their history, rules, channels, silences, tests and export.

Each method takes the caller's actor name where it writes, runs store work in a worker thread and
raises :class:`~lmdeck.protocol.APIError` (OpenAI's error shape) for what the caller must fix::

    api = AlertsAPI(runtime)
    await api.alerts(state="open")                       # [{...incident...}]
    await api.put_rule(spec, actor="key:k1")
    await api.test_channel("ops-hook")                  # {"delivered": True}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from lmdeck.monitoring.export import grafana_dashboard, prometheus_rules
from lmdeck.monitoring.incidents import Incident
from lmdeck.monitoring.notifiers.base import Notification, NotifierError
from lmdeck.monitoring.runtime import AlertRuntime
from lmdeck.monitoring.store import new_id
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import RouteOwner, is_admin, same_team
from lmdeck.protocol import APIError
from lmdeck.protocol.alerts import AlertRuleSpec, AlertsDeclared, ChannelSpec, SilenceSpec

T = TypeVar("T")

#: How many of the newest alerts a non-admin's listing scans for its team's.
_SCOPED_SCAN = 10_000


async def _off(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


class AlertsAPI:
    """See the module docs."""

    def __init__(self, runtime: AlertRuntime, route_owner: Callable[[str], RouteOwner | None] | None = None) -> None:
        self.runtime = runtime
        #: Who owns a route (blocking), for what a developer may silence.
        self.route_owner = route_owner or (lambda route: None)
        self.config = runtime.config
        self.incidents = runtime.incidents

    # -- alerts ----------------------------------------------------------------------------------

    def concerns(self, principal: Principal | None, labels: dict[str, Any]) -> bool:
        """Whether an alert (or rule, or silence) with these labels or matchers is the caller's team's (blocking).

        True for an admin (or no caller: in-process use), for a ``route`` the caller's team owns,
        and for the caller's own ``team_id``; other teams' alerts are neither shown nor changed.
        """
        if principal is None or is_admin(principal):
            return True
        route = labels.get("route")
        owner = self.route_owner(str(route)) if route is not None else None
        if owner is not None and not owner.admins_only and same_team(principal, owner.team_id):
            return True
        return principal.team_id is not None and labels.get("team_id") == principal.team_id

    async def alerts(
        self,
        *,
        state: str | None,
        rule: str | None,
        since: float | None,
        limit: int,
        principal: Principal | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first: for a non-admin only those of its team (see :meth:`concerns`)."""
        if principal is None or is_admin(principal):
            found = await _off(lambda: self.incidents.find(state=state, rule=rule, since=since, limit=limit))
            return [i.to_dict() for i in found]

        def mine() -> list[Incident]:
            # Filtered after reading: the team's alerts among the newest _SCOPED_SCAN of all.
            found = self.incidents.find(state=state, rule=rule, since=since, limit=_SCOPED_SCAN)
            return [i for i in found if self.concerns(principal, i.labels)][:limit]

        return [i.to_dict() for i in await _off(mine)]

    async def alert(self, alert_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """One alert with its evidence (the series around the firing point) and its history.

        Another team's alert is a 404, like one that does not exist.
        """
        incident = await _off(lambda: self.incidents.get(alert_id))
        if incident is None or not await _off(lambda: self.concerns(principal, incident.labels)):
            raise APIError(404, f"no alert {alert_id!r}: list them with GET /api/alerts", param="alert_id")
        out = incident.to_dict(evidence=True)
        out["history"] = await _off(lambda: self.incidents.events(alert_id))
        return out

    async def acknowledge(
        self, alert_id: str, actor: str, comment: str, principal: Principal | None = None
    ) -> dict[str, Any]:
        """Acknowledge a firing alert (audited): 404 when it does not exist or is another team's, 409 when not firing."""
        found = await _off(lambda: self.incidents.get(alert_id))
        if found is not None and not await _off(lambda: self.concerns(principal, found.labels)):
            raise APIError(404, f"no alert {alert_id!r}: list them with GET /api/alerts", param="alert_id")
        try:
            incident = await _off(lambda: self.incidents.acknowledge(alert_id, actor, time.time(), comment))
        except ValueError as exc:
            raise APIError(409, str(exc), param="alert_id") from None
        if incident is None:
            raise APIError(404, f"no alert {alert_id!r}: list them with GET /api/alerts", param="alert_id")
        if self.runtime.audit is not None:
            audit = self.runtime.audit
            await _off(lambda: audit.append(actor, "alerts.alert.acknowledge", alert_id, after={"comment": comment}))
        return incident.to_dict()

    # -- rules and channels -----------------------------------------------------------------------

    def concerns_rule(self, principal: Principal | None, rule: AlertRuleSpec) -> bool:
        """Whether a rule is the caller's team's: its ``signal.where`` and ``labels`` read as an alert's labels."""
        return self.concerns(principal, {**rule.signal.where, **rule.labels})

    async def _rules_of(self, principal: Principal | None) -> list[AlertRuleSpec]:
        return await _off(lambda: [r for r in self.config.rules() if self.concerns_rule(principal, r)])

    async def rules(self, principal: Principal | None = None) -> list[dict[str, Any]]:
        """Rules; for a non-admin only those of its team (see :meth:`concerns_rule`)."""
        errors = self.runtime.evaluator.errors
        rules = await self._rules_of(principal)
        return [{**r.model_dump(mode="json", by_alias=True), "error": errors.get(r.name)} for r in rules]

    async def rule(self, name: str, principal: Principal | None = None) -> dict[str, Any]:
        """One rule; another team's rule is a 404, like one that does not exist."""
        rule = await _off(lambda: self.config.rule(name))
        if rule is None or not await _off(lambda: self.concerns_rule(principal, rule)):
            raise APIError(404, f"no alert rule {name!r}: list them with GET /api/alerts/rules", param="name")
        return {**rule.model_dump(mode="json", by_alias=True), "error": self.runtime.evaluator.errors.get(name)}

    async def check_rule(self, spec: AlertRuleSpec) -> None:
        """Refuse a rule naming an unknown channel, action or anomaly detector (400 naming it)."""
        channels = {c.name for c in await _off(self.config.channels)}
        for channel in spec.channels:
            if channel not in channels:
                raise APIError(
                    400,
                    f"rule {spec.name!r} names unknown channel {channel!r}; add it first (known: "
                    f"{', '.join(sorted(channels)) or 'none'})",
                    param="channels",
                )
        for action in spec.actions:
            if action.type not in self.runtime.actions:
                known = ", ".join(sorted(self.runtime.actions))
                raise APIError(400, f"unknown action type {action.type!r}; known: {known}", param="actions")
        if spec.kind == "anomaly":
            try:
                self.runtime.anomaly_detector(spec)
            except ValueError as exc:
                raise APIError(400, str(exc), param="anomaly.detector") from None

    async def put_rule(self, spec: AlertRuleSpec, actor: str) -> dict[str, Any]:
        await self.check_rule(spec)
        changed = await _off(lambda: self.config.put_rule(spec, actor))
        return {**spec.model_dump(mode="json", by_alias=True), "changed": changed}

    async def delete_rule(self, name: str, actor: str) -> None:
        if not await _off(lambda: self.config.delete_rule(name, actor)):
            raise APIError(404, f"no alert rule {name!r}", param="name")

    async def channels(self) -> list[dict[str, Any]]:
        return [c.model_dump(mode="json", by_alias=True) for c in await _off(self.config.channels)]

    def check_channel(self, spec: ChannelSpec) -> None:
        try:
            self.runtime.dispatcher.notifiers.check(spec)
        except ValueError as exc:
            raise APIError(400, str(exc), param="type") from None

    async def put_channel(self, spec: ChannelSpec, actor: str) -> dict[str, Any]:
        self.check_channel(spec)
        try:
            self.runtime.dispatcher.notifier(spec)  # a missing field or secret is named now, not at the first alert
        except ValueError as exc:
            raise APIError(400, str(exc)) from None
        changed = await _off(lambda: self.config.put_channel(spec, actor))
        return {**spec.model_dump(mode="json", by_alias=True), "changed": changed}

    async def delete_channel(self, name: str, actor: str) -> None:
        if not await _off(lambda: self.config.delete_channel(name, actor)):
            raise APIError(404, f"no notification channel {name!r}", param="name")

    async def test_channel(self, name: str) -> dict[str, Any]:
        """Send a test notification to ``name`` now and report the outcome (nothing is queued)."""
        spec = await _off(lambda: self.config.channel(name))
        if spec is None:
            raise APIError(404, f"no notification channel {name!r}", param="channel")
        try:
            notifier = self.runtime.dispatcher.notifier(spec)
        except ValueError as exc:
            raise APIError(400, str(exc), param="channel") from None
        now = time.time()
        payload = {
            "event": "test",
            "incident": {
                "id": "test",
                "rule": "lmdeck-test",
                "state": "firing",
                "severity": "info",
                "labels": {"rule": "lmdeck-test", "severity": "info"},
                "group": {},
                "summary": f"a test notification to channel {name!r}",
                "started_at": now,
                "fired_at": now,
            },
            "rule": {"name": "lmdeck-test"},
        }
        try:
            await notifier.send(Notification(new_id("ntf"), name, "test", payload))
        except NotifierError as exc:
            return {"channel": name, "delivered": False, "error": str(exc)}
        except Exception as exc:  # a notifier's own failure is the test's answer, not a server error
            return {"channel": name, "delivered": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"channel": name, "delivered": True, "error": None}

    # -- silences ---------------------------------------------------------------------------------

    async def silences(self, include_expired: bool, principal: Principal | None = None) -> list[dict[str, Any]]:
        """Silences; for a non-admin only those whose matchers are its team's (see :meth:`concerns`)."""
        found = await _off(lambda: self.config.silences(include_expired=include_expired))
        mine = await _off(lambda: [x for x in found if self.concerns(principal, x.matchers)])
        return [x.to_dict() for x in mine]

    def check_silencer(self, principal: Principal | None, matchers: dict[str, str]) -> None:
        """Refuse (403) a non-admin's silence unless it is confined to the caller's own team (blocking).

        Its matchers must name a ``route`` the caller's team owns, or the caller's own ``team_id``:
        a silence without them would mute every team's alerts.
        """
        if principal is None or is_admin(principal):
            return
        route = matchers.get("route")
        owner = self.route_owner(route) if route is not None else None
        if owner is not None and not owner.admins_only and same_team(principal, owner.team_id):
            return
        if principal.team_id is not None and matchers.get("team_id") == principal.team_id:
            return
        raise APIError(
            403,
            "a silence by a non-admin key must match only its own team's alerts: add the matcher "
            "`route` naming a route your team owns, or `team_id` naming your team (an admin may silence anything)",
            param="matchers",
            code="not_route_owner",
        )

    async def add_silence(self, spec: SilenceSpec, actor: str, principal: Principal | None = None) -> dict[str, Any]:
        if spec.ends_at.timestamp() <= time.time():
            raise APIError(400, "ends_at is in the past: a silence ends in the future", param="ends_at")

        def add() -> Any:
            self.check_silencer(principal, spec.matchers)
            if spec.id is not None and principal is not None and not is_admin(principal):
                # Replacing another team's silence by its id would lift it: only a new id, or one's own.
                for existing in self.config.silences(include_expired=True):
                    if existing.id == spec.id:
                        self.check_silencer(principal, existing.matchers)
            return self.config.add_silence(spec, actor)

        try:
            silence = await _off(add)
        except ValueError as exc:
            raise APIError(400, str(exc), param="ends_at") from None
        return silence.to_dict()

    async def expire_silence(self, silence_id: str, actor: str, principal: Principal | None = None) -> None:
        def expire() -> bool:
            if principal is not None and not is_admin(principal):
                for existing in self.config.silences(include_expired=False):
                    if existing.id == silence_id:
                        self.check_silencer(principal, existing.matchers)
            return self.config.expire_silence(silence_id, actor)

        if not await _off(expire):
            raise APIError(404, f"no active silence {silence_id!r}", param="silence_id")

    # -- apply, evaluate, dead letters, export ------------------------------------------------------

    async def apply(self, declared: AlertsDeclared, *, dry_run: bool, prune: bool, actor: str) -> dict[str, Any]:
        known = {c.name for c in declared.channels} | {c.name for c in await _off(self.config.channels)}
        for channel in declared.channels:
            self.check_channel(channel)
        for rule in declared.rules:
            missing = [c for c in rule.channels if c not in known]
            if missing:
                raise APIError(400, f"rule {rule.name!r} names unknown channel {missing[0]!r}", param="rules")
        try:
            if dry_run:
                changes = await _off(lambda: self.config.plan(declared, prune=prune))
            else:
                changes = await _off(lambda: self.config.apply(declared, prune=prune, actor=actor))
        except ValueError as exc:  # a silence that ends before it starts
            raise APIError(400, str(exc), param="silences") from None
        return {
            "dry_run": dry_run,
            "changes": [c.description for c in changes],
            "summary": f"{len(changes)} change(s)" if changes else "no changes",
        }

    async def evaluate(self, at: float | None) -> dict[str, Any]:
        report = await self.runtime.run_once(at)
        return report.to_dict()

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        return [i.to_dict() for i in await _off(lambda: self.incidents.outbox(status="dead", limit=limit))]

    async def notifications(self, limit: int) -> list[dict[str, Any]]:
        return [i.to_dict() for i in await _off(lambda: self.incidents.outbox(limit=limit))]

    async def retry_dead(self, item_id: str) -> dict[str, Any]:
        count = await _off(lambda: self.incidents.retry_dead([item_id], time.time()))
        if not count:
            raise APIError(404, f"no dead-lettered notification {item_id!r}", param="notification_id")
        await self.runtime.dispatcher.drain()
        return {"requeued": count}

    async def export_prometheus(self, principal: Principal | None = None) -> str:
        """Prometheus alerting rules (YAML) of the rules the caller may read."""
        return prometheus_rules(await self._rules_of(principal))

    @staticmethod
    def export_grafana() -> dict[str, Any]:
        return grafana_dashboard()
