"""``/api/retention/policies`` and ``/api/traces/{id}/hold``: per team and per route retention, and legal
holds (admin); see docs/tracing.md#retention."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.policy.retention_admin import RetentionAdmin
from lmdeck.protocol import APIError
from lmdeck.protocol.retention import HoldRequest, RetentionPolicySpec

router = APIRouter(tags=["retention"], route_class=GuardedRoute)


def retention_of(request: Request) -> RetentionAdmin:
    """Retention policies and legal holds of the gateway serving ``request``."""
    gateway = gateway_of(request)
    return RetentionAdmin(gateway.db, gateway.policy.audit, gateway.settings.tracing.retention.policies)


@router.get("/api/retention/policies", summary="The retention policies in force (stored and configured)")
async def list_policies(request: Request, _: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return {"object": "list", "data": await retention_of(request).policies()}


@router.put("/api/retention/policies/{name}", summary="Create or replace a stored retention policy")
async def put_policy(
    request: Request, name: str, body: RetentionPolicySpec, principal: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    if body.name != name:
        raise APIError(400, f"the body names policy {body.name!r} but the path {name!r}", param="name")
    return await retention_of(request).save(body, principal.actor)


@router.delete("/api/retention/policies/{name}", summary="Delete a stored retention policy")
async def delete_policy(
    request: Request, name: str, principal: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    await retention_of(request).delete(name, principal.actor)
    return {"name": name, "deleted": True}


@router.post("/api/traces/{trace_id}/hold", summary="Put a trace on legal hold: retention keeps it and its bodies")
async def hold_trace(
    request: Request, trace_id: str, body: HoldRequest | None = None, principal: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    reason = body.reason if body is not None else None
    return await retention_of(request).hold(trace_id, principal.actor, held=True, reason=reason)


@router.delete("/api/traces/{trace_id}/hold", summary="Release a trace's legal hold")
async def release_trace(
    request: Request, trace_id: str, principal: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return await retention_of(request).hold(trace_id, principal.actor, held=False)
