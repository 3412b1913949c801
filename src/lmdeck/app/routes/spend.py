"""``/api/spend``: recorded cost grouped by key, team, user, route, tag or upstream model.

Reports run in the analytics pool: one that takes longer than ``tracing.analytics_timeout_s`` answers 503.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import analytics, gateway_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy import spend
from lmdeck.policy.auth import require
from lmdeck.protocol.access import GroupBy, Period, SpendReport
from lmdeck.protocol.limits import MAX_EPOCH_SECONDS

router = APIRouter(prefix="/api/spend", tags=["spend"], route_class=GuardedRoute)


@router.get("", summary="Spend report (a non-admin key with a team sees only its team's spend)")
async def spend_report(
    request: Request,
    by: Literal["key", "team", "user", "route", "tag", "model"] = Query(default="team"),
    period: Literal["day", "month", "total"] = Query(default="month", description="the current UTC period"),
    since: float | None = Query(
        default=None, ge=0, le=MAX_EPOCH_SECONDS, description="Unix time; overrides the period's start"
    ),
    until: float | None = Query(default=None, ge=0, le=MAX_EPOCH_SECONDS, description="Unix time"),
    who: Principal = Depends(require("viewer")),
) -> SpendReport:
    report = await spend_seen_by(request, who, by=by, period=period, since=since, until=until)
    return SpendReport.model_validate(report.to_dict())


async def spend_seen_by(
    request: Request,
    who: Principal,
    *,
    by: GroupBy,
    period: Period,
    since: float | None = None,
    until: float | None = None,
) -> spend.Report:
    """The spend report ``who`` may see (a non-admin key with a team: only its team's), read in the
    analytics pool. Raises :class:`~lmdeck.protocol.APIError` 503 when the pool is busy or timed out."""
    team = who.team_id if who.role != "admin" else None
    options = {"by": by, "period": period, "now": time.time(), "since": since, "until": until, "team_id": team}
    minute_days = gateway_of(request).settings.tracing.retention.minute_days
    return await analytics(request, spend.spend_report, options, minute_days)
