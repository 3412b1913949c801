"""``/v1/fine_tuning/jobs``: OpenAI's fine-tuning API, run by lmdeck (see :mod:`lmdeck.finetune.jobs.service`).

Creating, cancelling and resuming a job needs a developer key; reading needs a viewer key. A key
sees its team's jobs (a key without a team: its own), an admin every job; another team's job is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import fine_tuning_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.fine_tuning import (
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEventList,
    FineTuningJobList,
)

router = APIRouter(prefix="/v1/fine_tuning", tags=["openai"], route_class=GuardedRoute)

_AFTER = Query(default=None, max_length=80, description="the id of the last item of the previous page")


@router.post(
    "/jobs", summary="Create a fine-tuning job: prepare a dataset version, train a LoRA adapter, gate, register"
)
async def create_job(
    body: FineTuningJobCreate, request: Request, principal: Principal = Depends(require("developer"))
) -> Response:
    job = await fine_tuning_of(request).create(body, principal)
    return json_response(200, job.model_dump(mode="json"))


@router.get("/jobs", summary="This key's team's fine-tuning jobs, newest first")
async def list_jobs(
    request: Request,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = _AFTER,
    principal: Principal = Depends(require("viewer")),
) -> FineTuningJobList:
    return await fine_tuning_of(request).listing(principal, limit=limit, after=after)


@router.get("/jobs/{fine_tuning_job_id}", summary="One fine-tuning job: status, progress, gate, registered model")
async def get_job(
    fine_tuning_job_id: str, request: Request, principal: Principal = Depends(require("viewer"))
) -> FineTuningJob:
    return await fine_tuning_of(request).get(fine_tuning_job_id, principal)


@router.post("/jobs/{fine_tuning_job_id}/cancel", summary="Cancel a fine-tuning job (resume continues it)")
async def cancel_job(
    fine_tuning_job_id: str, request: Request, principal: Principal = Depends(require("developer"))
) -> FineTuningJob:
    return await fine_tuning_of(request).cancel(fine_tuning_job_id, principal)


@router.post("/jobs/{fine_tuning_job_id}/resume", summary="Resume a failed or cancelled job from its newest checkpoint")
async def resume_job(
    fine_tuning_job_id: str, request: Request, principal: Principal = Depends(require("developer"))
) -> FineTuningJob:
    return await fine_tuning_of(request).resume(fine_tuning_job_id, principal)


@router.get(
    "/jobs/{fine_tuning_job_id}/events", summary="A job's events, newest first (metrics events: the loss curve)"
)
async def list_events(
    fine_tuning_job_id: str,
    request: Request,
    limit: int = Query(default=20, ge=1, le=1000),
    after: str | None = _AFTER,
    principal: Principal = Depends(require("viewer")),
) -> FineTuningJobEventList:
    return await fine_tuning_of(request).events(fine_tuning_job_id, principal, limit=limit, after=after)


@router.get("/jobs/{fine_tuning_job_id}/checkpoints", summary="A job's checkpoints, newest step first")
async def list_checkpoints(
    fine_tuning_job_id: str,
    request: Request,
    limit: int = Query(default=10, ge=1, le=100),
    after: str | None = _AFTER,
    principal: Principal = Depends(require("viewer")),
) -> FineTuningJobCheckpointList:
    return await fine_tuning_of(request).checkpoints(fine_tuning_job_id, principal, limit=limit, after=after)
