"""``/api/traces``: the stored traces, filtered and paged; one team sees only its own.

GET /api/traces?route=demo&status=error&since=2026-01-01T00:00:00Z&limit=20
GET /api/traces?cursor=<next_cursor>          # the next page
GET /api/traces/summary?by=route&step=3600&since=2026-01-01&quantiles=0.5,0.95,0.99
GET /api/traces/{id}

Listings, search and summaries run in the analytics pool (a 503 past ``tracing.analytics_timeout_s``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import analytics, gateway_of, trace_store_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import (
    MAX_LIMIT,
    MAX_VERSION,
    Cursor,
    TeamScope,
    TraceFilterError,
    TraceQuery,
    parse_status,
    parse_time,
)
from lmdeck.tracing.rollups import DIMENSIONS
from lmdeck.tracing.signals import SignalError, summarize
from lmdeck.tracing.sql_store import SQLTraceStore, query_traces
from lmdeck.tracing.store import TraceAnalytics

router = APIRouter(prefix="/api/traces", tags=["traces"], route_class=GuardedRoute)


def team_scope(principal: Principal) -> TeamScope:
    """Whose traces ``principal`` may see: an admin or a key without a team sees every team's."""
    if principal.role == "admin" or principal.team_id is None:
        return TeamScope()
    return TeamScope(principal.team_id, all_teams=False)


def _bad_filter(exc: TraceFilterError) -> APIError:
    return APIError(400, str(exc), param=exc.param, code="invalid_filter")


def trace_query(
    route: str | None = Query(None, description="public model name the request asked for"),
    model: str | None = Query(None, description="upstream model that served it"),
    status: str | None = Query(None, description="HTTP status code, 'ok' or 'error'"),
    errors: bool | None = Query(None, description="true: failed requests only; false: successful only"),
    key_id: str | None = None,
    team_id: str | None = None,
    user: str | None = None,
    tag: str | None = None,
    prompt: str | None = Query(None, description="prompt name"),
    prompt_version: int | None = Query(
        None, ge=1, le=MAX_VERSION, description="prompt version (of `prompt` when given)"
    ),
    release: str | None = Query(None, description="the release that served the request (either variant)"),
    request_id: str | None = Query(None, description="the x-request-id lmdeck answered with"),
    trace_id: str | None = Query(None, description="lmdeck's W3C trace id of the request"),
    client_request_id: str | None = Query(None, description="the x-request-id the caller sent"),
    client_trace_id: str | None = Query(None, description="the trace id of the caller's traceparent"),
    session_id: str | None = Query(None, description="the session (conversation) id the caller sent"),
    since: str | None = Query(None, description="epoch seconds or ISO 8601, inclusive"),
    until: str | None = Query(None, description="epoch seconds or ISO 8601, exclusive"),
    min_latency_ms: float | None = Query(None, ge=0),
    q: str | None = Query(None, description="text in the error, metadata or bodies"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> TraceQuery:
    """The query parameters as a :class:`TraceQuery`; a 400 naming the parameter when one is wrong."""
    try:
        code, errors_only = parse_status(status)
        if errors is not None and errors_only is not None and errors != errors_only:
            raise TraceFilterError("errors", f"contradicts status={status!r}")
        return TraceQuery(
            route=route,
            model=model,
            status=code,
            errors=errors if errors is not None else errors_only,
            key_id=key_id,
            team_id=team_id,
            user=user,
            tag=tag,
            prompt=prompt,
            prompt_version=prompt_version,
            release=release,
            request_id=request_id,
            trace_id=trace_id,
            client_request_id=client_request_id,
            client_trace_id=client_trace_id,
            session_id=session_id,
            since=parse_time(since, "since") if since else None,
            until=parse_time(until, "until") if until else None,
            min_latency_ms=min_latency_ms,
            q=q or None,
            cursor=Cursor.decode(cursor) if cursor else None,
            limit=limit,
        )
    except TraceFilterError as exc:
        raise _bad_filter(exc) from None


def trace_body(record: TraceRecord) -> dict[str, Any]:
    # The cost in US dollars for readers, beside the exact ``cost_micros``.
    return {"object": "trace", **record.to_dict(), "cost": record.cost_usd}


@router.get("", summary="Traces matching the filters, newest first")
async def list_traces(
    request: Request,
    principal: Principal = Depends(require("viewer")),
    query: TraceQuery = Depends(trace_query),
) -> Response:
    scoped = team_scope(principal).narrow(query)
    if scoped is None:
        return json_response(200, {"object": "list", "data": [], "next_cursor": None, "has_more": False})
    store = trace_store_of(request)
    if type(store) is SQLTraceStore:
        page = await analytics(request, query_traces, scoped)
    else:  # another engine: its own query, still off the event loop
        page = await run_in_threadpool(store.query, scoped)
    body = {
        "object": "list",
        "data": [trace_body(r) for r in page.records],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }
    return json_response(200, body)


@router.get("/summary", summary="Request counts, errors, tokens, cost and latency quantiles, grouped, per step")
async def summary(
    request: Request,
    principal: Principal = Depends(require("viewer")),
    by: str | None = Query(None, description=f"comma-separated dimensions: {', '.join(DIMENSIONS)}"),
    since: str = Query(..., description="epoch seconds or ISO 8601, inclusive"),
    until: str | None = Query(None, description="epoch seconds or ISO 8601, exclusive (default: now)"),
    step: int | None = Query(
        None, ge=60, le=366 * 86400, description="seconds per point, a multiple of 60; none: one total per group"
    ),
    quantiles: str | None = Query(None, description="comma-separated latency quantiles, e.g. 0.5,0.95,0.99"),
    route: str | None = None,
    target: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
    team_id: str | None = None,
    status_class: str | None = Query(None, description="2xx, 4xx, 5xx..."),
) -> Response:
    """Read from the trace store's aggregates (:class:`~lmdeck.tracing.store.TraceAnalytics`: the rollups
    through :class:`~lmdeck.tracing.signals.Signals` on SQL), never a scan of the traces."""
    try:
        groups = tuple(part.strip() for part in by.split(",") if part.strip()) if by else ()
        qs = tuple(_quantile(part) for part in quantiles.split(",") if part.strip()) if quantiles else ()
        start = parse_time(since, "since")
        end = parse_time(until, "until") if until else None
    except TraceFilterError as exc:
        raise _bad_filter(exc) from None
    where: dict[str, str | None] = {
        name: value
        for name, value in (
            ("route", route),
            ("target", target),
            ("model", model),
            ("key_id", key_id),
            ("team_id", team_id),
            ("status_class", status_class),
        )
        if value is not None
    }
    scope = team_scope(principal)
    if not scope.all_teams:
        if team_id not in (None, scope.team_id):
            return json_response(200, {"object": "list", "data": []})
        where["team_id"] = scope.team_id
    store = trace_store_of(request)
    options: dict[str, Any] = {"by": groups, "since": start, "until": end, "where": where, "quantiles": qs}
    try:
        if isinstance(store, TraceAnalytics) and type(store) is not SQLTraceStore:
            engine: TraceAnalytics = store  # another engine answers from its own aggregates

            def read() -> list[dict[str, Any]]:
                rows = engine.totals(**options) if step is None else engine.series(step=step, **options)
                return [row.to_dict() for row in rows]

            data = await run_in_threadpool(read)
        else:
            minute_days = gateway_of(request).settings.tracing.retention.minute_days
            data = await analytics(request, summarize, step, options, minute_days)
    except SignalError as exc:
        raise APIError(400, str(exc), param=exc.param, code="invalid_filter") from None
    return json_response(200, {"object": "list", "data": data})


def _quantile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise TraceFilterError("quantiles", f"each quantile is a number between 0 and 1, got {text.strip()!r}")
    return value


@router.get("/{trace_id}", summary="One trace by its id")
async def get_trace(request: Request, trace_id: str, principal: Principal = Depends(require("viewer"))) -> Response:
    # The id is lmdeck's primary key (one row at most); the scope decides whether the caller may see it.
    record = await run_in_threadpool(trace_store_of(request).get, trace_id)
    if record is None or not team_scope(principal).allows(record.team_id):
        raise APIError(404, f"no trace {trace_id!r}", code="trace_not_found", param="id")
    return json_response(200, trace_body(record))
