"""OpenAI conformance through a real ``lmdeck serve`` and the fake upstream: model retrieval, errors
passed through with their type/code/param, upstream fields kept, and client messages free of upstream
addresses and library exception text."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, free_port, openai_target

USER = [{"role": "user", "content": "hello there"}]
#: Nothing listens here: connections are refused.
DEAD_URL = f"http://127.0.0.1:{free_port()}/v1"
SLASHED = "acme/llama-3.1:8b"
#: What must never reach a client: an address, a URL, a Python or aiohttp exception's name.
LEAKS = re.compile(r"https?://|127\.0\.0\.1|localhost|Errno|Error\(|ConnectionReset|ClientPayload|aiohttp|Traceback")
CONTEXT_LENGTH = {
    "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded",
}


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    routes = [
        # Streams commit at their first chunk, so that a drop after a token reaches the client as an error event.
        {"name": "chat", "stream_commit": {"chunks": 0}, "targets": [openai_target(fake_upstream, max_retries=0)]},
        {"name": SLASHED, "targets": [openai_target(fake_upstream, "m-slashed")]},
        {"name": "vectors", "kind": "embeddings", "targets": [openai_target(fake_upstream, "fake-embed")]},
        {"name": "dead", "targets": [{"provider": "openai", "model": "m", "base_url": DEAD_URL, "max_retries": 0}]},
    ]
    # The module's tests fail the `chat` target on purpose, several times over; a breaker opening part-way
    # (how many failures land inside its window depends on the machine's speed) would answer 503 instead.
    return gateway(routes, breaker={"failure_threshold": 1_000_000})


def client(gw: GatewayProcess, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key or gw.admin_key, max_retries=0, timeout=15)


# -- GET /v1/models/{id} ------------------------------------------------------------------------------


def test_every_listed_model_can_be_retrieved(gw: GatewayProcess) -> None:
    sdk = client(gw)
    listed = [m.id for m in sdk.models.list()]
    assert sorted(listed) == sorted(["chat", SLASHED, "vectors", "dead"])
    for model_id in listed:
        model = sdk.models.retrieve(model_id)
        assert (model.id, model.object) == (model_id, "model")


def test_an_unknown_model_is_a_404_in_openais_shape(gw: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(gw).models.retrieve("no-such/model:1")
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"  # type: ignore[attr-defined]


def test_a_model_the_key_may_not_use_is_not_found(gw: GatewayProcess) -> None:
    created = httpx.post(
        f"{gw.url}/api/keys",
        headers=gw.headers(),
        json={"name": "chat-only", "role": "inference", "allowed_models": ["chat"]},
        timeout=10,
    )
    limited = client(gw, created.json()["key"])
    assert limited.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError):
        limited.models.retrieve(SLASHED)


# -- upstream errors passed through ---------------------------------------------------------------------


def test_a_context_length_error_keeps_its_type_code_and_param(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.configure(script=[{"status": 400, "error": CONTEXT_LENGTH}])
    response = httpx.post(
        f"{gw.base_url}/chat/completions", headers=gw.headers(), json={"model": "chat", "messages": USER}, timeout=15
    )
    assert response.status_code == 400
    assert response.json() == {"error": CONTEXT_LENGTH}
    assert response.headers["x-lmdeck-upstream-status"] == "400"
    fake_upstream.configure(script=[{"status": 400, "error": CONTEXT_LENGTH}])
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).chat.completions.create(model="chat", messages=USER)
    assert raised.value.code == "context_length_exceeded"


def test_an_upstream_rate_limit_keeps_its_code(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    quota = {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": None}
    fake_upstream.configure(
        script=[{"status": 429, "retry_after": 2, "error": {**quota, "code": "insufficient_quota"}}]
    )
    with pytest.raises(openai.RateLimitError) as raised:
        client(gw).chat.completions.create(model="chat", messages=USER)
    assert raised.value.code == "insufficient_quota"
    assert raised.value.type == "insufficient_quota"  # type: ignore[attr-defined]
    assert raised.value.response.headers["retry-after"] == "2"


# -- upstream fields kept -------------------------------------------------------------------------------


def test_a_whole_answer_keeps_every_field_the_upstream_sent(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    """Regression: ``logprobs: null`` and ``system_fingerprint: null`` were dropped, so were unknown nulls."""
    fake_upstream.configure(response_extra={"future_field": {"nested": None}, "another": None})
    response = httpx.post(
        f"{gw.base_url}/chat/completions", headers=gw.headers(), json={"model": "chat", "messages": USER}, timeout=15
    )
    body = response.json()
    assert body["system_fingerprint"] is None and "system_fingerprint" in body
    assert body["service_tier"] == "default"
    assert body["future_field"] == {"nested": None} and "another" in body
    assert "logprobs" in body["choices"][0] and body["choices"][0]["logprobs"] is None
    reply = client(gw).chat.completions.create(model="chat", messages=USER)
    assert reply.model_extra is not None and reply.model_extra["future_field"] == {"nested": None}


# -- what clients are told about failures -------------------------------------------------------------


def test_a_refused_connection_is_reported_without_the_upstreams_address(gw: GatewayProcess) -> None:
    request_id = f"dead-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={**gw.headers(), "x-request-id": request_id},
        json={"model": "dead", "messages": USER},
        timeout=15,
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert not LEAKS.search(error["message"]), error["message"]
    assert error["code"] == "upstream_error"
    details = gw.trace(request_id)["metadata"]["upstream_errors"]
    assert DEAD_URL in details[0]["error"], "the operator still finds the address in the trace"


def stream_events(gw: GatewayProcess, route: str) -> list[Any]:
    import json

    events = []
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        headers=gw.headers(),
        json={"model": route, "messages": [{"role": "user", "content": "one two three four five six"}], "stream": True},
        timeout=15,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


def test_a_stream_cut_midway_reports_no_address_and_no_exception_text(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    """Regression: the error event carried the upstream's URL and aiohttp's ConnectionResetError.

    The drop comes well after the first token (5 tokens/s): a close that arrived together with the
    first chunks could make the client library discard them unread, and the failure would then be one
    before the stream began (a 502), not the mid-stream case this test is about.
    """
    fake_upstream.configure(script=["drop_mid_stream:2"], tokens_per_s=5)
    events = stream_events(gw, "chat")
    errors = [e["error"] for e in events if "error" in e]
    assert len(errors) == 1, events
    assert not LEAKS.search(errors[0]["message"]), errors[0]["message"]
    assert set(errors[0]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.APIError) as raised:
        fake_upstream.configure(script=["drop_mid_stream:2"], tokens_per_s=5)
        long_reply = [{"role": "user", "content": "one two three four five six"}]
        for _ in client(gw).chat.completions.create(model="chat", messages=long_reply, stream=True):
            pass
    assert not LEAKS.search(str(raised.value))


def test_an_upstream_5xx_body_is_not_shown_to_the_client(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    secret = {"message": "backend 10.1.2.3:8000 exploded: Traceback ...", "type": "server_error"}
    fake_upstream.configure(script=[{"status": 500, "error": secret}])
    with pytest.raises(openai.APIStatusError) as raised:
        client(gw).chat.completions.create(model="chat", messages=USER)
    assert raised.value.status_code == 502
    assert "10.1.2.3" not in str(raised.value.body) and not LEAKS.search(str(raised.value.body))
