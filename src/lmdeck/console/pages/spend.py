"""Spend: recorded cost over the current day or month per team, key or model (a chart and a table of
totals), what the response cache saved, and the budgets with their burn-down; admins set a budget.

The same service calls as ``/api/spend`` and ``/api/budgets``, with the same scope: a non-admin key with
a team sees only its team's spend and budgets. A budget set here goes through the same validation
(``BudgetPut``) and the same audited ``BudgetAdmin.put`` as ``PUT /api/budgets``.
"""

from __future__ import annotations

import time
from typing import Any, cast, get_args

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.routes.budgets import budgets_seen_by
from lmdeck.app.routes.spend import spend_seen_by
from lmdeck.app.services import policy_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.data import SummaryQuery, trace_summaries
from lmdeck.console.forms import first_error
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.console.spend_charts import burndown, spend_by_group
from lmdeck.policy.budgets import window_of
from lmdeck.protocol import APIError
from lmdeck.protocol.access import BudgetPut, GroupBy, Period, Scope

router = APIRouter(prefix="/console/spend", include_in_schema=False)

#: What the page groups by → the trace rollups' dimension.
GROUPINGS: dict[str, str] = {"team": "team_id", "key": "key_id", "model": "model"}
#: The periods the page charts → seconds per chart point.
STEPS: dict[str, int] = {"day": 3600, "month": 86400}
#: A budget's scope → the dimension its recorded cost is summed by.
SCOPE_DIMENSIONS: dict[str, str] = {"team": "team_id", "key": "key_id"}
BUDGET_FIELDS = ("scope", "subject_id", "period", "limit_usd", "soft_limit")


class BadQuery(ValueError):
    """A query string the page does not take; the message names the parameter and what it accepts."""


def _choice(request: Request, name: str, choices: dict[str, Any], default: str) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise BadQuery(f"{name} must be one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def _name_of(request: Request, by: str, group: str | None) -> str:
    if group is None:
        return "(none)"
    keys = policy_of(request).keys
    if by == "key":
        key = keys.key(group)
        return f"{key.name} ({group})" if key is not None else group
    if by == "team":
        name = keys.team_name(group)
        return f"{name} ({group})" if name and name != group else group
    return group


def _share(micros: int, limit: int) -> float:
    """``micros`` as a percentage of ``limit``, at most 100 (a zero limit is full at the first micro-dollar)."""
    if not limit:
        return 100.0 if micros else 0.0
    return min(100.0, 100.0 * micros / limit)


def _budget_cards(
    request: Request, budgets: list[dict[str, Any]], rows_of: dict[tuple[str, str], list[dict[str, Any]]], now: float
) -> list[dict[str, Any]]:
    """Each budget's status plus what its card draws: the bar's shares (percent) and, for a daily or
    monthly budget, the burn-down columns from ``rows_of[(period, dimension)]`` (series rows)."""
    cards = []
    for b in budgets:
        limit, spent = int(b["limit_micros"]), int(b["spent_micros"])
        used = spent + int(b["reserved_micros"])
        burn = None
        if b["period"] in STEPS:
            dimension = SCOPE_DIMENSIONS[b["scope"]]
            burn = burndown(
                rows_of[(b["period"], dimension)],
                b["subject_id"],
                dimension,
                window=(float(b["window_start"]), float(b["window_end"])),
                step=STEPS[b["period"]],
                now=now,
                limit_micros=limit,
            )
        cards.append(
            {
                **b,
                "subject_name": _name_of(request, b["scope"], b["subject_id"]),
                "spent_pct": _share(spent, limit),
                "reserved_pct": max(0.0, _share(used, limit) - _share(spent, limit)),
                "over": used >= limit,
                "burn": burn,
            }
        )
    return cards


async def _context(request: Request, user: ConsoleUser, by: GroupBy, period: Period) -> dict[str, Any]:
    who = user.principal
    now = time.time()
    start, _ = window_of(period, now)
    dimension = GROUPINGS[by]
    report = await spend_seen_by(request, who, by=by, period=period)
    budgets = budgets_seen_by(policy_of(request), who)
    # One analytics job: the page's series, then one series per (period, dimension) the budgets chart.
    burn_queries = sorted({(b["period"], SCOPE_DIMENSIONS[b["scope"]]) for b in budgets if b["period"] in STEPS})
    queries = [SummaryQuery(start, step=STEPS[period], by=(dimension,))]
    for budget_period, budget_dimension in burn_queries:
        queries.append(
            SummaryQuery(window_of(budget_period, now)[0], step=STEPS[budget_period], by=(budget_dimension,))
        )
    series, *burn_rows = await trace_summaries(request, who, queries)
    rows_of = dict(zip(burn_queries, burn_rows, strict=True))
    labels = {str(r.group): _name_of(request, by, r.group) for r in report.rows}
    chart = spend_by_group(series, dimension, since=start, step=STEPS[period], now=now, labels=labels)
    bars = _budget_cards(request, budgets, rows_of, now)
    cache_hits = sum(r.cache_hits or 0 for r in report.rows)
    saved_tokens = sum(r.saved_tokens or 0 for r in report.rows)
    return {
        "by": by,
        "period": period,
        "groupings": list(GROUPINGS),
        "periods": list(STEPS),
        "report": report,
        "rows": [{**r.to_dict(), "label": labels[str(r.group)]} for r in report.rows],
        "cache_hits": cache_hits,
        "saved_tokens": saved_tokens,
        "chart": chart,
        "budgets": bars,
        "team_only": who.role != "admin" and who.team_id is not None,
        "scopes": get_args(Scope),
        "budget_periods": get_args(Period),
    }


async def _page(request: Request, user: ConsoleUser, *, status_code: int = 200, **extra: Any) -> Response:
    try:
        by = cast(GroupBy, _choice(request, "by", GROUPINGS, "team"))
        period = cast(Period, _choice(request, "period", STEPS, "month"))
    except BadQuery as exc:
        return render(request, user, "error.html", {"message": str(exc)}, status_code=400)
    try:
        context = await _context(request, user, by, period)
    except APIError as exc:  # the analytics pool is busy or timed out
        return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)
    return render(request, user, "spend/index.html", {**context, **extra}, status_code=status_code)


@router.get("")
async def spend(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    return await _page(request, user)


@router.post("/budgets")
async def set_budget(request: Request, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    form = await request.form()
    fields = {name: form.get(name) for name in BUDGET_FIELDS}
    values = {k: v.strip() for k, v in fields.items() if isinstance(v, str) and v.strip()}
    try:
        body = BudgetPut.model_validate(values)
        await policy_of(request).budgets.put(user.principal, body)
    except ValidationError as exc:
        return await _page(request, user, status_code=400, error=first_error(exc), form=values)
    except APIError as exc:
        return await _page(request, user, status_code=exc.status, error=exc.message, form=values)
    return RedirectResponse("/console/spend?saved=1", status_code=303)


PAGE = ConsolePage(title="Spend", path="/console/spend", min_role="viewer", router=router, order=57)
