"""``/api/registry/apply``, ``/routes`` and ``/bundles``: configuration as code and what served a trace."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import runtime_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.registry.plan import ApplyRequest

router = APIRouter(prefix="/api/registry", tags=["registry"], route_class=GuardedRoute)


@router.post("/apply", summary="Sync routes, models, prompts and aliases/labels to a declared state")
async def apply_config(
    request: Request, body: ApplyRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).sync.apply(
        body, dry_run=body.dry_run, prune=body.prune, principal=principal, expected_plan=body.plan_hash
    )


@router.get("/routes", summary="The live routes: from the config file and applied")
async def list_routes(request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).sync.routes()}


@router.get("/bundles/{bundle_hash}", summary="The configuration a bundle hash stands for")
async def show_bundle(request: Request, bundle_hash: str, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    found = await anyio.to_thread.run_sync(runtime_of(request).bundles.get, bundle_hash)
    if found is None:
        raise APIError(404, f"no bundle {bundle_hash!r} has served a request", code="not_found")
    return found
