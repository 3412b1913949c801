"""Operations: the configured guardrails and how often they acted per route, the cache's hit rate and
savings per team, feature flags (developers turn them on and off), and annotation queues with their
items.

Each section reads through the service behind its ``/api`` routes with the signed-in principal
(guardrail listing, the trace rollups scoped as ``/api/traces/summary`` scopes them, the flag service,
the annotation service), so a caller sees only what the API would show it; flag switches go through
:meth:`~lmdeck.delivery.flags.service.FlagService.set_enabled`, which checks route ownership and
records the change in the flag's history.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.routes.flags import flag_body
from lmdeck.app.services import evaluation_of, gateway_of, guardrails_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.data import SummaryQuery, trace_summaries
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.guardrails.trial import listing
from lmdeck.protocol import APIError

router = APIRouter(prefix="/console/operations", include_in_schema=False)

#: Seconds of traffic the guardrail and cache counts cover; items shown per annotation queue.
WINDOW_S = 86400
QUEUE_ITEMS = 50


def _refused(request: Request, user: ConsoleUser, exc: APIError) -> Response:
    return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    gateway, who = gateway_of(request), user.principal
    since = time.time() - WINDOW_S
    guardrails: dict[str, Any] = {"definitions": [], "types": []}
    if gateway.guardrails is not None:
        runtime = guardrails_of(request)
        guardrails = listing(runtime.types, runtime.service.config, runtime.settings.guardrails)
    by_route: list[dict[str, Any]] = []
    by_team: list[dict[str, Any]] = []
    counts_unavailable = None
    try:
        queries = [SummaryQuery(since=since, by=("route",)), SummaryQuery(since=since, by=("team_id",))]
        by_route, by_team = await trace_summaries(request, who, queries)
    except APIError as exc:  # the analytics pool is busy: show the rest of the page, and say so
        counts_unavailable = exc.message
    flags: list[dict[str, Any]] = []
    if gateway.flags is not None:
        service = gateway.flags.service
        records = await service.records(who)
        switchable = await run_in_threadpool(lambda: [service.may_switch(who, r.spec) for r in records])
        flags = [{**flag_body(r), "may_switch": ok} for r, ok in zip(records, switchable, strict=True)]
    return render(
        request,
        user,
        "operations/index.html",
        {
            "guardrails": guardrails,
            "guardrail_routes": [r for r in by_route if r.get("guardrail_actions")],
            "cache_teams": sorted(by_team, key=lambda r: -int(r.get("requests", 0))),
            "flags": flags,
            "queues": await evaluation_of(request).annotation.queues(who),
            "may_switch": any(f["may_switch"] for f in flags),
            "window_h": WINDOW_S // 3600,
            "counts_unavailable": counts_unavailable,
        },
    )


@router.post("/flags/{name}/{switch}")
async def switch_flag(
    request: Request,
    name: str,
    switch: Literal["enable", "disable"],
    user: ConsoleUser = Depends(console_user("developer")),
) -> Response:
    flags = gateway_of(request).flags
    if flags is None:
        return render(request, user, "error.html", {"message": "this gateway runs without flags"}, status_code=503)
    try:
        await flags.service.set_enabled(name, switch == "enable", user.principal)
    except APIError as exc:
        return _refused(request, user, exc)
    return RedirectResponse("/console/operations#flags", status_code=303)


@router.get("/queues/{name}")
async def queue(
    request: Request,
    name: str,
    status: Literal["pending", "claimed", "labelled"] | None = Query(None),
    user: ConsoleUser = Depends(console_user("viewer")),
) -> Response:
    annotation = evaluation_of(request).annotation
    try:
        found = await annotation.get(name, user.principal)
        items = await annotation.items(name, user.principal, status, QUEUE_ITEMS)
    except APIError as exc:
        return _refused(request, user, exc)
    return render(request, user, "operations/queue.html", {"queue": found, "items": items, "status": status})


PAGE = ConsolePage(title="Operations", path="/console/operations", min_role="viewer", router=router, order=70)
