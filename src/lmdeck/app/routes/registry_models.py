"""``/api/registry/models``: registered models, versions, aliases, deployment history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import runtime_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import OwnershipUpdate
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import ModelVersionSpec, MoveRequest, ReasonRequest, RegisterRequest

router = APIRouter(prefix="/api/registry/models", tags=["registry"], route_class=GuardedRoute)


@router.get("", summary="List registered models with their aliases")
async def list_models(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).models.entries(principal)}


@router.post("", summary="Register a model (or update its description)", status_code=201)
async def register_model(
    request: Request, body: RegisterRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).models.register(
        body.name, body.description, principal, team=body.team, visibility=body.visibility
    )


@router.get("/{name}", summary="A model with its versions and aliases")
async def show_model(request: Request, name: str, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return await runtime_of(request).models.show(name, principal)


@router.patch("/{name}", summary="Share or unshare it (its team or an admin), or give it to another team (admins)")
async def update_model_owner(
    request: Request, name: str, body: OwnershipUpdate, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).models.update_owner(
        name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )


@router.post("/{name}/versions", summary="Add an immutable version", status_code=201)
async def create_model_version(
    request: Request, name: str, body: ModelVersionSpec, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return (await runtime_of(request).models.create_version(name, body, principal)).to_dict()


@router.get("/{name}/versions/{version}", summary="One version")
async def show_model_version(
    request: Request,
    name: str,
    version: int = Path(ge=1, le=INT64_MAX, description="a version number"),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return (await runtime_of(request).models.version(name, version, principal)).to_dict()


@router.put("/{name}/aliases/{alias}", summary="Point an alias at a version (live at once)")
async def move_alias(
    request: Request, name: str, alias: str, body: MoveRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).models.move(
        name, alias, body.version, reason=body.reason, principal=principal, expected_version=body.expected_version
    )


@router.delete("/{name}/aliases/{alias}", summary="Remove an alias")
async def remove_alias(
    request: Request,
    name: str,
    alias: str,
    reason: str | None = None,
    expected_version: int | None = Query(
        None, ge=1, le=INT64_MAX, description="remove only if it points at this version"
    ),
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    return await runtime_of(request).models.move(
        name, alias, None, reason=reason, principal=principal, expected_version=expected_version
    )


@router.post("/{name}/aliases/{alias}/rollback", summary="Move an alias back to its previous version")
async def rollback_alias(
    request: Request,
    name: str,
    alias: str,
    body: ReasonRequest | None = None,
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    reason = body.reason if body else None
    expected = body.expected_version if body else None
    return await runtime_of(request).models.rollback(
        name, alias, reason=reason, principal=principal, expected_version=expected
    )


@router.get("/{name}/history", summary="Deployment history: every alias move, newest first")
async def model_history(
    request: Request,
    name: str,
    alias: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).models.history(name, principal, alias, limit)}
