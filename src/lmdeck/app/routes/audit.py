"""``/api/audit``: the hash-chained log of admin actions, and its verification (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import policy_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.admin import off_loop
from lmdeck.policy.auth import require
from lmdeck.protocol.access import AuditEntryOut, AuditList, AuditVerdictOut
from lmdeck.protocol.limits import INT64_MAX

router = APIRouter(prefix="/api/audit", tags=["audit"], route_class=GuardedRoute)


@router.get("", summary="Audit entries in order, after a sequence number")
async def list_entries(
    request: Request,
    after: int = Query(default=0, ge=0, le=INT64_MAX, description="return entries after this sequence number"),
    limit: int = Query(default=100, ge=1, le=1000),
    action: str | None = Query(default=None),
    target: str | None = Query(default=None),
    actor: str | None = Query(default=None),
    _: Principal = Depends(require("admin")),
) -> AuditList:
    audit = policy_of(request).audit
    entries = await off_loop(
        lambda: audit.entries(after_seq=after, limit=limit, action=action, target=target, actor=actor)
    )
    return AuditList(data=[AuditEntryOut.model_validate(e.to_dict()) for e in entries])


@router.get("/verify", summary="Check the hash chain; names the first edited or deleted entry")
async def verify(request: Request, _: Principal = Depends(require("admin"))) -> AuditVerdictOut:
    verdict = await off_loop(policy_of(request).audit.verify)
    return AuditVerdictOut.model_validate(verdict.to_dict())
