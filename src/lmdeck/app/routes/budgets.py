"""``/api/budgets``: spending limits per key and team, their live state, and budget alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import policy_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.policy.services import PolicyServices
from lmdeck.protocol import APIError
from lmdeck.protocol.access import AlertList, AlertOut, BudgetList, BudgetOut, BudgetPut

router = APIRouter(prefix="/api/budgets", tags=["budgets"], route_class=GuardedRoute)


def _own_keys(policy: PolicyServices, who: Principal) -> set[str]:
    return {who.key_id} | {k.id for k in policy.keys.keys_of_team(who.team_id)}


def _scoped(who: Principal) -> bool:
    """Non-admin keys of a team see only their team's budgets and keys."""
    return who.role != "admin" and who.team_id is not None


@router.put("", summary="Create or change the budget of a key or team for a period")
async def put_budget(body: BudgetPut, request: Request, who: Principal = Depends(require("admin"))) -> BudgetOut:
    return BudgetOut.model_validate(await policy_of(request).budgets.put(who, body))


def budgets_seen_by(policy: PolicyServices, who: Principal) -> list[dict[str, Any]]:
    """The budgets ``who`` may see, each with its live state (``BudgetOut``'s fields): all of them for an
    admin or a key without a team, else its team's budget and its team's keys' budgets."""
    if _scoped(who):
        return policy.budgets.statuses(team_id=who.team_id, key_ids=_own_keys(policy, who))
    return policy.budgets.statuses()


@router.get("", summary="Budgets with what is spent, reserved and left in the current period")
async def list_budgets(request: Request, who: Principal = Depends(require("viewer"))) -> BudgetList:
    statuses = budgets_seen_by(policy_of(request), who)
    return BudgetList(data=[BudgetOut.model_validate(s) for s in statuses])


@router.get("/alerts", summary="Recent budget alerts (soft limit crossed, budget used up)")
async def list_alerts(request: Request, who: Principal = Depends(require("viewer"))) -> AlertList:
    policy = policy_of(request)
    alerts = [a.to_dict() for a in policy.alerts.recent]
    if _scoped(who):
        keys = _own_keys(policy, who)
        alerts = [a for a in alerts if a["budget"]["subject_id"] in keys | {who.team_id}]
    return AlertList(data=[AlertOut.model_validate(a) for a in alerts])


@router.get("/{budget_id}", summary="One budget and its live state")
async def get_budget(budget_id: str, request: Request, who: Principal = Depends(require("viewer"))) -> BudgetOut:
    policy = policy_of(request)
    status = policy.budgets.status(budget_id)
    if _scoped(who) and status["subject_id"] not in _own_keys(policy, who) | {who.team_id}:
        raise APIError(404, f"no budget {budget_id!r}", code="not_found")
    return BudgetOut.model_validate(status)


@router.delete("/{budget_id}", status_code=204, summary="Remove a budget")
async def delete_budget(budget_id: str, request: Request, who: Principal = Depends(require("admin"))) -> None:
    await policy_of(request).budgets.delete(who, budget_id)
