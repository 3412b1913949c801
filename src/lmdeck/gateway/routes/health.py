"""``/health/live`` and ``/health/ready``: reachable without a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from lmdeck.gateway.boundary import GuardedRoute
from lmdeck.gateway.errors import json_response

router = APIRouter(prefix="/health", tags=["health"], route_class=GuardedRoute)


@router.get("/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="The gateway can serve: store open, trace sink running")
async def ready(request: Request) -> Response:
    problems = request.app.state.gateway.readiness()
    if problems:
        return json_response(503, {"status": "unavailable", "problems": problems})
    return json_response(200, {"status": "ok"})
