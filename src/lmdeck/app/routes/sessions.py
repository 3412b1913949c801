"""``/api/sessions``: requests grouped by the session (conversation) id their callers sent.

GET /api/sessions?since=2026-01-01T00:00:00Z&limit=20     # most recently active first, with totals
GET /api/sessions/{session_id}                            # its totals and its traces, oldest first

A key of a team sees only its team's sessions; another team's session is a 404. The
queries run in the analytics pool (a 503 past ``tracing.analytics_timeout_s``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.routes.traces import team_scope, trace_body
from lmdeck.app.services import analytics
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.tracing.query import MAX_LIMIT, TraceFilterError, parse_time
from lmdeck.tracing.sessions import SessionQuery, SessionTraceQuery, list_sessions, session_traces

router = APIRouter(prefix="/api/sessions", tags=["sessions"], route_class=GuardedRoute)


def _bad_filter(exc: TraceFilterError) -> APIError:
    return APIError(400, str(exc), param=exc.param, code="invalid_filter")


@router.get("", summary="Sessions with their request counts, tokens, cost and first/last request time")
async def list_all(
    request: Request,
    principal: Principal = Depends(require("viewer")),
    team_id: str | None = Query(None, description="one team's sessions (an admin's choice; a team key sees its own)"),
    since: str | None = Query(None, description="sessions with a request at or after: epoch seconds or ISO 8601"),
    until: str | None = Query(None, description="counting requests before: epoch seconds or ISO 8601"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Response:
    scope = team_scope(principal)
    empty: dict[str, Any] = {"object": "list", "data": [], "next_cursor": None, "has_more": False}
    if not scope.all_teams and team_id not in (None, scope.team_id):
        return json_response(200, empty)
    try:
        query = SessionQuery(
            team_id=team_id if scope.all_teams else scope.team_id,
            all_teams=scope.all_teams,
            since=parse_time(since, "since") if since else None,
            until=parse_time(until, "until") if until else None,
            cursor=cursor,
            limit=limit,
        )
        page = await analytics(request, list_sessions, query)
    except TraceFilterError as exc:
        raise _bad_filter(exc) from None
    body = {
        "object": "list",
        "data": [session.to_dict() for session in page.sessions],
        "next_cursor": page.next_cursor,
        "has_more": page.next_cursor is not None,
    }
    return json_response(200, body)


@router.get("/{session_id}", summary="One session: its totals and its traces, oldest first")
async def show(
    request: Request,
    session_id: str,
    principal: Principal = Depends(require("viewer")),
    team_id: str | None = Query(None, description="the team whose session this is (an admin's choice)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page of its traces"),
    limit: int = Query(200, ge=1, le=MAX_LIMIT),
) -> Response:
    scope = team_scope(principal)
    found = None
    if scope.all_teams or team_id in (None, scope.team_id):
        try:
            query = SessionTraceQuery(
                session_id,
                team_id=team_id if scope.all_teams else scope.team_id,
                all_teams=scope.all_teams,
                cursor=cursor,
                limit=limit,
            )
            found = await analytics(request, session_traces, query)
        except TraceFilterError as exc:
            raise _bad_filter(exc) from None
    if found is None:
        raise APIError(404, f"no session {session_id!r}", code="session_not_found", param="session_id")
    body = {
        **found.summary.to_dict(),
        "data": [trace_body(record) for record in found.records],
        "next_cursor": found.next_cursor,
        "has_more": found.next_cursor is not None,
    }
    return json_response(200, body)
