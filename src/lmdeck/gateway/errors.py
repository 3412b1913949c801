"""Turning every failure into an OpenAI-shaped error response."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from lmdeck.protocol import APIError, error_body
from lmdeck.protocol.errors import ERROR_TYPES
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


#: Upstream answers that mean lmdeck's target is misconfigured rather than the request being bad.
UPSTREAM_MISCONFIGURED = frozenset({401, 403, 404})


def upstream_to_api_error(exc: UpstreamError) -> APIError:
    """An upstream's failure as the gateway reports it to its client."""
    if exc.kind == "unsupported":
        return APIError(400, exc.message, code="unsupported")
    if exc.kind in ("timeout", "ttft_timeout"):
        return APIError(504, exc.message, code=exc.kind)
    if exc.kind == "queue_full":
        return APIError(503, exc.message, code="queue_full", headers={"retry-after": "1"})
    if exc.status in UPSTREAM_MISCONFIGURED:
        # The caller's own key was fine: the upstream refused lmdeck's credentials or model name,
        # which is the gateway's configuration to fix, not the client's request.
        return APIError(
            502,
            f"{exc.message} (check the target's api_key and model in the route config)",
            type="upstream_error",
            code="upstream_misconfigured",
        )
    if 400 <= exc.status < 500 and exc.status not in (408, 429):
        upstream = (exc.body or {}).get("error") if isinstance(exc.body, dict) else None
        message = upstream.get("message", exc.message) if isinstance(upstream, dict) else exc.message
        return APIError(exc.status, message, code="upstream_rejected")
    if exc.status == 429:
        headers = {"retry-after": str(int(exc.retry_after))} if exc.retry_after else None
        return APIError(429, exc.message, code="upstream_rate_limited", headers=headers)
    return APIError(502, exc.message, type="upstream_error", code="upstream_error")


def api_error_response(exc: APIError) -> Response:
    return json_response(exc.status, exc.body(), exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return api_error_response(exc)

    async def on_upstream_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamError)
        return api_error_response(upstream_to_api_error(exc))

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        kind = ERROR_TYPES.get(status, "invalid_request_error")
        return json_response(status, error_body(str(exc.detail), kind), dict(exc.headers or {}))

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return json_response(400, error_body(f"{param or 'request'}: {first['msg']}", param=param))

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return json_response(500, error_body("internal error", "api_error"))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(UpstreamError, on_upstream_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
