"""Traces: the stored requests, filtered and paged (the ``/api/traces`` query, same team scope), and one
trace's detail: request and response bodies as stored (redaction already applied when recorded), the
timing waterfall, upstream attempts (retries and fallbacks), cost, guardrail verdicts, feedback, online
evaluation scores, the span tree of its W3C trace (``/api/traces/{id}/tree``), tags and metadata; with
forms that add feedback (``POST /api/feedback``) and send it to an annotation queue of its team
(``POST /api/annotation-queues/{name}/items``), through the same services, roles and team scope."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.routes.traces import team_scope
from lmdeck.app.services import analytics, evaluation_of, trace_store_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.forms import first_error
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.console.trace_view import SpanRow, attempts, span_rows, verdicts, waterfall
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.annotation import AddItemsRequest, queue_name_ok
from lmdeck.protocol.evaluation import FeedbackRequest
from lmdeck.protocol.limits import parse_int
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import Cursor, TraceFilterError, TraceQuery, parse_status, parse_time
from lmdeck.tracing.sql_store import SQLTraceStore, query_traces
from lmdeck.tracing.trace_tree import read_tree

router = APIRouter(prefix="/console/traces", include_in_schema=False)

#: The text filters of the list, each a ``TraceQuery`` field of the same name.
FILTERS = (
    "route",
    "model",
    "status",
    "team_id",
    "key_id",
    "prompt",
    "prompt_version",
    "release",
    "tag",
    "session_id",
    "q",
    "since",
    "until",
)
PAGE_SIZE = 50
MAX_FILTER_CHARS = 256
#: Feedback entries and online scores shown on a trace (newest first).
TRACE_FEEDBACK = 100
#: The roles the forms need: those of ``POST /api/feedback`` (any key; the console signs in viewers and
#: above) and of ``POST /api/annotation-queues/{name}/items`` (viewer).
FEEDBACK_ROLE: Role = "viewer"
QUEUE_ROLE: Role = "viewer"


def _query(values: dict[str, str]) -> TraceQuery:
    """The filters as a :class:`TraceQuery`; :class:`TraceFilterError` (or, for a version that is not an
    integer, :class:`~lmdeck.protocol.limits.InputError`) naming a wrong one."""
    code, errors_only = parse_status(values.get("status") or None)
    cursor = values.get("cursor")
    version = values.get("prompt_version")
    return TraceQuery(
        route=values.get("route") or None,
        model=values.get("model") or None,
        status=code,
        errors=errors_only,
        team_id=values.get("team_id") or None,
        key_id=values.get("key_id") or None,
        prompt=values.get("prompt") or None,
        prompt_version=parse_int(version, "prompt_version") if version else None,
        release=values.get("release") or None,
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
    status = 200
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
        error, status = str(exc), 400
    except APIError as exc:
        error, status = exc.message, exc.status
    filters = {k: v for k, v in values.items() if k != "cursor"}
    return render(
        request,
        user,
        "traces/index.html",
        {"rows": rows, "filters": filters, "next_cursor": next_cursor, "error": error},
        status_code=status,
    )


async def _visible_trace(request: Request, user: ConsoleUser, trace_id: str) -> TraceRecord | None:
    """The stored trace ``trace_id`` when the user's team scope holds it (another team's is None, as missing)."""
    record = await run_in_threadpool(trace_store_of(request).get, trace_id[:MAX_FILTER_CHARS])
    if record is None or not team_scope(user.principal).allows(record.team_id):
        return None
    return record


def _missing(request: Request, user: ConsoleUser, trace_id: str) -> Response:
    return render(request, user, "error.html", {"message": f"No trace {trace_id!r}."}, status_code=404)


async def _tree(request: Request, user: ConsoleUser, record: TraceRecord) -> tuple[str, list[SpanRow], bool]:
    """The W3C trace the call belongs to (the caller's when it sent a ``traceparent``) as rows, as
    ``GET /api/traces/{id}/tree`` reads it for the same caller."""
    w3c = record.client_trace_id or record.trace_id
    scope = team_scope(user.principal)
    try:
        tree = await analytics(request, read_tree, w3c, scope.team_id, scope.all_teams)
    except APIError:
        return w3c, [], False
    return (w3c, span_rows(tree), tree.truncated) if tree is not None else (w3c, [], False)


async def _detail(
    request: Request, user: ConsoleUser, record: TraceRecord, *, status_code: int = 200, **extra: object
) -> Response:
    """The detail page of ``record``: feedback, scores and queues through the services ``/api`` uses."""
    evaluation = evaluation_of(request)
    who = user.principal
    try:
        feedback = await evaluation.feedback.entries(who, record.id, TRACE_FEEDBACK)
    except APIError:  # a trace the feedback service cannot look up (no trace store): none is stored for it
        feedback = []
    scores = await evaluation.rules.scores(who, record.id, None, TRACE_FEEDBACK) if evaluation.rules else []
    queues = [q for q in await evaluation.annotation.queues(who) if q["team_id"] == record.team_id]
    w3c, spans, truncated = await _tree(request, user, record)
    return render(
        request,
        user,
        "traces/detail.html",
        {
            "t": record,
            "phases": waterfall(record),
            "attempts": attempts(record),
            "verdicts": verdicts(record),
            "feedback": feedback,
            "scores": scores,
            "queues": queues,
            "queued": await evaluation.annotation.placements(record.id, who),
            "w3c_trace_id": w3c,
            "spans": spans,
            "spans_truncated": truncated,
            "request_json": json.dumps(record.request_body, indent=2, default=str),
            "response_json": json.dumps(record.response_body, indent=2, default=str),
            "metadata_json": json.dumps(record.metadata, indent=2, default=str),
            **extra,
        },
        status_code=status_code,
    )


@router.get("/{trace_id}")
async def trace(trace_id: str, request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    record = await _visible_trace(request, user, trace_id)
    if record is None:
        return _missing(request, user, trace_id)
    return await _detail(request, user, record)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


@router.post("/{trace_id}/feedback")
async def add_feedback(
    trace_id: str, request: Request, user: ConsoleUser = Depends(console_user(FEEDBACK_ROLE))
) -> Response:
    """The "Add feedback" form: thumbs (``value`` up/down) or a ``score``, and a ``comment``, validated as
    ``POST /api/feedback`` validates them; 400 (the form shown again with the reason), 303 back when stored."""
    record = await _visible_trace(request, user, trace_id)
    if record is None:
        return _missing(request, user, trace_id)
    form = await request.form()
    thumbs, score = _field(form, "value"), _field(form, "score")
    try:
        if thumbs and score:
            raise APIError(400, "give thumbs up or down, or a score, not both", param="value")
        body = FeedbackRequest.model_validate(
            {"trace_id": record.id, "value": thumbs or score, "comment": _field(form, "comment"), "source": "user"}
        )
        await evaluation_of(request).feedback.add(body, user.principal)
    except ValidationError as exc:
        return await _detail(request, user, record, status_code=400, feedback_error=first_error(exc))
    except APIError as exc:
        return await _detail(request, user, record, status_code=exc.status, feedback_error=exc.message)
    return RedirectResponse(f"/console/traces/{quote(record.id)}#feedback", status_code=303)


@router.post("/{trace_id}/queue")
async def send_to_queue(
    trace_id: str, request: Request, user: ConsoleUser = Depends(console_user(QUEUE_ROLE))
) -> Response:
    """The "Send to annotation queue" form: ``queue`` (a queue of the trace's team) and an optional
    ``reason``, through the service behind ``POST /api/annotation-queues/{name}/items``; 303 back when sent."""
    record = await _visible_trace(request, user, trace_id)
    if record is None:
        return _missing(request, user, trace_id)
    form = await request.form()
    name = _field(form, "queue")
    try:
        if name is None or not queue_name_ok(name):
            raise APIError(400, "choose an annotation queue", param="queue")
        body = AddItemsRequest.model_validate({"trace_ids": [record.id], "reason": _field(form, "reason")})
        await evaluation_of(request).annotation.add(name, body.trace_ids, user.principal, body.reason)
    except ValidationError as exc:
        return await _detail(request, user, record, status_code=400, queue_error=first_error(exc))
    except APIError as exc:
        return await _detail(request, user, record, status_code=exc.status, queue_error=exc.message)
    return RedirectResponse(f"/console/traces/{quote(record.id)}#annotation", status_code=303)


PAGE = ConsolePage(title="Traces", path="/console/traces", min_role="viewer", router=router, order=20)
