"""Releases: progressive delivery in progress and past; one release's steps, metrics against its
baseline (table and charts), evidence and history, with start / promote / roll back / abort buttons
for those the release service lets act. A release in progress reloads its panel every few seconds
(htmx polling).

Reads and actions go through :class:`~lmdeck.delivery.service.ReleaseService` with the signed-in
principal, as ``/api/releases`` does: the service hides releases the caller may not see, refuses
actions of callers who may not move the route's traffic, and audits every transition.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.services import delivery_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ACTIVE, FINISHED

router = APIRouter(prefix="/console/releases", include_in_schema=False)

#: Seconds between reloads of a release in progress.
REFRESH_S = 5
#: The actions a console user may take, and the states each may start from (as the release machine allows).
ACTIONS: dict[str, frozenset[str]] = {
    "start": frozenset({"pending"}),
    "promote": frozenset({"canary"}),
    "rollback": frozenset({"shadow", "canary", "promoted"}),
    "abort": frozenset({"pending", "shadow", "canary"}),
}
ReleaseVerb = Literal["start", "promote", "rollback", "abort"]


def metric_series(history: list[dict[str, Any]]) -> dict[str, dict[str, list[float | None]]]:
    """Per metric, the analyses' baseline and candidate values over time, uPlot's columns::

        {"latency_ms": {"x": [epoch s...], "baseline": [...], "candidate": [...], "percent": [...]}}

    Read from the evidence of the history's analysed transitions (step, held, rolled back...).
    """
    out: dict[str, dict[str, list[float | None]]] = {}
    for event in history:
        analysis = (event.get("evidence") or {}).get("analysis")
        if not isinstance(analysis, dict):
            continue
        for metric in analysis.get("metrics", []):
            series = out.setdefault(metric["name"], {"x": [], "baseline": [], "candidate": [], "percent": []})
            series["x"].append(analysis["at"])
            series["baseline"].append(metric.get("baseline"))
            series["candidate"].append(metric.get("candidate"))
            series["percent"].append(analysis.get("percent"))
    return out


async def _context(request: Request, user: ConsoleUser, name: str) -> dict[str, Any]:
    releases = delivery_of(request).releases
    release = await releases.show(name, user.principal)
    state = release["state"]
    allowed = [a for a, states in ACTIONS.items() if state in states]
    may_act = bool(allowed) and user.may("developer") and await releases.may_act(name, user.principal)
    series = metric_series(release["history"])
    return {
        "release": release,
        "in_progress": state not in FINISHED,
        "active": state in ACTIVE,
        "actions": allowed if may_act else [],
        "charts": [{"metric": m, "json": json.dumps(s)} for m, s in series.items()],
        "refresh_s": REFRESH_S,
    }


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    entries = await delivery_of(request).releases.entries(user.principal)
    return render(
        request,
        user,
        "releases/index.html",
        {
            "in_progress": [r for r in entries if r["state"] not in FINISHED],
            "past": [r for r in entries if r["state"] in FINISHED],
        },
    )


@router.get("/{name}")
async def show(request: Request, name: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        context = await _context(request, user, name)
    except APIError as exc:
        return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)
    return render(request, user, "releases/show.html", context)


@router.get("/{name}/panel")
async def panel(request: Request, name: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    """The release's live panel alone (what the page's htmx polling swaps in)."""
    try:
        context = await _context(request, user, name)
    except APIError as exc:
        return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)
    return render(request, user, "releases/panel.html", context)


@router.post("/{name}/{action}")
async def act(
    request: Request,
    name: str,
    action: ReleaseVerb,
    reason: str | None = Form(None, max_length=2000),
    user: ConsoleUser = Depends(console_user("developer")),
) -> Response:
    """``action`` through the release service (ownership checked, transition audited)."""
    try:
        await delivery_of(request).releases.act(
            name, action, principal=user.principal, reason=reason or f"{action} by {user.principal.actor} (console)"
        )
    except APIError as exc:
        return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)
    return RedirectResponse(f"/console/releases/{name}", status_code=303)


PAGE = ConsolePage(title="Releases", path="/console/releases", min_role="viewer", router=router, order=50)
