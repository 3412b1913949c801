"""``/api/experiments``: A/B experiments on a route or prompt, their statistics and verdict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import evaluation_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import OwnershipUpdate
from lmdeck.protocol.evaluation import ExperimentRequest, PromoteRequest

router = APIRouter(prefix="/api/experiments", tags=["experiments"], route_class=GuardedRoute)


@router.post("", summary="Start an experiment", status_code=201)
async def create(
    body: ExperimentRequest, request: Request, principal: Principal = Depends(require("developer"))
) -> Any:
    experiments = evaluation_of(request).experiments
    created = await experiments.create(body.spec(), principal, team=body.team, visibility=body.visibility)
    return json_response(201, created)


@router.get("", summary="Experiments, newest first")
async def list_experiments(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"data": await evaluation_of(request).experiments.entries(principal)}


@router.get("/{name}", summary="An experiment with per-variant statistics and its verdict")
async def show(name: str, request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    result: dict[str, Any] = await evaluation_of(request).experiments.show(name, principal)
    return result


@router.patch("/{name}", summary="Share or unshare it (its team or an admin), or give it to another team (admins)")
async def update_owner(
    name: str, body: OwnershipUpdate, request: Request, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    result: dict[str, Any] = await evaluation_of(request).experiments.update_owner(
        name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )
    return result


@router.post("/{name}/stop", summary="Stop an experiment: all traffic goes back to the unchanged request")
async def stop(name: str, request: Request, principal: Principal = Depends(require("developer"))) -> dict[str, Any]:
    result: dict[str, Any] = await evaluation_of(request).experiments.stop(name, principal)
    return result


@router.post("/{name}/promote", summary="Move the registry label/alias to a variant (the winner) and stop")
async def promote(
    name: str, body: PromoteRequest, request: Request, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    result: dict[str, Any] = await evaluation_of(request).experiments.promote(
        name, body.variant, principal, body.reason
    )
    return result
