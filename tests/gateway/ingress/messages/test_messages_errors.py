"""Failures on /v1/messages in Anthropic's error shape."""

from __future__ import annotations

import orjson
import pytest
from starlette.exceptions import HTTPException

from lmdeck.gateway.ingress.messages.errors import error_response
from lmdeck.protocol import APIError
from lmdeck.providers.base import UpstreamError


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (APIError(400, "max_tokens: Field required", param="max_tokens"), 400, "invalid_request_error"),
        (APIError(401, "the API key is invalid"), 401, "authentication_error"),
        (APIError(403, "this key may not use the model 'x'"), 403, "permission_error"),
        (APIError(404, "the model 'x' does not exist", param="model"), 404, "not_found_error"),
        (APIError(413, "too big"), 413, "request_too_large"),
        (APIError(429, "slow down", headers={"retry-after": "2"}), 429, "rate_limit_error"),
        (APIError(503, "circuit open"), 503, "overloaded_error"),
        (UpstreamError(500, "upstream broke"), 502, "api_error"),
        (UpstreamError(504, "slow", kind="timeout"), 504, "api_error"),
        (HTTPException(405, "Method Not Allowed"), 405, "invalid_request_error"),
        (RuntimeError("bug"), 500, "api_error"),
    ],
)
def test_every_failure_has_anthropics_shape(exc: Exception, status: int, kind: str) -> None:
    response = error_response(exc)
    body = orjson.loads(bytes(response.body))
    assert response.status_code == status
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert body["error"]["type"] == kind and isinstance(body["error"]["message"], str)
    if status == 429:
        assert response.headers["retry-after"] == "2"


def test_a_refusal_names_the_messages_parameter() -> None:
    refused = APIError(400, "`stop` takes at most 4 sequences", param="stop")
    message = orjson.loads(bytes(error_response(refused).body))["error"]["message"]
    assert "`stop_sequences`" in message and "`stop`" not in message
