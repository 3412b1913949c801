"""Turning every failure into an OpenAI-shaped error response."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from lmdeck.protocol import APIError, error_body
from lmdeck.protocol.errors import ERROR_TYPES, validation_param
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


#: Upstream answers that mean lmdeck's target is misconfigured rather than the request being bad.
UPSTREAM_MISCONFIGURED = frozenset({401, 403, 404})

#: The header that says an error's status, type, code and param are the target's own, passed through.
UPSTREAM_STATUS_HEADER = "x-lmdeck-upstream-status"

#: What a client is told of a failure it cannot act on, by the failure's kind; the upstream's own
#: words, its address and any exception text go to the trace and the log only.
FAILURE_WORDS: dict[str, str] = {
    "timeout": "the model's upstream did not answer in time (the target's `timeout`)",
    "ttft_timeout": "the model's upstream sent no token in time (the target's `ttft_timeout`)",
    "connect_timeout": "the model's upstream could not be reached in time",
    "connect": "the model's upstream could not be reached",
    "broken": "the model's upstream broke the connection",
    "bad_answer": "the model's upstream sent an answer lmdeck cannot read",
    "stream_error": "the model's upstream reported an error during the stream",
    "overloaded": "the model's upstream is overloaded; retry later",
}

#: Kinds answered 504 Gateway Timeout.
TIMEOUTS = frozenset({"timeout", "ttft_timeout", "connect_timeout"})


def _passed_through(exc: UpstreamError) -> dict[str, Any] | None:
    """The OpenAI error object of an upstream's answer, when it sent one."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def upstream_to_api_error(exc: UpstreamError) -> APIError:
    """An upstream's failure as the gateway reports it to its client.

    - A 4xx about the request itself (and a 429) is passed through: the target's status and its
      error's ``message``, ``type``, ``param`` and ``code`` (a context-length error stays
      ``400 context_length_exceeded``), marked by the ``x-lmdeck-upstream-status`` header.
    - 401/403/404 from an upstream refuse lmdeck's own credentials or model name: a 502 telling
      the operator what to check.
    - Everything else (5xx, refused or broken connections, timeouts, unreadable answers) is told
      in lmdeck's own words by kind; what the upstream said, its address and any exception text
      are logged and kept on the trace (``metadata.upstream_errors``), never sent to the client.
    """
    if exc.kind == "unsupported":
        return APIError(400, exc.message, param="model", code="unsupported_endpoint")
    if exc.kind == "egress_refused":
        return APIError(403, exc.message, code="egress_refused")
    if exc.kind == "adapter_load_failed":
        # The operator's fix is in the message (see lmdeck.providers.openai_lora); it names no address.
        return APIError(502, exc.message, type="upstream_error", code="adapter_load_failed")
    if exc.kind == "queue_full":
        # The caller's share of a busy local model: a rate limit, not a failure of the service.
        wait = str(max(1, math.ceil(exc.retry_after or 1)))
        return APIError(429, exc.message, code="queue_full", headers={"retry-after": wait})
    if exc.kind == "model_loading":
        wait = str(max(1, math.ceil(exc.retry_after or 1)))
        return APIError(503, exc.message, code="model_loading", headers={"retry-after": wait})
    upstream = _passed_through(exc)
    if exc.status in UPSTREAM_MISCONFIGURED:
        log.warning("upstream refused the target's configuration: %s", exc.message)
        return APIError(
            502,
            f"the model's upstream refused lmdeck's credentials or model name (HTTP {exc.status}): "
            "check the target's api_key and model in the route config",
            type="upstream_error",
            code="upstream_misconfigured",
        )
    if 400 <= exc.status < 500 and exc.status != 408:
        headers = {UPSTREAM_STATUS_HEADER: str(exc.status)}
        if exc.status == 429 and exc.retry_after:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        if upstream is None:
            log.warning("upstream refused a request without an OpenAI error body: %s", exc.message)
            return APIError(
                exc.status,
                f"the model's upstream refused the request (HTTP {exc.status}) without saying why in OpenAI's "
                "error shape; the request's trace holds its answer",
                headers=headers,
            )
        return APIError(
            exc.status,
            str(upstream["message"]),
            type=_text(upstream.get("type")),
            param=_text(upstream.get("param")),
            code=_text(upstream.get("code")),
            headers=headers,
        )
    log.warning("upstream failure (%s, HTTP %s): %s", exc.kind, exc.status, exc.message)
    words = FAILURE_WORDS.get(exc.kind, f"the model's upstream failed (HTTP {exc.status})")
    if exc.kind in TIMEOUTS:
        return APIError(504, words, code=exc.kind)
    return APIError(
        502, f"{words}; the request's trace holds the details", type="upstream_error", code="upstream_error"
    )


def api_error_response(exc: APIError) -> Response:
    return json_response(exc.status, exc.body(), exc.headers)


class HTTPAPIError(StarletteHTTPException):
    """An :class:`APIError` raised where FastAPI lets only HTTP exceptions through.

    While FastAPI reads a request body it turns any other exception into a bare
    400; this one it re-raises, and the handlers answer with ``error`` itself.
    """

    def __init__(self, error: APIError) -> None:
        super().__init__(error.status, error.message, error.headers or None)
        self.error = error


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return api_error_response(exc)

    async def on_upstream_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamError)
        return api_error_response(upstream_to_api_error(exc))

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, HTTPAPIError):
            return api_error_response(exc.error)
        status = exc.status_code
        kind = ERROR_TYPES.get(status, "invalid_request_error")
        return json_response(status, error_body(str(exc.detail), kind), dict(exc.headers or {}))

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        param, message = validation_param(exc.errors()) if exc.errors() else (None, "invalid request")
        return json_response(400, error_body(f"{param or 'request'}: {message}", param=param, code="invalid_value"))

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return json_response(500, error_body("internal error", "api_error"))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(UpstreamError, on_upstream_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
