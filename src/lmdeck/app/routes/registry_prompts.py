"""``/api/registry/prompts``: prompts, versions, labels and their history, diffs, rendering."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Request

from lmdeck.app.routes.registry_pointers import PointerKind, pointer_router
from lmdeck.app.services import runtime_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import PromptVersionSpec, RenderRequest

PROMPTS = PointerKind(
    kind="prompt",
    spec=PromptVersionSpec,
    catalog=lambda request: runtime_of(request).prompts,
    list_summary="List prompts with their labels",
    register_summary="Register a prompt (or update its description)",
    show_summary="A prompt with its versions and labels",
    history_summary="Every label move, newest first",
)

router = pointer_router(PROMPTS)


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
