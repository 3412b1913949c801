"""Signing in and out: ``/console/login`` trades an API key for a session cookie; ``/console/logout`` ends it.

The key is checked by the gateway's own authenticator (the one every ``/api`` and ``/v1``
request goes through) and never stored: the cookie holds a random session id only
(HttpOnly, SameSite=Strict, Path=/console, Secure over HTTPS). The sign-in form carries its
own CSRF token (a random value in a short-lived cookie, repeated in the form), so another
site cannot sign a browser in with the attacker's key either.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lmdeck.app.services import gateway_of
from lmdeck.console.auth import ConsoleUser, console_user, current_user
from lmdeck.console.rendering import render
from lmdeck.console.sessions import COOKIE
from lmdeck.console.state import console_state
from lmdeck.policy.keys import hash_key

router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN_COOKIE = "lmdeck_console_login"
#: Where a sign-in lands when it was not sent from a page.
HOME = "/console/overview"
MAX_KEY_CHARS = 512


def safe_next(target: str | None) -> str:
    """``target`` when it is a console path on this site; :data:`HOME` otherwise (no open redirects)."""
    if (
        target
        and target.startswith("/console/")
        and not target.startswith("/console/login")
        and "//" not in target
        and "\\" not in target
        and target.isprintable()
    ):
        return target
    return HOME


def _login_form(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        None,
        "login.html",
        {"login_token": token, "next": safe_next(request.query_params.get("next")), "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if current_user(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    presented = form.get("csrf_token")
    expected = request.cookies.get(LOGIN_COOKIE)
    if not (isinstance(presented, str) and expected and hmac.compare_digest(presented.encode(), expected.encode())):
        return _login_form(request, error="The sign-in form expired: please try again.", status_code=403)
    key = form.get("api_key")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        return _login_form(request, error="Enter an lmdeck API key.", status_code=400)
    principal = await gateway_of(request).authenticator.authenticate(key.strip())
    if principal is None:
        return _login_form(request, error="That API key is invalid, expired or revoked.", status_code=401)
    if not principal.at_least("viewer"):
        return _login_form(
            request,
            error=f"An {principal.role} key may only call the model API: sign in with a viewer, developer or admin key.",
            status_code=403,
        )
    session = console_state(request).sessions.open(principal.key_id, hash_key(key.strip()))
    target = form.get("next")
    response = RedirectResponse(safe_next(target if isinstance(target, str) else None), status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(console_state(request).sessions.ttl_s),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    console_state(request).sessions.close(user.session.id)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    if request.headers.get("hx-request") == "true":
        response.headers["hx-redirect"] = "/console/login"
    return response


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse(HOME if current_user(request) is not None else "/console/login", status_code=303)
