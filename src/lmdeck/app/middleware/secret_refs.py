"""Refuse secret references in any ``/api`` write a non-admin key makes, before a route sees it.

One place for every write, present and future: the body of a ``POST``/``PUT``/``PATCH``
under ``/api/`` made with a valid non-admin key is read (the body limit outside has bounded
it), and if its JSON holds ``{"$env": ...}`` or ``{"$secret": ...}`` anywhere the answer is a
403 naming the JSON path (:mod:`lmdeck.policy.secret_refs`). Anything else — no key, a bad
key, an admin key, a body that is not JSON — goes on unchanged, so the route answers as it
would have (401, 400...).
"""

from __future__ import annotations

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.pipeline.identity import Authenticator, token_from_headers
from lmdeck.policy.secret_refs import find_secret_refs, secret_ref_forbidden

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


class SecretRefsMiddleware:
    """``app.add_middleware(SecretRefsMiddleware, authenticator=gateway.authenticator)``."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, prefix: str = "/api/") -> None:
        self.app = app
        self.authenticator = authenticator
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        token = token_from_headers(Headers(scope=scope))
        principal = await self.authenticator.authenticate(token) if token else None
        if principal is None or principal.role == "admin":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            data = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            data = None
        found = find_secret_refs(data)
        if found:
            error = secret_ref_forbidden(found[0])
            payload = orjson.dumps(error.body())
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
