"""Rendering console pages: one Jinja2 environment, ``base.html`` around every page, safe headers.

    return render(request, user, "traces/index.html", {"rows": rows})

Every template gets ``user`` (a :class:`~lmdeck.console.auth.ConsoleUser` or None), ``nav`` (the
pages that user may open), ``csrf_token``, ``path`` (the current path) and ``htmx`` (whether htmx
asked, so a template can send only its fragment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from lmdeck.console.auth import ConsoleUser
from lmdeck.console.state import console_state

TEMPLATES = Path(__file__).parent / "templates"

#: Headers on every console page: scripts and styles only from lmdeck itself, no framing, no referrer.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _usd(micros: int | None) -> str:
    if micros is None:
        return ""
    dollars = micros / 1_000_000
    return f"${dollars:,.4f}" if dollars < 1 else f"${dollars:,.2f}"


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def template_environment(extra_folders: Iterable[Path] = ()) -> Environment:
    """The console's Jinja2 environment: built-in templates first, then each page's ``templates`` folder."""
    loaders = [FileSystemLoader(TEMPLATES), *(FileSystemLoader(folder) for folder in extra_folders)]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True), auto_reload=False)
    env.filters["when"] = _when
    env.filters["usd"] = _usd
    env.filters["ms"] = _ms
    return env


def is_htmx(request: Request) -> bool:
    """Whether htmx sent ``request`` (it then wants a fragment, and redirects through ``HX-Redirect``)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    user: ConsoleUser | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """``template`` rendered with the console's common context plus ``context``."""
    state = console_state(request)
    common: dict[str, Any] = {
        "request": request,
        "user": user,
        "nav": state.pages.visible_to(user.principal.role if user else None),
        "csrf_token": user.session.csrf_token if user else "",
        "path": request.url.path,
        "htmx": is_htmx(request),
        "status": status_code,
    }
    html = state.templates.get_template(template).render({**common, **(context or {})})
    return HTMLResponse(html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})
