"""What every API route checks before its handler runs: who calls, then what they sent.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so
a caller without a key would learn about their body before their key, and whatever
``json.loads`` accepts (integers of any size, ``NaN``, nesting a thousand levels deep)
would reach the handlers. Every API route is a :class:`GuardedRoute`, which runs these
checks before FastAPI reads anything, in this order:

1. authenticates the caller when the route needs a role (a :func:`~lmdeck.policy.auth.require`
   dependency): a 401 or 403 before a byte of the body is read;
2. checks the integer and number query and path parameters: ASCII digits, 64 bits, finite;
3. reads the JSON body (within ``max_body_bytes``: a 413 otherwise, chunked or not) and
   refuses integers outside 64 bits, numbers that are not finite and nesting deeper
   than :data:`~lmdeck.protocol.limits.MAX_JSON_DEPTH` with a 400 naming the value's path.

Routers declare it once::

    router = APIRouter(prefix="/api/things", tags=["things"], route_class=GuardedRoute)

and ``tests/app/test_boundary.py`` fails for an API route of the app that is not one.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.services import gateway_of
from lmdeck.policy.auth import PRINCIPAL_STATE, authenticate_for, declared_role
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.limits import MAX_JSON_DEPTH, InputError, check_json, parse_int, parse_number

#: Methods whose requests carry no body that a route would read.
BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def route_role(route: APIRoute) -> Role | None:
    """The role the route's ``require()`` dependency asks for, or None when it has none."""
    for dependant in _dependants(route.dependant):
        if dependant.call is not None and (role := declared_role(dependant.call)) is not None:
            return role
    return None


def _scalar_types(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {t for arg in typing.get_args(annotation) for t in _scalar_types(arg)}
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        return {t for arg in typing.get_args(annotation) for t in _scalar_types(arg)}
    return {annotation}


def numeric_params(route: APIRoute) -> dict[tuple[str, str], type]:
    """(``query`` or ``path``, name) → ``int`` or ``float``, for every numeric parameter of the route."""
    out: dict[tuple[str, str], type] = {}
    for dependant in _dependants(route.dependant):
        for where, fields in (("query", dependant.query_params), ("path", dependant.path_params)):
            for field in fields:
                kinds = _scalar_types(field.field_info.annotation)
                if int in kinds:
                    out[(where, field.alias)] = int
                elif float in kinds:
                    out[(where, field.alias)] = float
    return out


def _parse_constant(name: str) -> Any:
    raise InputError(None, f"{name} is not JSON: send a finite number", code="invalid_json")


def _is_json(headers: Headers) -> bool:
    kind = headers.get("content-type")
    if kind is None:
        return True
    essence = kind.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def parse_json_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body as FastAPI will, refusing what :func:`check_json` refuses (a 400 naming the path)."""
    try:
        data = json.loads(raw, parse_constant=_parse_constant)
    except InputError:
        raise
    except RecursionError:
        raise APIError(400, f"the request body nests deeper than {max_depth} levels", code="invalid_json") from None
    except ValueError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    check_json(data, max_depth=max_depth)
    return data


class RouteChecks:
    """The checks of one route (see the module docstring), worked out once from its declaration."""

    def __init__(self, route: APIRoute, max_json_depth: int = MAX_JSON_DEPTH) -> None:
        self.max_json_depth = max_json_depth
        self.role = route_role(route)
        self.numeric = numeric_params(route)
        self.reads_json = route.body_field is not None

    async def run(self, request: Request) -> None:
        if self.role is not None:
            authenticator = gateway_of(request).authenticator
            principal = await authenticate_for(authenticator, request, self.role)
            setattr(request.state, PRINCIPAL_STATE, principal)
        if self.numeric:
            self._check_params(request)
        if self.reads_json and request.method not in BODILESS and _is_json(request.headers):
            # The request keeps the body it read: FastAPI parses it from there, not from the socket.
            body = await request.body()
            if body.strip():
                parse_json_body(body, self.max_json_depth)

    def _check_params(self, request: Request) -> None:
        for (where, name), kind in self.numeric.items():
            if where == "query":
                values = request.query_params.getlist(name)
            else:
                values = [str(request.path_params.get(name, ""))]
            for value in values:
                if kind is int:
                    parse_int(value, name)
                else:
                    parse_number(value, name)


class GuardedRoute(APIRoute):
    """An API route whose :class:`RouteChecks` run before FastAPI reads its request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks = RouteChecks(self)

        async def guarded(request: Request) -> Response:
            await checks.run(request)
            return await handler(request)

        return guarded
