"""``/api/feedback``: applications report thumbs, ratings and judgements about traces.

Any key may post feedback, an inference key included (that is what an application
holds), but only on traces of its own team; a ``correction`` (training data for the flywheel)
needs a viewer key or higher. Reading feedback back needs a viewer key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import evaluation_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.evaluation import FeedbackRequest

router = APIRouter(prefix="/api/feedback", tags=["feedback"], route_class=GuardedRoute)


@router.post("", summary="Attach feedback (thumbs, score, label, comment) to a trace", status_code=201)
async def post_feedback(
    body: FeedbackRequest, request: Request, principal: Principal = Depends(require("inference"))
) -> Any:
    return json_response(201, await evaluation_of(request).feedback.add(body, principal))


@router.get("", summary="Feedback, newest first (of one trace with trace_id)")
async def list_feedback(
    request: Request,
    trace_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"data": await evaluation_of(request).feedback.entries(principal, trace_id, limit)}


@router.get("/summary", summary="Feedback count and mean by prompt version, model, route or version")
async def feedback_summary(
    request: Request, by: str = Query("version"), principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return {"data": await evaluation_of(request).feedback.summary(principal, by)}
