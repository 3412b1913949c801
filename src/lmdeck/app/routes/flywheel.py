"""``/api/flywheel/runs``: production traces → dataset → fine-tuning job → release, as one audited run.

A developer key starts and resumes runs of its team's traces; a viewer key reads them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import flywheel_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.flywheel import FlywheelRunRequest

router = APIRouter(prefix="/api/flywheel/runs", tags=["flywheel"], route_class=GuardedRoute)


@router.post("", summary="Start a flywheel run (202), or with dry_run answer its plan (200) and change nothing")
async def create_run(
    body: FlywheelRunRequest, request: Request, principal: Principal = Depends(require("developer"))
) -> Any:
    service = flywheel_of(request)
    if body.dry_run:
        return await service.plan(body, principal)
    return json_response(202, (await service.start_run(body, principal)).to_dict())


@router.get("", summary="Flywheel runs, newest first")
async def list_runs(
    request: Request, limit: int = Query(100, ge=1, le=1000), principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return {"data": [run.to_dict() for run in await flywheel_of(request).list(principal, limit)]}


@router.get("/{run_id}", summary="One run: its status and each step's status, output, progress and wall time")
async def show_run(request: Request, run_id: str, principal: Principal = Depends(require("viewer"))) -> Any:
    return (await flywheel_of(request).get(run_id, principal)).to_dict()


@router.post("/{run_id}/resume", summary="Run a failed run again from the step that failed", status_code=202)
async def resume_run(request: Request, run_id: str, principal: Principal = Depends(require("developer"))) -> Any:
    return json_response(202, (await flywheel_of(request).resume(run_id, principal)).to_dict())
