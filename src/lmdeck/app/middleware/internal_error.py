"""Answer an unexpected exception with a 500 that still carries the request id, and keep the connection.

Starlette answers an unhandled exception in its outermost middleware, outside the one
that stamps ``x-request-id``, and then re-raises it, so the server drops the connection.
This middleware sits just inside :class:`~lmdeck.app.middleware.request_id.RequestIdMiddleware`:
the 500 names the request id to look for in the log, and the connection stays usable.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.protocol import error_body

log = logging.getLogger("lmdeck.gateway.errors")


class InternalErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            ids = RequestIds.of(scope)
            request_id = ids.request_id if ids else ""
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if started:
                # Part of the answer is out: only closing the connection can tell the client.
                raise
            body = orjson.dumps(error_body(f"internal error; the gateway log names request {request_id}", "api_error"))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            del exc
