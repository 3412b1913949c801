"""Who is using the console: the session cookie → the key it was opened with → that key's principal.

Every console route declares the role it needs, as API routes do::

    @router.get("/console/traces")
    async def traces(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response: ...

The principal is built from the key as it is now (role, team, revocation), through the
same :func:`~lmdeck.policy.key_cache.principal_of` the API's key lookups use, and the
route then calls the same services the ``/api`` routes call with it: the services apply
ownership and team scope, the console adds no rule of its own.

A request that changes something (any method but GET/HEAD) must carry the session's CSRF
token, in the ``X-CSRF-Token`` header (htmx sends it from ``<meta name="csrf-token">``) or a
``csrf_token`` form field: a 403 otherwise. With no session, a page is redirected to the
sign-in page and anything else gets a 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from lmdeck.app.services import policy_of
from lmdeck.console.sessions import COOKIE, ConsoleSession
from lmdeck.console.state import console_state
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.key_cache import principal_of
from lmdeck.protocol.access import Role

#: Methods that change nothing and need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No open session (none, expired, signed out, or its key revoked): sign in again."""


class ConsoleForbidden(Exception):
    """Signed in, but the request is not allowed: ``reason`` says why and what would allow it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in caller: the principal its key resolves to now, and its session (for the CSRF token)."""

    principal: Principal
    session: ConsoleSession

    def may(self, role: Role) -> bool:
        """Whether this user holds ``role`` or a stronger one (templates hide what they may not do)."""
        return self.principal.at_least(role)


def current_user(request: Request) -> ConsoleUser | None:
    """The signed-in user of ``request`` (any role), or None."""
    session = console_state(request).sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    keys = policy_of(request).keys
    key = keys.key(session.key_id)
    if key is None or not keys.secret_works(session.key_id, session.secret_hash):
        console_state(request).sessions.close(session.id)
        return None
    return ConsoleUser(principal_of(key, keys.team(key.team_id)), session)


async def _presented_csrf(request: Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def console_user(role: Role) -> Callable[[Request], Awaitable[ConsoleUser]]:
    """A FastAPI dependency: a signed-in user holding ``role`` (or stronger), with a valid CSRF token on changes.

    Raises :class:`SignInRequired` (redirect to sign-in, or 401) or :class:`ConsoleForbidden` (403).
    The dependency carries ``console_role`` so tests can list what every console route needs.
    """

    async def dependency(request: Request) -> ConsoleUser:
        user = current_user(request)
        if user is None:
            raise SignInRequired()
        if request.method not in SAFE_METHODS and not user.session.csrf_matches(await _presented_csrf(request)):
            raise ConsoleForbidden("the form's CSRF token is missing or stale: reload the page and try again")
        if not user.may(role):
            raise ConsoleForbidden(f"this needs the {role!r} role; you signed in with a {user.principal.role!r} key")
        return user

    dependency.__name__ = f"console_{role}"
    dependency.console_role = role  # type: ignore[attr-defined]
    return dependency


def declared_console_role(dependency: Callable[..., object]) -> Role | None:
    """The role a :func:`console_user` dependency asks for, or None for any other callable."""
    role = getattr(dependency, "console_role", None)
    return role if isinstance(role, str) else None  # type: ignore[return-value]
