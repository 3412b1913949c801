"""Authentication: API key → :class:`Principal`, as a pipeline step and as a route dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.pipeline.identity import Authenticator, bearer_token, principal_for
from lmdeck.pipeline.principal import PRINCIPAL_STATE as _PRINCIPAL_STATE
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role

MAX_TAGS = 32
MAX_TAG_LENGTH = 128


def request_tags(body: Any) -> list[str]:
    """The ``tags`` a request carries (an lmdeck extension field, ``extra_body`` in the OpenAI SDK)."""
    extra = getattr(body, "model_extra", None) or {}
    tags = extra.get("tags")
    if tags is None:
        return []
    if (
        not isinstance(tags, list)
        or len(tags) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH for t in tags)
    ):
        raise APIError(
            400,
            f"tags: send a list of at most {MAX_TAGS} strings of 1 to {MAX_TAG_LENGTH} characters",
            param="tags",
            code="invalid_value",
        )
    return tags


class Authenticate:
    """First step of the pipeline: no valid key, no request; the key's model and tag rules apply."""

    name = "authenticate"

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        # The serving layer authenticates before reading the body (a 401 comes before any 400)
        # and hands the principal in; requests built inside the process arrive without one.
        principal = ctx.principal or await principal_for(self.authenticator, ctx.client_token)
        if not principal.may_use(ctx.route_name):
            raise APIError(
                403,
                f"this key may not use the model {ctx.route_name!r}",
                code="model_not_allowed",
                param="model",
            )
        tags = request_tags(ctx.body)
        refused = principal.may_tag(tags)
        if refused:
            raise APIError(403, f"this key may not use the tags {refused}", code="tag_not_allowed", param="tags")
        for tag in tags:
            if tag not in ctx.trace.tags:
                ctx.trace.tags.append(tag)
        ctx.principal = principal
        ctx.trace.key_id = principal.key_id
        ctx.trace.team_id = principal.team_id
        if principal.user_id and not ctx.trace.user:
            ctx.trace.user = principal.user_id
        return await call_next(ctx)


#: Where the route guard (lmdeck.app.boundary) leaves the principal it authenticated, in ``request.state``.
PRINCIPAL_STATE = _PRINCIPAL_STATE


async def authenticate_for(authenticator: Authenticator, request: Request, role: Role) -> Principal:
    """The caller of ``request``, who must hold ``role`` or a stronger one: a 401 or 403 otherwise."""
    return holding(await principal_for(authenticator, bearer_token(request)), role)


def holding(principal: Principal, role: Role) -> Principal:
    """``principal`` if it holds ``role`` or a stronger one; a 403 naming both roles otherwise."""
    if not principal.at_least(role):
        raise APIError(403, f"this needs the {role!r} role; the key has {principal.role!r}", code="forbidden")
    return principal


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller must hold ``role`` or a stronger one.

        @router.get("/api/things")
        async def things(principal: Principal = Depends(require("viewer"))) -> ...

    The dependency carries the role it asks for (see :func:`declared_role`), which
    is how the authorization-matrix test knows what every route expects, and how the
    route guard authenticates the caller before the body is read; the dependency takes
    the principal the guard found from ``request.state`` and checks ``role`` against it.
    A route without the guard is a ``RuntimeError`` naming the fix (every API route has
    it: ``tests/app/test_boundary.py`` checks).
    """

    async def dependency(request: Request) -> Principal:
        found = getattr(request.state, PRINCIPAL_STATE, None)
        if not isinstance(found, Principal):
            raise RuntimeError(
                f"{request.url.path} has no route guard to authenticate its caller: declare its router with "
                "APIRouter(..., route_class=GuardedRoute) from lmdeck.app.boundary"
            )
        return holding(found, role)

    dependency.__name__ = f"require_{role}"
    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


#: OpenAPI extension naming the role a route's pipeline enforces itself.
PIPELINE_PERMISSION = "x-lmdeck-permission"


def checked_in_pipeline(role: Role) -> dict[str, Any]:
    """``openapi_extra`` for a route whose request pipeline authenticates the caller.

    The ``/v1`` inference routes run the :class:`Authenticate` step anyway, so a
    ``require()`` dependency would look the key up twice on the hot path::

        @router.post("/v1/chat/completions", openapi_extra=checked_in_pipeline("inference"))
    """
    return {PIPELINE_PERMISSION: role}


def declared_role(dependency: Callable[..., Any]) -> Role | None:
    """The role a :func:`require` dependency asks for, or None for any other callable."""
    role = getattr(dependency, "required_role", None)
    return role if isinstance(role, str) else None  # type: ignore[return-value]
