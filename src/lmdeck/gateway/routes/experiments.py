"""``/api/experiments``: A/B experiments on a route or prompt, their statistics and verdict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from lmdeck.evaluation.experiments.schemas import ExperimentSpec
from lmdeck.evaluation.runtime import evaluation_of
from lmdeck.gateway.errors import json_response
from lmdeck.policy.auth import require
from lmdeck.policy.principal import Principal

router = APIRouter(prefix="/api/experiments", tags=["experiments"])


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str | None = Field(default=None, description="default: the verdict's winner")
    reason: str | None = Field(default=None, max_length=1000)


@router.post("", summary="Start an experiment", status_code=201)
async def create(body: ExperimentSpec, request: Request, principal: Principal = Depends(require("developer"))) -> Any:
    return json_response(201, await evaluation_of(request).experiments.create(body, principal))


@router.get("", summary="Experiments, newest first")
async def list_experiments(request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"data": await evaluation_of(request).experiments.entries()}


@router.get("/{name}", summary="An experiment with per-variant statistics and its verdict")
async def show(name: str, request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    result: dict[str, Any] = await evaluation_of(request).experiments.show(name)
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
