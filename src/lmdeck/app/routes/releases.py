"""``/api/releases``: progressive delivery of a candidate bundle on a route (see docs/delivery.md)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import delivery_of, shadow_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ReleaseAction, ReleaseSpec, ReleaseState
from lmdeck.protocol.evaluation import EvaluatorError

router = APIRouter(prefix="/api/releases", tags=["releases"], route_class=GuardedRoute)


class AnalyzeRequest(BaseModel):
    """The body of ``POST /api/releases/analyze``: ``now`` (epoch seconds) analyses as of that time."""

    model_config = ConfigDict(extra="forbid")

    now: float | None = Field(default=None, ge=0)


@router.post("", summary="Create a release (pending until started)", status_code=201)
async def create(body: ReleaseSpec, request: Request, principal: Principal = Depends(require("developer"))) -> Any:
    if body.shadow is not None:
        try:
            shadow_of(request).check(body.shadow)
        except EvaluatorError as exc:
            raise APIError(400, f"shadow.judges: {exc}", param="shadow.judges", code="invalid_value") from None
    return json_response(201, await delivery_of(request).releases.create(body, principal))


@router.get("", summary="Releases, newest first (state= keeps one state)")
async def list_releases(
    request: Request,
    state: ReleaseState | None = Query(None, description="pending, shadow, canary, promoted, rolled_back or aborted"),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"object": "list", "data": await delivery_of(request).releases.entries(principal, state)}


@router.post("/analyze", summary="Run the release controller's analysis now (admins)")
async def analyze(
    request: Request, body: AnalyzeRequest | None = None, principal: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    now = body.now if body is not None else None
    return {"object": "list", "data": await delivery_of(request).controller.tick(now)}


@router.get("/{name}", summary="A release: state, step, last analysis and its history")
async def show(name: str, request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    found = await delivery_of(request).releases.show(name, principal)
    if found["spec"].get("shadow") is not None:
        status = await anyio.to_thread.run_sync(shadow_of(request).status, name)
        found["shadow"] = status.model_dump(mode="json")
    return found


_ACTIONS = {"start": "start", "promote": "promote", "rollback": "rollback", "abort": "abort"}


@router.post("/{name}/{action}", summary="start | promote (next step) | rollback | abort a release")
async def act(
    name: str,
    action: str,
    request: Request,
    body: ReleaseAction | None = None,
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    if action not in _ACTIONS:
        raise APIError(404, f"no release action {action!r}: use start, promote, rollback or abort", code="not_found")
    reason = body.reason if body is not None else None
    return await delivery_of(request).releases.act(
        name,
        _ACTIONS[action],  # type: ignore[arg-type]
        principal=principal,
        reason=reason or f"{action} by {principal.actor}",
    )
