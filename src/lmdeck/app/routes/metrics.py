"""``/metrics``: Prometheus exposition, reachable without a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of

router = APIRouter(tags=["metrics"], route_class=GuardedRoute)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def metrics(request: Request) -> Response:
    return Response(gateway_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
