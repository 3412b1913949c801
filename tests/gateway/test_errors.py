"""Upstream failures as the client sees them: refusals passed through, everything else in lmdeck's words."""

from __future__ import annotations

import re

import pytest

from lmdeck.gateway.errors import UPSTREAM_STATUS_HEADER, upstream_to_api_error
from lmdeck.protocol import error_body
from lmdeck.providers.base import UpstreamError, UpstreamTimeout, transport_error
from lmdeck.providers.openai import error_from_response, json_object

URL = "http://10.0.0.7:8000/v1/chat/completions"
LEAKS = re.compile(r"https?://|10\.0\.0\.7|Errno|ConnectionReset|aiohttp|Traceback")


def test_upstream_credential_refusal_is_the_gateways_problem() -> None:
    for status in (401, 403, 404):
        body = {"error": {"message": "Incorrect API key provided: sk-abc***xyz", "type": "invalid_request_error"}}
        err = upstream_to_api_error(UpstreamError(status, f"upstream answered {status}", body=body))
        assert err.status == 502
        assert err.code == "upstream_misconfigured"
        assert "api_key" in err.message and "sk-abc" not in err.message


def test_a_refusal_keeps_the_upstreams_status_message_type_param_and_code() -> None:
    upstream = {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    err = upstream_to_api_error(error_from_response(400, {}, orjson_bytes({"error": upstream})))
    assert (err.status, err.body()) == (400, {"error": upstream})
    assert err.headers == {UPSTREAM_STATUS_HEADER: "400"}


def test_an_unprocessable_entity_keeps_its_status() -> None:
    upstream = {"message": "bad schema", "type": "invalid_request_error", "param": "response_format", "code": None}
    err = upstream_to_api_error(error_from_response(422, {}, orjson_bytes({"error": upstream})))
    assert (err.status, err.param, err.code) == (422, "response_format", None)


def test_a_refusal_without_an_openai_body_is_not_echoed() -> None:
    err = upstream_to_api_error(error_from_response(400, {}, b"<html>nginx at 10.0.0.7</html>"))
    assert err.status == 400
    assert not LEAKS.search(err.message) and "nginx" not in err.message


def test_rate_limit_keeps_its_code_and_retry_after() -> None:
    body = {"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    err = upstream_to_api_error(UpstreamError(429, "slow down", retry_after=2.2, body=body))
    assert (err.status, err.type, err.code) == (429, "requests", "rate_limit_exceeded")
    assert err.headers == {UPSTREAM_STATUS_HEADER: "429", "retry-after": "3"}


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (transport_error("connect", URL, 30, "ClientConnectorError: [Errno 111] Connection refused"), 502, None),
        (transport_error("broken", URL, 30, "ClientPayloadError: ConnectionResetError(104)"), 502, None),
        (transport_error("connect_timeout", URL, 30), 504, "connect_timeout"),
        (transport_error("timeout", URL, 30), 504, "timeout"),
        (UpstreamTimeout(f"the upstream openai:m@{URL} sent no token within 2s", kind="ttft_timeout"), 504, None),
        (UpstreamError(500, "upstream answered 500: worker 10.0.0.7 Traceback (most recent call last)"), 502, None),
        (UpstreamError(503, "local model 'demo' failed to load: [Errno 2] No such file"), 502, None),
        (UpstreamError(502, f"the upstream stream failed: {URL}", kind="stream_error"), 502, None),
    ],
)
def test_failures_are_told_in_lmdecks_words(exc: UpstreamError, status: int, code: str | None) -> None:
    """Regression: the client was told the upstream's address and the library's exception text."""
    err = upstream_to_api_error(exc)
    assert err.status == status
    assert code is None or err.code == code
    assert not LEAKS.search(err.message), err.message


def test_an_overloaded_upstream_says_so() -> None:
    from lmdeck.providers.anthropic.errors import stream_error

    err = upstream_to_api_error(stream_error({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}))
    assert err.status == 502 and "overloaded" in err.message


def test_an_unreadable_answer_is_told_in_lmdecks_words() -> None:
    with pytest.raises(UpstreamError) as raised:
        json_object(b"<html>", URL)
    err = upstream_to_api_error(raised.value)
    assert err.status == 502 and "cannot read" in err.message and not LEAKS.search(err.message)


def test_refusals_lmdeck_raises_keep_their_words_and_code() -> None:
    local = UpstreamError(
        400,
        "prompt too long",
        body=error_body("prompt too long", code="context_length_exceeded"),
        kind="invalid_request",
    )
    err = upstream_to_api_error(local)
    assert (err.status, err.code, err.message) == (400, "context_length_exceeded", "prompt too long")
    assert upstream_to_api_error(UpstreamError(503, "queue full (local.max_queue=1)", kind="queue_full")).message == (
        "queue full (local.max_queue=1)"
    )


def orjson_bytes(value: object) -> bytes:
    import orjson

    return orjson.dumps(value)
