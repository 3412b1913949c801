"""``/api/drift/report``: has a route's traffic drifted? One team's traces for a team's key.

GET /api/drift/report?route=demo&reference=7d&current=1d
GET /api/drift/report?route=demo&prompt=support-reply&prompt_version=3&until=2026-01-31T00:00:00Z

An admin sees every team's traces; anyone else must be of the team that owns the route
(:class:`~lmdeck.policy.ownership.RouteOwner`) and sees only the traces of their own team. Samples
are read in the analytics pool; the report is computed on the drift service's thread.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import analytics, gateway_of, runtime_of
from lmdeck.gateway.errors import json_response
from lmdeck.monitoring.drift import DriftOptions, DriftScope, WindowError, Windows, fetch_samples
from lmdeck.monitoring.drift.samples import DEFAULT_MAX_SAMPLES, MAX_SAMPLES
from lmdeck.monitoring.drift.service import DriftBusy, DriftService
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.policy.ownership import is_admin, same_team
from lmdeck.protocol import APIError
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.tracing.query import TraceFilterError, parse_time

router = APIRouter(prefix="/api/drift", tags=["drift"], route_class=GuardedRoute)


def _service(request: Request) -> DriftService:
    service = gateway_of(request).drift
    if service is None:
        raise RuntimeError("this gateway was built without drift reports: build it with build_gateway()")
    return service


async def _authorize(request: Request, principal: Principal, route: str) -> bool:
    """Whether the caller sees every team's traces (an admin) or only its own team's (the route's owner);
    a 404 for a route that does not exist, a 403 for a caller of another team."""
    owner = await run_in_threadpool(runtime_of(request).route_owners.owner, route)
    if owner is None:
        raise APIError(
            404, f"no route {route!r}: list them with `lmdeck config routes`", param="route", code="route_not_found"
        )
    if is_admin(principal):
        return True
    if owner.admins_only or not same_team(principal, owner.team_id):
        raise APIError(
            403,
            f"{owner.described}: a drift report of it is for its team or an admin",
            param="route",
            code="not_route_owner",
        )
    return False


@router.get("/report", summary="Drift of a route's prompts and answers, current window against a reference window")
async def report(
    request: Request,
    principal: Principal = Depends(require("viewer")),
    route: str = Query(..., description="the route (public model name)"),
    reference: str = Query(
        "7d", description="the reference window's length (7d, 12h, 30m), just before the current one"
    ),
    current: str = Query("1d", description="the current window's length, ending at `until`"),
    until: str | None = Query(None, description="end of the current window: epoch seconds or ISO 8601 (default: now)"),
    prompt: str | None = Query(None, description="only requests rendering this prompt"),
    prompt_version: int | None = Query(
        None, ge=1, le=INT64_MAX, description="only requests rendering this prompt version"
    ),
    max_samples: int = Query(DEFAULT_MAX_SAMPLES, ge=20, le=MAX_SAMPLES, description="traces sampled per window"),
    alpha: float = Query(0.01, gt=0, lt=1, description="family-wise significance level of the verdict"),
    tests: str | None = Query(None, description="comma-separated drift tests (default: the default tests)"),
    permutations: int = Query(999, ge=99, le=9999, description="permutations of the permutation tests"),
    clusters: int = Query(3, ge=0, le=12, description="new clusters of prompts to show"),
    seed: int = Query(0, ge=0, le=2**32 - 1, description="seed of permutations, folds and clustering"),
) -> Response:
    try:
        end = parse_time(until, "until") if until else time.time()
        windows = Windows.trailing(reference=reference, current=current, until=end)
    except (WindowError, TraceFilterError) as exc:
        raise APIError(400, str(exc), param=exc.param, code="invalid_window") from None
    all_teams = await _authorize(request, principal, route)
    scope = DriftScope(
        route=route,
        windows=windows,
        prompt_name=prompt,
        prompt_version=prompt_version,
        team_id=None if all_teams else principal.team_id,
        all_teams=all_teams,
        max_samples=max_samples,
    )
    service = _service(request)
    names = tuple(n.strip() for n in tests.split(",") if n.strip()) if tests else None
    try:
        await run_in_threadpool(lambda: service.monitor.registry().select(names))
    except KeyError as exc:
        raise APIError(400, str(exc.args[0]), param="tests", code="unknown_drift_test") from None
    options = DriftOptions(alpha=alpha, permutations=permutations, clusters=clusters, seed=seed, tests=names)
    samples = await analytics(request, fetch_samples, scope)
    try:
        result = await service.analyze(samples, options)
    except DriftBusy as exc:
        raise APIError(503, str(exc), code="drift_busy", headers={"retry-after": "30"}) from None
    return json_response(200, result.model_dump(mode="json"))
