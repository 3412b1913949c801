"""Serving class of ``/api/evaluation/online``: the rules, and the scores they produced.

Rules live in the store; every process reloads them when this one changes a rule and
every ``poll_interval`` seconds, and hands them to its :class:`OnlineEvaluator`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from lmdeck.evaluation.online.observer import OnlineEvaluator
from lmdeck.evaluation.online.rules import OnlineRule
from lmdeck.evaluation.online.store import OnlineStore
from lmdeck.policy.principal import Principal
from lmdeck.polling import Poller
from lmdeck.protocol import APIError

log = logging.getLogger(__name__)


class OnlineRuleService:
    def __init__(
        self, store: OnlineStore, evaluator: OnlineEvaluator, configured: list[OnlineRule], poll_interval: float = 2.0
    ) -> None:
        self.store = store
        self.evaluator = evaluator
        self.configured = configured
        self.poll_interval = poll_interval
        self._poller = Poller(
            self.refresh,
            interval=poll_interval,
            name="online-rules-poll",
            log=log,
            failure=f"reloading online rules failed; retrying in {poll_interval:.1f}s",
        )

    def load(self) -> list[str]:
        """Read the stored rules (blocking) and swap them in with the configured ones."""
        stored = self.store.rules()
        names = {r.name for r in stored}
        return self.evaluator.set_rules([*stored, *(r for r in self.configured if r.name not in names)])

    async def refresh(self) -> list[str]:
        return await anyio.to_thread.run_sync(self.load)

    async def save(self, rule: OnlineRule, principal: Principal) -> dict[str, Any]:
        problems = self.evaluator.registry_problems(rule)
        if problems:
            raise APIError(400, problems, param="evaluators", code="invalid_evaluator")
        created = await anyio.to_thread.run_sync(self.store.save_rule, rule, principal.actor)
        await self.refresh()
        return {"created": created, **rule.model_dump(mode="json")}

    async def delete(self, name: str) -> None:
        if not await anyio.to_thread.run_sync(self.store.delete_rule, name):
            raise APIError(404, f"no online rule {name!r}", code="not_found")
        await self.refresh()

    def rules(self) -> list[dict[str, Any]]:
        return [r.model_dump(mode="json") for r in self.evaluator.rules]

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
        problems = await self.refresh()
        for problem in problems:
            log.warning("online evaluation: %s (rule left out)", problem)
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
