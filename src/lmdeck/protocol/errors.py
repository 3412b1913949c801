"""Errors in OpenAI's shape.

Every error lmdeck returns has the body
``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``.
Raise :class:`APIError` anywhere below a route and the gateway turns it into
that body with its status code::

    raise APIError(404, "route 'gpt-5' does not exist", type="invalid_request_error",
                   code="model_not_found", param="model")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The ``type`` OpenAI uses for each status code.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class APIError(Exception):
    """An error that becomes an OpenAI-shaped HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def validation_param(errors: Sequence[Any]) -> tuple[str | None, str]:
    """The ``param`` and message for pydantic's ``ValidationError.errors()`` (non-empty).

    A value that fails every member of a union yields one error per member, each with the
    member's type appended to its location (``messages.0.content.str``); the param is then the
    location they share (``messages.0.content``) and the message lists what each member wanted.
    FastAPI's leading source (``body``, ``query``, ``path``, ``header``, ``cookie``) is left out:
    the param is ``limit``, not ``query.limit``.
    """
    locs = [[str(p) for p in _without_source(err["loc"])] for err in errors]
    first = locs[0]
    if len(locs) > 1:
        shared = first
        for loc in locs[1:]:
            n = 0
            while n < min(len(shared), len(loc)) and shared[n] == loc[n]:
                n += 1
            shared = shared[:n]
        if shared:
            wanted = dict.fromkeys(str(err["msg"]) for err in errors)
            return ".".join(shared), " or ".join(wanted)
    return ".".join(first) or None, str(errors[0]["msg"])


#: Where FastAPI found a value: the first element of its error locations.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _without_source(loc: Sequence[Any]) -> Sequence[Any]:
    return loc[1:] if loc and loc[0] in _SOURCES else loc
