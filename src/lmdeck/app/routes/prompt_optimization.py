"""``/api/registry/prompts/{name}/optimize`` and ``.../optimizations``: prompt optimization, started and read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import evaluation_of
from lmdeck.evaluation.optimize.service import PromptOptimizer
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.identity import bearer_token
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.optimization import OptimizeRequest

router = APIRouter(prefix="/api/registry/prompts", tags=["registry"], route_class=GuardedRoute)


def _optimizer(request: Request) -> PromptOptimizer:
    optimizer = evaluation_of(request).optimizer
    if optimizer is None:
        raise APIError(503, "prompt optimization needs the registry and eval runs", code="evaluation_unavailable")
    return optimizer


@router.post(
    "/{name}/optimize",
    summary="Search instruction variants and few-shot demonstrations; register the best if it beats the original",
    status_code=202,
)
async def optimize_prompt(
    name: str, body: OptimizeRequest, request: Request, principal: Principal = Depends(require("developer"))
) -> Any:
    record = await _optimizer(request).start(name, body, principal, bearer_token(request))
    return json_response(202, record.model_dump(mode="json"))


@router.get("/{name}/optimizations", summary="A prompt's optimizations, newest first")
async def list_optimizations(
    name: str,
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    records = await _optimizer(request).of_prompt(name, principal, limit)
    return {"data": [r.model_dump(mode="json") for r in records]}


@router.get("/{name}/optimizations/{optimization_id}", summary="One optimization: progress, candidates, result")
async def get_optimization(
    name: str, optimization_id: str, request: Request, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    record = await _optimizer(request).get(name, optimization_id, principal)
    return record.model_dump(mode="json")
