"""``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` served without FastAPI's router.

These three routes carry nearly all of a gateway's traffic, and their handlers take the bare
``Request`` (no dependencies, no body model, nothing for :class:`~lmdeck.app.boundary.GuardedRoute`
to check: :class:`~lmdeck.gateway.serving.InferenceServing` authenticates and parses). FastAPI's
router still spends a good part of each request's CPU matching the path through the included
routers, opening three exit stacks and solving an empty dependency list. This middleware sits where
the router would: innermost, inside every lmdeck middleware (request id, server span, refusals,
internal errors, body limit), so those run exactly as for any other route. It stamps the scope
as the router would (``route``, ``endpoint``, ``path_params``, ``router``), calls the route's
serving, and answers an exception with the app's own exception handlers, as FastAPI's
exception middleware would; an exception no handler takes goes up to the internal-error
middleware, as before.

Anything else (another method, another path, a path with a trailing slash) goes on to FastAPI
unchanged, so a ``GET /v1/chat/completions`` still gets the router's 405.

    app.add_middleware(InferenceRoutes, routes=inference_routes(app))   # added first: innermost
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from lmdeck.app.services import gateway_of
from lmdeck.pipeline.context import Kind

#: The paths served here and the serving kind of each.
KINDS: dict[str, Kind] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}


def inference_routes(app: FastAPI) -> dict[str, APIRoute]:
    """Path → the app's ``POST`` route for each of :data:`KINDS`; raises ``LookupError`` for one it lacks."""
    found: dict[str, APIRoute] = {}

    def walk(routes: Any) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                if route.path in KINDS and "POST" in (route.methods or ()) and route.path not in found:
                    found[route.path] = route
            elif hasattr(route, "original_router"):  # an included router
                walk(route.original_router.routes)

    walk(app.router.routes)
    missing = sorted(set(KINDS) - set(found))
    if missing:
        raise LookupError(f"no POST route for {', '.join(missing)}: include lmdeck.app.routes.openai_api.router")
    return found


class InferenceRoutes:
    """Serves the inference routes straight from :class:`InferenceServing` (see the module docs)."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, APIRoute]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(get_route_path(scope)) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # What FastAPI's router puts in the scope of a matched route: the span and refusal
        # middlewares read the route's template from it.
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        scope.setdefault("router", scope["app"].router)
        request = Request(scope, receive, send)
        try:
            response = await gateway_of(request).serving.handle(request, KINDS[route.path])
        except Exception as exc:
            handler = _handler_for(scope["app"], exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)


def _handler_for(app: FastAPI, exc: Exception) -> Any:
    """The app's handler for ``exc`` as Starlette's exception middleware finds it, or None.

    The handler of ``Exception`` (and of 500) belongs to the outermost middleware, outside the
    internal-error one, so an exception only it would take is left to propagate.
    """
    handlers = app.exception_handlers
    if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers and exc.status_code != 500:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
