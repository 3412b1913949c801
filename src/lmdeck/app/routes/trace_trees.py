"""``GET /api/traces/{trace_id}/tree``: one W3C trace as a tree of spans, lmdeck's LLM calls inside it.

The trace id is the 32-hex-digit W3C id: an application's own (the trace its spans were sent
over OTLP in, and the ``traceparent`` its calls to lmdeck carried), or one of lmdeck's. The answer
(viewer role or above) holds the caller's team's spans and calls only, depth first; see
:mod:`lmdeck.tracing.trace_tree` for the shape. Another team's trace is a 404.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.routes.traces import team_scope
from lmdeck.app.services import analytics
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.tracing.trace_tree import read_tree

router = APIRouter(prefix="/api/traces", tags=["traces"], route_class=GuardedRoute)

W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")


@router.get("/{trace_id}/tree", summary="A W3C trace's spans and lmdeck's calls in it, as one tree")
async def tree(request: Request, trace_id: str, principal: Principal = Depends(require("viewer"))) -> Response:
    wanted = trace_id.lower()
    if not W3C_TRACE_ID.fullmatch(wanted) or wanted == "0" * 32:
        raise APIError(
            400,
            f"{trace_id!r} is not a W3C trace id: send 32 hex digits, not all zeros",
            param="trace_id",
            code="invalid_trace_id",
        )
    scope = team_scope(principal)
    found = await analytics(request, read_tree, wanted, scope.team_id, scope.all_teams)
    if found is None:
        raise APIError(404, f"no trace {wanted!r}", code="trace_not_found", param="trace_id")
    return json_response(200, found.to_dict())
