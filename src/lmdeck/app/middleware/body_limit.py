"""Refuse request bodies over the configured size with a 413, before reading them whole.

A declared ``content-length`` over the limit is refused before the body is read; a body
sent without one (chunked) is counted as it arrives and refused once it passes the limit,
wherever it is being read: by a route, by FastAPI, or by the route guard.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.gateway.errors import HTTPAPIError
from lmdeck.protocol import APIError, error_body


class BodyTooLarge(HTTPAPIError):
    """Raised by ``receive`` once a body passes the limit; answered with a 413 in OpenAI's error shape."""

    def __init__(self, limit: int) -> None:
        # Closing the connection spares reading the rest of a body nobody will use.
        error = APIError(
            413, f"request body is larger than {limit} bytes", code="body_too_large", headers={"connection": "close"}
        )
        super().__init__(error)


async def _reply_413(send: Send, limit: int) -> None:
    body = orjson.dumps(
        error_body(f"request body is larger than {limit} bytes", "invalid_request_error", code="body_too_large")
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        """``path_limits``: another limit for requests to exactly these paths (file uploads)."""
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _reply_413(send, max_bytes)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Read outside any handler that answers it (a middleware's own read): answered here.
            if not started:
                await _reply_413(send, max_bytes)
