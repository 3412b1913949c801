"""Audit log (admins): the hash-chained log of admin actions, paged after a sequence number and filtered
by action or actor, under the chain's verification (verified up to entry N, or the first broken entry).

The same service calls as ``GET /api/audit`` and ``GET /api/audit/verify`` (``AuditLog.entries`` and
``AuditLog.verify``, off the event loop) and the same role: admin.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.services import policy_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.policy.admin import off_loop
from lmdeck.protocol.limits import INT64_MAX, InputError, parse_int

router = APIRouter(prefix="/console/audit", include_in_schema=False)

PAGE_SIZE = 50
#: The most characters a filter may have (an action or actor is far shorter).
MAX_FILTER_CHARS = 200
FILTERS = ("action", "actor")


def _filters(request: Request) -> dict[str, Any]:
    """``after`` (a sequence number, 0 to 2**63-1) and the text filters; :class:`InputError` naming a bad one."""
    params = request.query_params
    after = parse_int(params["after"], "after", lo=0, hi=INT64_MAX) if params.get("after") else 0
    values: dict[str, Any] = {"after": after}
    for name in FILTERS:
        value = params.get(name, "")
        if len(value) > MAX_FILTER_CHARS:
            raise InputError(name, f"at most {MAX_FILTER_CHARS} characters")
        values[name] = value or None
    return values


@router.get("")
async def audit(request: Request, user: ConsoleUser = Depends(console_user("admin"))) -> Response:
    try:
        query = _filters(request)
    except InputError as exc:
        return render(request, user, "error.html", {"message": exc.message}, status_code=400)
    log = policy_of(request).audit
    verdict = await off_loop(log.verify)
    entries = await off_loop(
        lambda: log.entries(after_seq=query["after"], limit=PAGE_SIZE + 1, action=query["action"], actor=query["actor"])
    )
    more = len(entries) > PAGE_SIZE
    shown = [e.to_dict() for e in entries[:PAGE_SIZE]]
    context = {
        "verdict": verdict.to_dict(),
        "entries": shown,
        "filters": {name: query[name] or "" for name in FILTERS},
        "after": query["after"],
        "next_after": shown[-1]["seq"] if more and shown else None,
    }
    return render(request, user, "audit/index.html", context)


PAGE = ConsolePage(title="Audit", path="/console/audit", min_role="admin", router=router, order=75)
