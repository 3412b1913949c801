"""Serving class of ``/api/evaluation/online``: the rules, and the scores they produced.

Rules live in the store; every process reloads them when this one changes a rule and
every ``poll_interval`` seconds, and hands them to its :class:`OnlineEvaluator`. A rule
created through the API belongs to its creator's team and scores only that team's
traces (its judges call as that team); rules of the config file score every team's.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from lmdeck.changes import ChangeNotices
from lmdeck.evaluation.online.observer import OnlineEvaluator
from lmdeck.evaluation.online.store import OnlineStore
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    Owner,
    check_add,
    check_change,
    is_admin,
    may_read,
    owner_after_update,
    owner_for_new,
)
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.evaluation import OnlineRule
from lmdeck.registry.owners import resolve_team

log = logging.getLogger(__name__)


class OnlineRuleService:
    def __init__(
        self, store: OnlineStore, evaluator: OnlineEvaluator, configured: list[OnlineRule], poll_interval: float = 2.0
    ) -> None:
        self.store = store
        self.evaluator = evaluator
        self.configured = configured
        self.poll_interval = poll_interval
        self._changes = ChangeNotices()
        self._poller = Poller(
            self._reload,
            interval=poll_interval,
            name="online-rules-poll",
            log=log,
            failure=f"reloading online rules failed; retrying in {poll_interval:.1f}s",
        )

    def load(self) -> list[str]:
        """Read the stored rules (blocking) and swap them in with the configured ones."""
        stored = self.store.owned_rules()
        names = {r.name for r, _ in stored}
        rules = [r for r, _ in stored] + [r for r in self.configured if r.name not in names]
        return self.evaluator.set_rules(rules, {r.name: owner for r, owner in stored})

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce this process's rule changes through ``changes``; reload at once on other processes'."""
        self._changes = changes
        changes.subscribe("online_evals", self._poller.nudge)

    async def refresh(self) -> list[str]:
        """Reload after a committed rule change, and tell other processes to reload; the problems of left-out rules."""
        problems = await self._reload()
        self._changes.publish("online_evals")
        return problems

    async def _reload(self) -> list[str]:
        return await anyio.to_thread.run_sync(self.load)

    def _missing(self, name: str) -> APIError:
        return APIError(404, f"no online rule {name!r}", code="not_found")

    def _configured(self, name: str) -> bool:
        return any(r.name == name for r in self.configured)

    async def save(
        self,
        rule: OnlineRule,
        principal: Principal,
        *,
        team: str | None = None,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Create a rule for the caller's team (an admin may name another), or replace one it may change."""
        problems = self.evaluator.registry_problems(rule)
        if problems:
            raise APIError(400, problems, param="evaluators", code="invalid_evaluator")

        def write() -> bool:
            what = f"online rule {rule.name!r}"
            existing = check_add(principal, self.store.rule_owner(rule.name), what)
            if existing is not None:
                if team is not None or visibility is not None:
                    raise APIError(
                        409,
                        f"{what} exists: change its team or visibility with PATCH",
                        code="already_registered",
                    )
                return bool(self.store.save_rule(rule, principal.actor))
            if self._configured(rule.name) and not is_admin(principal):
                raise APIError(
                    403, f"{what} comes from the config file, which only an admin overrides", code="forbidden"
                )
            with self.store.db.engine.connect() as conn:
                owner = owner_for_new(principal, resolve_team(conn, team), visibility)
            return bool(self.store.save_rule(rule, principal.actor, owner))

        created = await anyio.to_thread.run_sync(write)
        await self.refresh()
        return {"created": created, **rule.model_dump(mode="json"), **self._owner_fields(rule.name)}

    async def delete(self, name: str, principal: Principal) -> None:
        def write() -> bool:
            owner = self.store.rule_owner(name)
            check_change(principal, owner, f"online rule {name!r}", lambda: self._missing(name))
            return self.store.delete_rule(name)

        if not await anyio.to_thread.run_sync(write):
            raise self._missing(name)
        await self.refresh()

    async def update_owner(
        self,
        name: str,
        principal: Principal,
        *,
        team: str | None = None,
        team_given: bool = False,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Share, unshare or (admins) give a stored rule to another team."""

        def write() -> None:
            what = f"online rule {name!r}"
            current = check_change(principal, self.store.rule_owner(name), what, lambda: self._missing(name))
            with self.store.db.engine.connect() as conn:
                resolved = resolve_team(conn, team) if team_given else None
            changed = owner_after_update(
                principal, current, what, team=resolved, team_given=team_given, visibility=visibility
            )
            self.store.set_owner(name, changed)

        await anyio.to_thread.run_sync(write)
        await self.refresh()
        found = next((r for r in self.rules(principal) if r["name"] == name), None)
        if found is None:
            raise self._missing(name)
        return found

    def _owner_fields(self, name: str) -> dict[str, Any]:
        owner = self.evaluator.owner_of(name)
        if owner is None:
            return {"team_id": None, "visibility": "shared", "source": "config"}
        return {**owner.to_dict(), "source": "api"}

    def _visible(self, owner: Owner | None, principal: Principal) -> bool:
        return owner is None or may_read(principal, owner)

    def rules(self, principal: Principal) -> list[dict[str, Any]]:
        """The rules in force that ``principal`` may read (config rules: every caller)."""
        return [
            {**r.model_dump(mode="json"), **self._owner_fields(r.name)}
            for r in self.evaluator.rules
            if self._visible(self.evaluator.owner_of(r.name), principal)
        ]

    async def scores(
        self, principal: Principal, trace_id: str | None, rule: str | None, limit: int
    ) -> list[dict[str, Any]]:
        admin = principal.role == "admin"

        def read() -> list[dict[str, Any]]:
            found = self.store.scores(
                trace_id=trace_id, rule=rule, team_id=principal.team_id, all_teams=admin, limit=limit
            )
            return [s.to_dict() for s in found]

        return await anyio.to_thread.run_sync(read)

    async def summary(self, principal: Principal) -> list[dict[str, Any]]:
        admin = principal.role == "admin"
        return await anyio.to_thread.run_sync(lambda: self.store.summary(team_id=principal.team_id, all_teams=admin))

    async def start(self) -> None:
        problems = await self._reload()
        for problem in problems:
            log.warning("online evaluation: %s (rule left out)", problem)
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
