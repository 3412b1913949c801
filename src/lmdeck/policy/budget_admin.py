"""Admin actions on budgets, the ledger's reloads, and spend reports.

    budgets = BudgetAdmin(store, ledger, audit, reports, keys, soft_limit=0.8)
    await budgets.reload()                                   # at start and every refresh interval
    await budgets.put(principal, BudgetPut(scope="team", subject_id="team_1", period="month", limit_micros=100_000_000))
    budgets.statuses()                                       # spent / reserved / remaining, live

A budget's spend in its current period is read from the trace store when the
ledger first learns of the budget (at start, or when it is created); after that
the ledger counts each request as it settles.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from lmdeck.changes import ChangeNotices
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.admin import off_loop
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.budgets import Budget, BudgetStore
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.policy.ledger import BudgetBook
from lmdeck.policy.spend import Report, SpendReports
from lmdeck.protocol import APIError
from lmdeck.protocol.access import BudgetPut, GroupBy, Period


class BudgetAdmin:
    """The serving logic behind ``/api/budgets`` and ``/api/spend``."""

    def __init__(
        self,
        store: BudgetStore,
        ledger: BudgetBook,
        audit: AuditLog,
        reports: SpendReports,
        identities: IdentityStore,
        *,
        soft_limit: float = 0.8,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.audit = audit
        self.reports = reports
        self.identities = identities
        self.soft_limit = soft_limit
        #: Told after each change (topic ``policy``) so other processes reload budgets at once.
        self.changes = ChangeNotices()

    def load(self) -> None:
        """Read budgets and their past spend (blocking, for start-up)."""
        budgets = self.store.all()
        self.ledger.set_budgets(budgets, self.store.spent_since(budgets, self.ledger.clock()))

    async def reload(self) -> None:
        budgets = await anyio.to_thread.run_sync(self.store.all)
        known = {b.id for b in self.ledger.budgets()}
        new = [b for b in budgets if b.id not in known]
        spent = await anyio.to_thread.run_sync(lambda: self.store.spent_since(new, self.ledger.clock())) if new else {}
        self.ledger.set_budgets(budgets, spent)
        await self.ledger.refresh()

    def statuses(self, *, team_id: str | None = None, key_ids: set[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for budget in self.ledger.budgets():
            status = self.ledger.status(budget.id)
            if status is None:
                continue
            if team_id is not None and not _visible(status, team_id, key_ids or set()):
                continue
            out.append(status)
        return out

    def status(self, budget_id: str) -> dict[str, Any]:
        status = self.ledger.status(budget_id)
        if status is None:
            raise APIError(404, f"no budget {budget_id!r}", code="not_found")
        return status

    async def put(self, actor: Principal, body: BudgetPut) -> dict[str, Any]:
        # A team named by its name is stored under its id: the budget step matches ids.
        body = body.model_copy(update={"subject_id": await self._subject_id(body)})
        soft = body.soft_limit if body.soft_limit is not None else self.soft_limit
        before = await off_loop(lambda: self.store.find(body.scope, body.subject_id, body.period))
        budget = await off_loop(
            lambda: self.store.put(
                body.scope, body.subject_id, body.period, limit_micros=body.micros(), soft_limit=soft
            )
        )
        await self.audit.record(
            actor.actor,
            "budget.created" if before is None else "budget.changed",
            f"budget:{budget.id}",
            before=before.to_dict() if before else None,
            after=budget.to_dict(),
        )
        await self.reload()
        self.changes.publish("policy")
        return self.status(budget.id)

    async def delete(self, actor: Principal, budget_id: str) -> None:
        before: Budget | None = await off_loop(lambda: self.store.get(budget_id))
        if before is None:
            raise APIError(404, f"no budget {budget_id!r}", code="not_found")
        await off_loop(lambda: self.store.delete(budget_id))
        await self.audit.record(actor.actor, "budget.deleted", f"budget:{budget_id}", before=before.to_dict())
        await self.reload()
        self.changes.publish("policy")

    async def _subject_id(self, body: BudgetPut) -> str:
        """The id of the key or team ``body`` names (a team by id or name); a 400 when there is none."""
        try:
            if body.scope == "team":
                return (await off_loop(lambda: self.identities.team(body.subject_id))).id
            return (await off_loop(lambda: self.identities.key(body.subject_id))).id
        except APIError:
            raise APIError(
                400, f"no {body.scope} {body.subject_id!r} to set a budget on", param="subject_id", code="invalid_value"
            ) from None

    async def report(
        self,
        *,
        by: GroupBy,
        period: Period,
        since: float | None = None,
        until: float | None = None,
        team_id: str | None = None,
    ) -> Report:
        return await off_loop(
            lambda: self.reports.report(
                by=by, period=period, now=time.time(), since=since, until=until, team_id=team_id
            )
        )


def _visible(status: dict[str, Any], team_id: str, key_ids: set[str]) -> bool:
    if status["scope"] == "team":
        return bool(status["subject_id"] == team_id)
    return status["subject_id"] in key_ids
