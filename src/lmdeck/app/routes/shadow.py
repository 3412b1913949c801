"""``GET /api/releases/{name}/shadow``: a release's shadow stage: counters, budget, verdict and recent pairs."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import delivery_of, shadow_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError

router = APIRouter(prefix="/api/releases", tags=["releases"], route_class=GuardedRoute)


@router.get("/{name}/shadow", summary="A release's shadow stage: mirrored, dropped, spent, judged pairs, verdict")
async def shadow_status(
    name: str,
    request: Request,
    pairs: int = Query(default=20, ge=0, le=500, description="how many of the newest judged pairs to list"),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    shadow = shadow_of(request)
    release = await delivery_of(request).releases.show(name, principal)  # a 404 when it is not visible
    if release["spec"].get("shadow") is None:
        raise APIError(
            404,
            f"release {name!r} has no shadow stage: give its spec a `shadow` section to mirror traffic first",
            code="not_found",
        )

    def read() -> dict[str, Any]:
        status = shadow.status(name)
        return {
            **status.model_dump(mode="json"),
            "pairs": [p.model_dump(mode="json") for p in shadow.store.recent(name, pairs)],
        }

    return await anyio.to_thread.run_sync(read)
