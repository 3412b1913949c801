"""``/v1/moderations``: OpenAI's moderation endpoint, answered by the guardrails (see
:mod:`lmdeck.guardrails.moderations`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import moderations_of
from lmdeck.pipeline.principal import Principal
from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.policy.auth import require
from lmdeck.protocol.moderations import ModerationRequest, ModerationResponse

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute)


@router.post("/moderations", summary="Classify texts with the guardrails (OpenAI's moderation shape)")
async def create_moderation(
    body: ModerationRequest, request: Request, principal: Principal = Depends(require("inference"))
) -> ModerationResponse:
    return await moderations_of(request).create(principal, body, RequestIds.of(request.scope))
