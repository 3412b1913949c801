"""``/api/annotation-queues``: queues of a team's traces for its reviewers to label (see docs/monitoring.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import evaluation_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.annotation import (
    AddItemsRequest,
    AnnotationQueueSpec,
    ClaimRequest,
    ExportRequest,
    LabelRequest,
)

router = APIRouter(prefix="/api/annotation-queues", tags=["annotation"], route_class=GuardedRoute)


@router.get("", summary="The caller's team's annotation queues, with item counts")
async def list_queues(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": await evaluation_of(request).annotation.queues(principal)}


@router.put("/{name}", summary="Create or replace an annotation queue")
async def put_queue(
    request: Request, name: str, body: AnnotationQueueSpec, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    if body.name != name:
        raise APIError(400, f"the body names queue {body.name!r} but the path {name!r}", param="name")
    return await evaluation_of(request).annotation.save(body, principal)


@router.get("/{name}", summary="One annotation queue, with item counts")
async def get_queue(request: Request, name: str, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return await evaluation_of(request).annotation.get(name, principal)


@router.delete("/{name}", summary="Delete an annotation queue, its items and labels")
async def delete_queue(
    request: Request, name: str, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    await evaluation_of(request).annotation.delete(name, principal)
    return {"name": name, "deleted": True}


@router.post("/{name}/items", summary="Send traces of the queue's team to it by hand")
async def add_items(
    request: Request, name: str, body: AddItemsRequest, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return await evaluation_of(request).annotation.add(name, body.trace_ids, principal, body.reason)


@router.get("/{name}/items", summary="The queue's items, oldest first, with their labels")
async def list_items(
    request: Request,
    name: str,
    status: Literal["pending", "claimed", "labelled"] | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"object": "list", "data": await evaluation_of(request).annotation.items(name, principal, status, limit)}


@router.post("/{name}/claim", summary="Claim the next item (204 when none is left), held for the lease")
async def claim(
    request: Request, name: str, body: ClaimRequest | None = None, principal: Principal = Depends(require("viewer"))
) -> Any:
    item = await evaluation_of(request).annotation.claim(name, principal, body.lease_s if body else None)
    return item if item is not None else Response(status_code=204)


@router.post("/{name}/items/{item_id}/label", summary="Label an item the caller's claim holds (once)")
async def label(
    request: Request, name: str, item_id: str, body: LabelRequest, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return await evaluation_of(request).annotation.label(name, item_id, body, principal)


@router.post("/{name}/export", summary="The corrections as a new version of a registry dataset")
async def export(
    request: Request, name: str, body: ExportRequest | None = None, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await evaluation_of(request).annotation.export(
        name, principal, dataset=body.dataset if body else None, description=body.description if body else None
    )
