"""``/health/live`` and ``/health/ready``: reachable without a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of
from lmdeck.gateway.errors import json_response

router = APIRouter(prefix="/health", tags=["health"], route_class=GuardedRoute)


@router.get("/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="The gateway can serve: store open, trace sink running, local models loaded")
async def ready(request: Request) -> Response:
    gateway = gateway_of(request)
    problems = gateway.readiness()
    if problems:
        body = {"status": "unavailable", "problems": problems, "loading": gateway.router.loading()}
        return json_response(503, body)
    return json_response(200, {"status": "ok"})
