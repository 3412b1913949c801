"""What answers a request that no route matches, in the error shape of its API family.

- ``/v1/...``: OpenAI's answer to an unknown URL (``invalid_request_error``, code ``unknown_url``);
- ``/api/...``: lmdeck's admin error (``not_found_error``, code ``not_found``), pointing at ``/docs``;
- anything else: the same JSON 404.

A path that matches a route once its trailing slash is added or removed is redirected
(307, method and body kept) with a relative ``location``: never built from the ``Host``
header, which the client chose.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

from lmdeck.gateway.errors import json_response
from lmdeck.protocol import error_body

#: Characters kept as they are in a redirect's location (the rest is percent-encoded).
_SAFE = "/?&=%:@!$'()*+,;~-._"


def family(path: str) -> str:
    """``openai``, ``admin`` or ``other``: whose error shape answers for ``path``."""
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    if path == "/api" or path.startswith("/api/"):
        return "admin"
    return "other"


def not_found_body(method: str, path: str) -> dict[str, object]:
    shown = path if len(path) <= 200 else path[:200] + "..."
    if family(path) == "openai":
        return error_body(
            f"Invalid URL ({method} {shown}): lmdeck serves /v1/chat/completions, /v1/completions, "
            "/v1/embeddings and /v1/models",
            "invalid_request_error",
            code="unknown_url",
        )
    where = "the admin API" if family(path) == "admin" else "lmdeck"
    return error_body(
        f"{where} has no route {method} {shown}; see /docs for the routes", "not_found_error", code="not_found"
    )


class UnmatchedPath:
    """The router's ``default`` app (set by the app factory, with ``redirect_slashes`` off)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def _slash_twin(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        if path in ("", "/"):
            return None
        twin = path.rstrip("/") if path.endswith("/") else path + "/"
        if not twin:
            return None
        probe = {**scope, "path": twin}
        for route in self.router.routes:
            match, _ = route.matches(probe)
            if match != Match.NONE:
                return twin
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response: Response
        if self._slash_twin(scope) is not None:
            response = Response(status_code=307, headers={"location": relative_twin(scope)})
        else:
            response = json_response(404, not_found_body(scope["method"], scope["path"]))
        await response(scope, receive, send)


def relative_twin(scope: Scope) -> str:
    """The request's own path (as sent, still percent-encoded) with its trailing slash flipped, and its query."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    twin = raw.rstrip(b"/") if raw.endswith(b"/") else raw + b"/"
    # "//host/x" would name another host: a relative location starts with exactly one slash.
    path = "/" + quote(twin.decode("latin-1").lstrip("/"), safe=_SAFE)
    query = quote(scope.get("query_string", b"").decode("latin-1"), safe=_SAFE)
    return f"{path}?{query}" if query else path
