"""``/api/registry/datasets``: versioned datasets, uploaded or cut from stored traces, owned by a team."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import runtime_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.access import OwnershipUpdate
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import DatasetCreateRequest, FromTracesRequest

router = APIRouter(prefix="/api/registry/datasets", tags=["registry"], route_class=GuardedRoute)


@router.get("", summary="List datasets")
async def list_datasets(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": await runtime_of(request).datasets.entries(principal)}


@router.get("/{name}", summary="A dataset's versions")
async def show_dataset(
    request: Request, name: str, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    versions = await runtime_of(request).datasets.versions(name, principal)
    return {"name": name, "versions": [v.to_dict() for v in versions]}


@router.patch("/{name}", summary="Share or unshare it (its team or an admin), or give it to another team (admins)")
async def update_dataset_owner(
    request: Request, name: str, body: OwnershipUpdate, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await runtime_of(request).datasets.update_owner(
        name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )


@router.post("/{name}/versions", summary="Add a version from rows (the same rows return the same version)")
async def create_dataset_version(
    request: Request, name: str, body: DatasetCreateRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    version, created = await runtime_of(request).datasets.create(
        name,
        body.rows,
        principal=principal,
        description=body.description,
        source=body.source,
        team=body.team,
        visibility=body.visibility,
    )
    return {**version.to_dict(), "created": created}


@router.post("/{name}/from-traces", summary="Add a version from the stored traces a filter matches")
async def dataset_from_traces(
    request: Request, name: str, body: FromTracesRequest, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    version, created, skipped = await runtime_of(request).datasets.from_traces(
        name,
        body.filter,
        principal=principal,
        limit=body.limit,
        description=body.description,
        team=body.team,
        visibility=body.visibility,
        corrections=body.corrections,
        keep_uncorrected=body.keep_uncorrected,
    )
    return {**version.to_dict(), "created": created, "skipped": skipped}


@router.get("/{name}/versions/{ref}", summary="One version, by number or content hash")
async def show_dataset_version(
    request: Request, name: str, ref: str, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return (await runtime_of(request).datasets.version(name, ref, principal)).to_dict()


@router.get("/{name}/versions/{ref}/rows", summary="A page of a version's rows")
async def dataset_rows(
    request: Request,
    name: str,
    ref: str,
    offset: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(100, ge=1, le=10_000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    version, rows = await runtime_of(request).datasets.rows(name, ref, offset, limit, principal)
    return {
        "object": "list",
        "name": name,
        "version": version.version,
        "offset": offset,
        "data": [r.model_dump(mode="json") for r in rows],
        "has_more": offset + len(rows) < version.row_count,
    }


@router.get("/{name}/versions/{ref}/card", summary="The data card of a version prepared for fine-tuning")
async def dataset_card(
    request: Request, name: str, ref: str, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    card = await runtime_of(request).datasets.card(name, ref, principal)
    return card.model_dump(mode="json")
