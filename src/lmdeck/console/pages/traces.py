"""Traces: the stored requests, filtered and paged (the ``/api/traces`` query, same team scope), and one
trace's detail: request and response bodies as stored (redaction already applied when recorded),
timing, retries and fallbacks, cost, tags and metadata."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.routes.traces import team_scope
from lmdeck.app.services import analytics, trace_store_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.protocol import APIError
from lmdeck.tracing.query import Cursor, TraceFilterError, TraceQuery, parse_status, parse_time
from lmdeck.tracing.sql_store import SQLTraceStore, query_traces

router = APIRouter(prefix="/console/traces", include_in_schema=False)

#: The text filters of the list, each a ``TraceQuery`` field of the same name.
FILTERS = ("route", "model", "status", "team_id", "key_id", "prompt", "tag", "session_id", "q", "since", "until")
PAGE_SIZE = 50
MAX_FILTER_CHARS = 256


def _query(values: dict[str, str]) -> TraceQuery:
    """The filters as a :class:`TraceQuery`; :class:`TraceFilterError` naming a wrong one."""
    code, errors_only = parse_status(values.get("status") or None)
    cursor = values.get("cursor")
    return TraceQuery(
        route=values.get("route") or None,
        model=values.get("model") or None,
        status=code,
        errors=errors_only,
        team_id=values.get("team_id") or None,
        key_id=values.get("key_id") or None,
        prompt=values.get("prompt") or None,
        tag=values.get("tag") or None,
        session_id=values.get("session_id") or None,
        q=values.get("q") or None,
        since=parse_time(values["since"], "since") if values.get("since") else None,
        until=parse_time(values["until"], "until") if values.get("until") else None,
        cursor=Cursor.decode(cursor) if cursor else None,
        limit=PAGE_SIZE,
    )


@router.get("")
async def traces(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    values = {name: request.query_params.get(name, "")[:MAX_FILTER_CHARS] for name in (*FILTERS, "cursor")}
    rows: list[Any] = []
    next_cursor = None
    error = None
    try:
        scoped = team_scope(user.principal).narrow(_query(values))
        if scoped is not None:
            store = trace_store_of(request)
            if type(store) is SQLTraceStore:
                page = await analytics(request, query_traces, scoped)
            else:
                page = await run_in_threadpool(store.query, scoped)
            rows, next_cursor = page.records, page.next_cursor
    except TraceFilterError as exc:
        error = f"{exc.param}: {exc}"
    except APIError as exc:
        error = exc.message
    filters = {k: v for k, v in values.items() if k != "cursor"}
    return render(
        request,
        user,
        "traces/index.html",
        {"rows": rows, "filters": filters, "next_cursor": next_cursor, "error": error},
    )


@router.get("/{trace_id}")
async def trace(trace_id: str, request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    record = await run_in_threadpool(trace_store_of(request).get, trace_id[:MAX_FILTER_CHARS])
    if record is None or not team_scope(user.principal).allows(record.team_id):
        return render(request, user, "error.html", {"message": f"No trace {trace_id!r}."}, status_code=404)
    total = max(record.latency_ms, 0.001)
    timing = [
        ("time to first token", record.ttft_ms),
        ("upstream", record.upstream_ms),
        ("total", record.latency_ms),
    ]
    bars = [(name, value, min(100.0, 100.0 * value / total)) for name, value in timing if value is not None]
    return render(
        request,
        user,
        "traces/detail.html",
        {
            "t": record,
            "bars": bars,
            "request_json": json.dumps(record.request_body, indent=2, default=str),
            "response_json": json.dumps(record.response_body, indent=2, default=str),
            "metadata_json": json.dumps(record.metadata, indent=2, default=str),
        },
    )


PAGE = ConsolePage(title="Traces", path="/console/traces", min_role="viewer", router=router, order=20)
