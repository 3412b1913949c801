"""Overview: requests, errors, latency, time to first token, tokens and cost over the last hour, day or
week, per route; the teams that spend most; firing alerts; releases in progress. The panel reloads
itself every few seconds (htmx polling)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.routes.alerts import alerts_api
from lmdeck.app.services import gateway_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.data import SummaryQuery, trace_summaries
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError

router = APIRouter(prefix="/console/overview", include_in_schema=False)

#: Window name → (seconds covered, seconds per chart point).
WINDOWS: dict[str, tuple[int, int]] = {"hour": (3600, 60), "day": (86400, 1800), "week": (7 * 86400, 6 * 3600)}
QUANTILES = (0.5, 0.95)
IN_PROGRESS = ("pending", "shadow", "canary")
#: Seconds between the panel's reloads.
REFRESH_S = 5


def _window(request: Request) -> str:
    name = request.query_params.get("window", "hour")
    return name if name in WINDOWS else "hour"


def _chart(series: list[dict[str, Any]], since: float, step: int, now: float) -> dict[str, Any]:
    """uPlot's columns: x (epoch seconds, one per step, gaps as zero requests) and one list per series."""
    by_bucket = {int(row["bucket"]): row for row in series}
    start = int(since // step * step)
    xs = list(range(start, int(now) + 1, step))
    empty: dict[str, Any] = {}
    rows = [by_bucket.get(x, empty) for x in xs]
    return {
        "x": xs,
        "requests": [r.get("requests", 0) for r in rows],
        "errors": [r.get("errors", 0) for r in rows],
        "p50": [(r.get("latency_ms") or {}).get("p50") for r in rows],
        "p95": [(r.get("latency_ms") or {}).get("p95") for r in rows],
        "cost_usd": [r.get("cost_micros", 0) / 1_000_000 for r in rows],
    }


async def _panel_context(request: Request, user: ConsoleUser) -> dict[str, Any]:
    window = _window(request)
    span, step = WINDOWS[window]
    now = time.time()
    since = now - span
    who = user.principal
    totals, series, routes, teams = await trace_summaries(
        request,
        who,
        [
            SummaryQuery(since, quantiles=QUANTILES),
            SummaryQuery(since, step=step, quantiles=QUANTILES),
            SummaryQuery(since, by=("route",), quantiles=QUANTILES),
            SummaryQuery(since, by=("team_id",)),
        ],
    )
    teams.sort(key=lambda row: -int(row.get("cost_micros", 0)))
    firing: list[dict[str, Any]] = []
    if gateway_of(request).alerts is not None:
        firing = await alerts_api(request).alerts(state="firing", rule=None, since=None, limit=20, principal=who)
    releases: list[dict[str, Any]] = []
    delivery = gateway_of(request).delivery
    if delivery is not None:
        releases = [r for r in await delivery.releases.entries(who) if r.get("state") in IN_PROGRESS]
    return {
        "window": window,
        "windows": list(WINDOWS),
        "totals": totals[0] if totals else None,
        "chart_json": json.dumps(_chart(series, since, step, now)),
        "routes": routes,
        "teams": teams[:10],
        "firing": firing,
        "releases": releases,
        "refresh_s": REFRESH_S,
    }


@router.get("")
async def overview(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    # The panel loads itself (htmx, at once and then every few seconds): the page answers without waiting.
    window = _window(request)
    return render(request, user, "overview/index.html", {"window": window, "windows": list(WINDOWS)})


@router.get("/panel")
async def panel(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        context = await _panel_context(request, user)
    except APIError as exc:  # the analytics pool is busy: say so, and poll again
        return render(
            request,
            user,
            "overview/busy.html",
            {"message": exc.message, "window": _window(request), "refresh_s": REFRESH_S},
            status_code=200,
        )
    return render(request, user, "overview/panel.html", context)


PAGE = ConsolePage(title="Overview", path="/console/overview", min_role="viewer", router=router, order=10)
