"""Server-generated request and trace ids on every request; the caller's ids kept as attributes.

lmdeck names each request itself: ``x-request-id`` (``req_`` + 24 hex digits) and a W3C
trace id, both generated here and unique, are what feedback and lookups by id use. What
a caller sends is only recorded beside them, because one caller could otherwise reuse
another's id and have lookups pick the wrong trace:

- a valid ``x-request-id`` is kept as ``client_request_id`` (filterable, never an identity);
- a valid ``traceparent`` is kept as ``client_trace_id`` and ``parent_span_id``. The
  response's ``traceparent`` continues the caller's trace id with lmdeck's span id, so the
  caller's tracing sees the hop; lmdeck's own span (OpenTelemetry export) lives in lmdeck's
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
    if not value:
        return None
    match = TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), match.group(2)


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
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        request_id = new_request_id()
        parent = parse_traceparent(traceparent)
        trace_id = new_trace_id()
        span_id = os.urandom(8).hex()
        RequestIds(
            request_id=request_id,
            trace_id=trace_id,
            span_id=span_id,
            client_request_id=incoming_id if incoming_id and REQUEST_ID.match(incoming_id) else None,
            client_trace_id=parent[0] if parent else None,
            parent_span_id=parent[1] if parent else None,
        ).stamp(scope)
        out_traceparent = f"00-{parent[0] if parent else trace_id}-{span_id}-01".encode()

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"traceparent", out_traceparent))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)
