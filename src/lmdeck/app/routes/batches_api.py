"""``/v1/batches``: OpenAI's Batch API, run by lmdeck (see :mod:`lmdeck.gateway.batches.runner`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import batches_of
from lmdeck.gateway.batches.ownership import owns
from lmdeck.gateway.batches.store import BatchJob
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.batches import BatchCreateRequest, BatchList, BatchObject

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute)


def not_found(batch_id: str) -> APIError:
    return APIError(
        404,
        f"no batch {batch_id!r} for this key's team: it does not exist or belongs to another team",
        param="batch_id",
        code="batch_not_found",
    )


async def owned(request: Request, batch_id: str, principal: Principal) -> BatchJob:
    runner = batches_of(request)
    live = runner.live(batch_id)
    if live is not None and owns(live.team_id, live.key_id, principal.team_id, principal.key_id):
        return live
    job = await runner.store.get(batch_id, team_id=principal.team_id, key_id=principal.key_id)
    if job is None:
        raise not_found(batch_id)
    return job


@router.post("/batches", summary="Create a batch from an uploaded file; lmdeck runs it in the background")
async def create_batch(
    body: BatchCreateRequest, request: Request, principal: Principal = Depends(require("inference"))
) -> BatchObject:
    return await batches_of(request).create(principal, body)


@router.get("/batches", summary="The batches of this key's team, newest first")
async def list_batches(
    request: Request,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = Query(default=None, description="the id of the last batch of the previous page"),
    principal: Principal = Depends(require("inference")),
) -> BatchList:
    runner = batches_of(request)
    jobs, more = await runner.store.listing(
        team_id=principal.team_id, key_id=principal.key_id, limit=limit, after=after
    )
    data = [(runner.live(job.batch.id) or job).batch for job in jobs]
    first, last = (data[0].id, data[-1].id) if data else (None, None)
    return BatchList(data=data, has_more=more, first_id=first, last_id=last)


@router.get("/batches/{batch_id}", summary="A batch of this key's team, its counts up to date")
async def retrieve_batch(
    batch_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> BatchObject:
    return (await owned(request, batch_id, principal)).batch


@router.post("/batches/{batch_id}/cancel", summary="Cancel a batch: rows in flight finish, no new ones start")
async def cancel_batch(
    batch_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> BatchObject:
    return await batches_of(request).cancel(await owned(request, batch_id, principal))
