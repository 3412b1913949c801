"""Teams: every team (an admin, or a key without a team) or the caller's own, with its limits, how many
keys it holds, its spend this month and its budgets; admins create a team.

The same service calls and scope as ``/api/teams``, ``/api/spend`` and ``/api/budgets``; a team made here
goes through the same validation (``TeamCreate``) and the same audited ``AccessAdmin.create_team`` as
``POST /api/teams``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.routes.budgets import budgets_seen_by
from lmdeck.app.routes.spend import spend_seen_by
from lmdeck.app.routes.teams import teams_seen_by
from lmdeck.app.services import policy_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.forms import first_error
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.protocol.access import TeamCreate

router = APIRouter(prefix="/console/teams", include_in_schema=False)

#: The create form's fields; ``allowed_models`` is a comma-separated list.
TEAM_FIELDS = ("name", "rpm", "tpm", "allowed_models")


def _team_body(form: dict[str, str]) -> dict[str, Any]:
    """The form as a ``TeamCreate`` body: empty fields left out, the allowed models split on commas."""
    body: dict[str, Any] = {k: v for k, v in form.items() if v}
    if "allowed_models" in body:
        models = [m.strip() for m in body.pop("allowed_models").split(",") if m.strip()]
        if models:  # only commas or spaces: no list, so every model (the form's "empty: all")
            body["allowed_models"] = models
    return body


async def _page(request: Request, user: ConsoleUser, *, status_code: int = 200, **extra: Any) -> Response:
    who = user.principal
    policy = policy_of(request)
    teams = await teams_seen_by(request, who)
    try:
        report = await spend_seen_by(request, who, by="team", period="month")
        spent: dict[str | None, int] | None = {r.group: r.cost_micros for r in report.rows}
    except APIError:  # the analytics pool is busy: the page still lists the teams
        spent = None
    budgets = [b for b in budgets_seen_by(policy, who) if b["scope"] == "team"]
    now = time.time()
    rows = [
        {
            **team.to_dict(),
            "keys": sum(k.state(now) == "active" for k in policy.keys.keys_of_team(team.id)),
            "spent_micros": None if spent is None else spent.get(team.id, 0),
            "budgets": [b for b in budgets if b["subject_id"] == team.id],
        }
        for team in teams
    ]
    context = {"teams": rows, "spend_unavailable": spent is None, **extra}
    return render(request, user, "teams/index.html", context, status_code=status_code)


@router.get("")
async def teams(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    return await _page(request, user)


@router.post("")
async def create(request: Request, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    form = await request.form()
    values = {name: v.strip() for name in TEAM_FIELDS if isinstance(v := form.get(name), str)}
    try:
        body = TeamCreate.model_validate(_team_body(values))
        await policy_of(request).access.create_team(user.principal, body)
    except ValidationError as exc:
        return await _page(request, user, status_code=400, error=first_error(exc), form=values)
    except APIError as exc:
        return await _page(request, user, status_code=exc.status, error=exc.message, form=values)
    return RedirectResponse("/console/teams?created=1", status_code=303)


PAGE = ConsolePage(title="Teams", path="/console/teams", min_role="viewer", router=router, order=63)
