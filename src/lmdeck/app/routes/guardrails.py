"""``/api/guardrails``: the registered guardrail types and configured definitions, and what they would do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import guardrails_of
from lmdeck.guardrails.trial import listing, trial
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol.guardrails import GuardrailTestRequest

router = APIRouter(prefix="/api/guardrails", tags=["guardrails"], route_class=GuardedRoute)


@router.get("", summary="Registered guardrail types, configured definitions and the data policy")
async def list_guardrails(request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    runtime = guardrails_of(request)
    return listing(runtime.types, runtime.service.config, runtime.settings.guardrails)


@router.post("/test", summary="What each configured guardrail would do with a text (nothing is sent upstream)")
async def test_text(
    body: GuardrailTestRequest, request: Request, who: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    return await trial(guardrails_of(request).service, body, who)
