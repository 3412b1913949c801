"""Every failure of ``/v1/messages`` in Anthropic's error shape.

    {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}

lmdeck's own refusals (:class:`~lmdeck.protocol.APIError`), upstream failures
(:class:`~lmdeck.providers.base.UpstreamError`, told as for chat: see
:func:`lmdeck.gateway.errors.upstream_to_api_error`) and HTTP errors keep their status and headers
(``retry-after`` on a 429); the ``type`` is Anthropic's for the status
(:func:`~lmdeck.protocol.messages.anthropic_error_type`), and the message names the parameter when
lmdeck's error named one.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response

from lmdeck.gateway.errors import HTTPAPIError, upstream_to_api_error
from lmdeck.protocol import APIError
from lmdeck.protocol.messages import anthropic_error_body, anthropic_error_type
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)

#: Chat parameters a refusal may name, as the Messages request called them.
MESSAGES_NAMES = {
    "max_completion_tokens": "max_tokens",
    "stop": "stop_sequences",
    "user": "metadata.user_id",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "stream_options.include_usage": "stream",
}


def as_api_error(exc: BaseException) -> APIError:
    """``exc`` as the :class:`APIError` lmdeck answers it with (an unexpected one: a logged 500)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, HTTPAPIError):
        return exc.error
    if isinstance(exc, UpstreamError):
        return upstream_to_api_error(exc)
    if isinstance(exc, HTTPException):
        return APIError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    log.error("unhandled error on /v1/messages", exc_info=exc)
    return APIError(500, "internal error", type="api_error")


def in_messages_terms(exc: APIError) -> str:
    """``exc``'s message, naming the Messages parameter where it named the chat one it was translated into."""
    message = exc.message
    name = MESSAGES_NAMES.get(exc.param or "")
    if name is not None:
        message = message.replace(f"`{exc.param}`", f"`{name}`")
        if not message.startswith(f"{name}:") and f"`{name}`" not in message:
            message = f"{name}: {message}"
    elif exc.param and exc.param not in message:
        message = f"{exc.param}: {message}"
    return message


def error_payload(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, Anthropic error body and headers for ``exc``."""
    error = as_api_error(exc)
    return (
        error.status,
        anthropic_error_body(in_messages_terms(error), anthropic_error_type(error.status)),
        dict(error.headers or {}),
    )


def error_response(exc: BaseException) -> Response:
    """``exc`` as an HTTP response in Anthropic's error shape."""
    status, body, headers = error_payload(exc)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_event(exc: BaseException) -> dict[str, Any]:
    """The terminal ``error`` event of a stream that failed part-way."""
    return error_payload(exc)[1]
