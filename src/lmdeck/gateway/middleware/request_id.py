"""``x-request-id`` on every response, and W3C ``traceparent`` accepted and propagated."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class RequestIdMiddleware:
    """Stamps ``scope["state"]`` with the request id, trace id and span ids, and echoes them back."""

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
        request_id = incoming_id if incoming_id and REQUEST_ID.match(incoming_id) else "req_" + os.urandom(12).hex()
        parent = parse_traceparent(traceparent)
        trace_id = parent[0] if parent else os.urandom(16).hex()
        span_id = os.urandom(8).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace_id"] = trace_id
        state["span_id"] = span_id
        state["parent_span_id"] = parent[1] if parent else None
        out_traceparent = f"00-{trace_id}-{span_id}-01".encode()

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"traceparent", out_traceparent))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)
