"""Routes and targets: each route's targets with their live breaker state, requests in flight,
latency (exponentially weighted) and weight; admins edit the weights.

A weight edit is the same change ``POST /api/registry/apply`` makes: the route, with the new weights,
goes through :meth:`~lmdeck.registry.config_sync.ConfigSync.apply` as an applied route (admins only,
audited as ``config.applied``, live at once without a restart, shown as ``applied`` from then on).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.services import gateway_of, runtime_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.gateway.routing.router import Router
from lmdeck.protocol import APIError
from lmdeck.registry.plan import Declared
from lmdeck.settings import RouteConfig, TargetConfig

router = APIRouter(prefix="/console/routes", include_in_schema=False)

#: The largest weight a target may have (as ``TargetConfig.weight`` allows).
MAX_WEIGHT = 1e6


def _live_router(request: Request, applied: bool) -> Router:
    overlay = runtime_of(request).overlay
    serving = overlay.live_router if applied and overlay is not None else None
    return serving if serving is not None else gateway_of(request).router


def _with_live_state(request: Request, route: dict[str, Any]) -> dict[str, Any]:
    live = _live_router(request, route["source"] == "applied")
    states = live.breaker_states()
    served = live.get(route["name"])
    by_id = {t.id: t for t in served.targets} if served is not None else {}
    targets = []
    for target in route["targets"]:
        target_id = TargetConfig.model_validate(target).id
        state = by_id.get(target_id)
        targets.append(
            {
                **target,
                "id": target_id,
                "breaker": states.get(target_id, "closed"),
                "in_flight": state.in_flight if state is not None else None,
                "latency_ms": state.latency_ewma_ms if state is not None else None,
            }
        )
    return {**route, "live_targets": targets}


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    routes = [_with_live_state(request, r) for r in await runtime_of(request).sync.routes()]
    return render(request, user, "routes/index.html", {"routes": routes, "may_edit": user.may("admin")})


@router.post("/{name}/weights")
async def set_weights(request: Request, name: str, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    """Form fields ``weight_<i>`` (the i-th target's new weight, 0 = only as a spare) for every target."""
    sync = runtime_of(request).sync
    current = next((r for r in await sync.routes() if r["name"] == name), None)
    if current is None:
        return render(request, user, "error.html", {"message": f"no route {name!r}"}, status_code=404)
    form = await request.form()
    spec = {k: v for k, v in current.items() if k not in ("source", "owner")}
    targets = list(spec["targets"])
    for i, target in enumerate(targets):
        raw = form.get(f"weight_{i}")
        try:
            weight = float(raw) if isinstance(raw, str) else math.nan
        except ValueError:
            weight = math.nan
        if not (0 <= weight <= MAX_WEIGHT):
            message = f"weight_{i}: give target {i + 1} a weight from 0 (only as a spare) to {MAX_WEIGHT:g}"
            return render(request, user, "error.html", {"message": message}, status_code=400)
        targets[i] = {**target, "weight": weight}
    try:
        declared = Declared(routes=[RouteConfig.model_validate({**spec, "targets": targets})])
        await sync.apply(declared, dry_run=False, prune=False, principal=user.principal)
    except APIError as exc:
        return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)
    return RedirectResponse("/console/routes", status_code=303)


PAGE = ConsolePage(title="Routes", path="/console/routes", min_role="viewer", router=router, order=60)
