"""``/api/registry/prompts``: prompts, versions, labels and their history, diffs, rendering."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import runtime_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import OwnershipUpdate
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import MoveRequest, PromptVersionSpec, ReasonRequest, RegisterRequest, RenderRequest

router = APIRouter(prefix="/api/registry/prompts", tags=["registry"], route_class=GuardedRoute)


@router.get("", summary="List prompts with their labels")
async def list_prompts(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).prompts.entries(principal)}


@router.post("", summary="Register a prompt (or update its description)", status_code=201)
async def register_prompt(
    request: Request, body: RegisterRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).prompts.register(
        body.name, body.description, principal, team=body.team, visibility=body.visibility
    )


@router.get("/{name}", summary="A prompt with its versions and labels")
async def show_prompt(request: Request, name: str, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return await runtime_of(request).prompts.show(name, principal)


@router.patch("/{name}", summary="Share or unshare it (its team or an admin), or give it to another team (admins)")
async def update_prompt_owner(
    request: Request, name: str, body: OwnershipUpdate, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).prompts.update_owner(
        name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )


@router.post("/{name}/versions", summary="Add an immutable version", status_code=201)
async def create_prompt_version(
    request: Request, name: str, body: PromptVersionSpec, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return (await runtime_of(request).prompts.create_version(name, body, principal)).to_dict()


@router.get("/{name}/versions/{version}", summary="One version")
async def show_prompt_version(
    request: Request,
    name: str,
    version: int = Path(ge=1, le=INT64_MAX, description="a version number"),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return (await runtime_of(request).prompts.version(name, version, principal)).to_dict()


@router.get("/{name}/resolve", summary="The version a label (default production) points at now")
async def resolve_prompt(
    request: Request,
    name: str,
    label: str | None = None,
    version: int | None = Query(None, ge=1, le=INT64_MAX),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return await runtime_of(request).prompts.resolve(name, principal, label=label, version=version)


@router.post("/{name}/render", summary="Render a version with variables")
async def render_prompt(
    request: Request, name: str, body: RenderRequest, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    prompts = runtime_of(request).prompts
    return await prompts.render(name, body.variables, principal, label=body.label, version=body.version)


@router.get("/{name}/diff", summary="What changed between two versions")
async def diff_prompt(
    request: Request,
    name: str,
    from_version: int = Query(..., alias="from", ge=1, le=INT64_MAX),
    to_version: int = Query(..., alias="to", ge=1, le=INT64_MAX),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return await runtime_of(request).prompts.diff(name, from_version, to_version, principal)


@router.put("/{name}/labels/{label}", summary="Point a label at a version (live at once)")
async def move_label(
    request: Request, name: str, label: str, body: MoveRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).prompts.move(
        name, label, body.version, reason=body.reason, principal=principal, expected_version=body.expected_version
    )


@router.delete("/{name}/labels/{label}", summary="Remove a label")
async def remove_label(
    request: Request,
    name: str,
    label: str,
    reason: str | None = None,
    expected_version: int | None = Query(
        None, ge=1, le=INT64_MAX, description="remove only if it points at this version"
    ),
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    return await runtime_of(request).prompts.move(
        name, label, None, reason=reason, principal=principal, expected_version=expected_version
    )


@router.post("/{name}/labels/{label}/rollback", summary="Move a label back to its previous version")
async def rollback_label(
    request: Request,
    name: str,
    label: str,
    body: ReasonRequest | None = None,
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    reason = body.reason if body else None
    expected = body.expected_version if body else None
    return await runtime_of(request).prompts.rollback(
        name, label, reason=reason, principal=principal, expected_version=expected
    )


@router.get("/{name}/history", summary="Every label move, newest first")
async def prompt_history(
    request: Request,
    name: str,
    label: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).prompts.history(name, principal, label, limit)}
