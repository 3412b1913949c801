"""Anthropic's failures as lmdeck errors, whether they come as an HTTP status or inside a stream.

Anthropic reports a failure either as an HTTP error (``529`` when overloaded) or, once a
stream has begun with ``200``, as an ``error`` event carrying the same error ``type``. Both
become the same :class:`~lmdeck.providers.base.UpstreamError`, so the dispatcher retries and
falls back on an in-stream ``overloaded_error`` exactly as on an HTTP 529::

    upstream_error(529, "overloaded_error", "Overloaded")     # UpstreamOverloaded, retryable
    stream_error({"type": "overloaded_error", "message": "Overloaded"})  # the same

A request lmdeck cannot translate is refused before any upstream call with :func:`refuse`:
a 400 in OpenAI's shape that names the parameter.
"""

from __future__ import annotations

from typing import Any

from lmdeck.protocol import APIError
from lmdeck.providers.base import UpstreamError

#: Anthropic's "overloaded" status.
OVERLOADED = 529

#: The HTTP status of each Anthropic error ``type`` (what an in-stream error would have been as a status).
STATUS_OF_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": OVERLOADED,
}


class UpstreamOverloaded(UpstreamError):
    """Anthropic is overloaded (HTTP 529 or an ``overloaded_error`` event): retryable, trips the breaker."""

    def __init__(self, message: str, *, retry_after: float | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(OVERLOADED, message, retryable=True, retry_after=retry_after, body=body, kind="overloaded")


def upstream_error(
    status: int, error_type: str | None, message: str, *, retry_after: float | None = None, body: Any = None
) -> UpstreamError:
    """The :class:`UpstreamError` for an Anthropic failure of ``status`` (529 → :class:`UpstreamOverloaded`)."""
    kept = body if isinstance(body, dict) else None
    if status == OVERLOADED or error_type == "overloaded_error":
        return UpstreamOverloaded(message, retry_after=retry_after, body=kept)
    return UpstreamError(status, message, retry_after=retry_after, body=kept)


def stream_error(event: dict[str, Any]) -> UpstreamError:
    """The :class:`UpstreamError` for an ``error`` event inside a stream, as if it had come as its HTTP status."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {"message": str(error)}
    kind = str(error.get("type") or "api_error")
    status = STATUS_OF_TYPE.get(kind, 500)
    return upstream_error(status, kind, f"anthropic stream failed ({kind}): {error.get('message', '')}", body=event)


def refuse(param: str, message: str, code: str = "unsupported_parameter") -> APIError:
    """A 400 for a request the Messages API cannot take, raised before any upstream call."""
    return APIError(400, message, type="invalid_request_error", param=param, code=code)
