"""Server-generated request and trace ids on every request; the caller's ids kept as attributes.

lmdeck names each request itself: ``x-request-id`` (``req_`` + 24 hex digits) and a W3C
trace id, both generated here and unique, are what feedback and lookups by id use. What
a caller sends is only recorded beside them, because one caller could otherwise reuse
another's id and have lookups pick the wrong trace:

- a valid ``x-request-id`` is kept as ``client_request_id`` (filterable, never an identity);
- a valid ``traceparent`` is kept as ``client_trace_id``, ``parent_span_id`` and its sampled
  flag, its ``tracestate`` for the upstream calls. The response's ``traceparent`` (added by
  :mod:`lmdeck.app.middleware.server_span`) continues the caller's trace id with lmdeck's span id,
  so the caller's tracing sees the hop; lmdeck's own span (OpenTelemetry export) lives in lmdeck's
  trace and links to the caller's span rather than joining the caller's trace.
"""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.protocol.traces import new_trace_id

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid ``traceparent`` header, else None."""
    parsed = parse_trace_context(value)
    return (parsed[0], parsed[1]) if parsed else None


def parse_trace_context(value: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid ``traceparent`` header, else None."""
    if not value:
        return None
    match = TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), match.group(2), bool(int(match.group(3), 16) & 0x01)


def joined_tracestate(values: list[str], limit: int = 512) -> str | None:
    """Several ``tracestate`` headers as one list, whole entries only, at most ``limit`` characters (W3C)."""
    kept: list[str] = []
    for entry in (e.strip() for value in values for e in value.split(",")):
        if entry and len(",".join([*kept, entry])) <= limit:
            kept.append(entry)
    return ",".join(kept) or None


def new_request_id() -> str:
    """A request id lmdeck hands out: ``req_`` and 24 random hex digits."""
    return "req_" + os.urandom(12).hex()


class RequestIdMiddleware:
    """Stamps the scope with lmdeck's ids and the caller's (:class:`RequestIds`), and answers with lmdeck's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming_id = None
        traceparent = None
        tracestate: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate.append(value.decode("latin-1").strip())
        request_id = new_request_id()
        parent = parse_trace_context(traceparent)
        sampled = parent[2] if parent else True
        trace_id = new_trace_id()
        span_id = os.urandom(8).hex()
        RequestIds(
            request_id=request_id,
            trace_id=trace_id,
            span_id=span_id,
            client_request_id=incoming_id if incoming_id and REQUEST_ID.match(incoming_id) else None,
            client_trace_id=parent[0] if parent else None,
            parent_span_id=parent[1] if parent else None,
            sampled=sampled,
            # W3C: a tracestate without a valid traceparent is dropped; several headers are one list.
            tracestate=joined_tracestate(tracestate) if parent else None,
        ).stamp(scope)

        async def send_with_ids(message: Message) -> None:
            # The response's traceparent is announced by the server-span middleware, which knows
            # whether the span it names is exported.
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)
