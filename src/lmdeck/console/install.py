"""Adding the console to an app: its state, static files, sign-in routes, pages and error pages.

app = create_app(settings)
install_console(app, settings)      # serves /console/ (what `lmdeck serve` does)
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from lmdeck.console import signin
from lmdeck.console.auth import ConsoleForbidden, SignInRequired, current_user
from lmdeck.console.page import PageRegistry
from lmdeck.console.pages import BUILTIN
from lmdeck.console.rendering import is_htmx, render, template_environment
from lmdeck.console.sessions import SessionStore
from lmdeck.console.signin import safe_next
from lmdeck.console.state import ConsoleState
from lmdeck.plugins import call_hooks
from lmdeck.protocol import APIError
from lmdeck.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: The entry-point group through which packages add console pages (``register(pages: PageRegistry)``).
PAGE_GROUP = "lmdeck.console_pages"


def console_pages() -> PageRegistry:
    """The built-in pages plus those of every ``lmdeck.console_pages`` entry point."""
    pages = PageRegistry()
    for page in BUILTIN:
        pages.add(page)
    return call_hooks(
        entry_points(group=PAGE_GROUP),
        pages,
        remedy=lambda name: f"install the package that provides the console page {name!r}",
        kind="console page",
        log=log,
    )


def _return_to(request: Request) -> str:
    """The page to come back to after signing in: the page itself, never a fragment an htmx request loaded
    (``HX-Current-URL`` names the page) or a URL that only takes a POST (the ``Referer`` does)."""
    if request.method == "GET" and not is_htmx(request):
        parts = urlsplit(str(request.url))
    else:
        parts = urlsplit(request.headers.get("hx-current-url") or request.headers.get("referer") or "")
        if parts.netloc and parts.netloc != request.url.netloc:
            return safe_next(None)
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    target = f"/console/login?{urlencode({'next': _return_to(request)})}"
    if request.method == "GET" and not is_htmx(request):
        return RedirectResponse(target, status_code=303)
    # htmx follows HX-Redirect with a full page load; other clients see the 401.
    return render(
        request, None, "error.html", {"message": "Sign in first."}, status_code=401, headers={"hx-redirect": target}
    )


async def _forbidden(request: Request, exc: Exception) -> Response:
    reason = exc.reason if isinstance(exc, ConsoleForbidden) else "forbidden"
    return render(request, current_user(request), "error.html", {"message": reason}, status_code=403)


def _as_page(api_handler: Callable[[Request, Exception], Any]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """``api_handler`` (the API's JSON error) for everything but console pages, which get the message as an
    HTML page with the same status (a form field or path parameter the route could not read, say)."""

    async def handle(request: Request, exc: Exception) -> Response:
        answer = api_handler(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        path = request.url.path
        if not path.startswith("/console/") or path.startswith("/console/static/") or not isinstance(answer, Response):
            return answer
        try:
            message = str(json.loads(bytes(answer.body))["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return answer
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-type", "content-length")}
        user = current_user(request)
        return render(request, user, "error.html", {"message": message}, status_code=answer.status_code, headers=kept)

    return handle


def install_console(app: FastAPI, settings: Settings, pages: PageRegistry | None = None) -> ConsoleState:
    """Serve the console at ``/console/`` on ``app`` (made by ``create_app``); returns its state."""
    pages = pages if pages is not None else console_pages()
    state = ConsoleState(
        sessions=SessionStore(settings.console.session_ttl_s),
        pages=pages,
        templates=template_environment(p.templates for p in pages.pages if p.templates is not None),
    )
    app.state.console = state
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(signin.router)
    for page in pages.pages:
        app.include_router(page.router)
    for kind in (APIError, StarletteHTTPException, RequestValidationError):
        if (api_handler := app.exception_handlers.get(kind)) is not None:
            app.add_exception_handler(kind, _as_page(api_handler))
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(ConsoleForbidden, _forbidden)
    return state
