"""``/v1/messages`` through a real ``lmdeck serve``, with the official ``anthropic`` SDK.

One gateway for the module: route ``claude`` in front of the FAKE Anthropic API (served natively:
the fake receives the client's body as sent), ``chat`` and ``once`` in front of the FAKE OpenAI
upstream (served through the chat translation), and the bundled ``demo`` model on the local engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic

from lmdeck.testing.servers import (
    FakeAnthropicProcess,
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    anthropic_target,
    openai_target,
    start_fake_anthropic,
)

LOCAL_DEMO = {"provider": "local", "model": "demo", "timeout": 120, "max_retries": 0}
WEATHER = {
    "name": "get_weather",
    "description": "the weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PRICING = {"fake-model": {"input": 1, "output": 2}, "claude-sonnet-4-5": {"input": 3, "output": 5}}


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAnthropicProcess]:
    fake = start_fake_anthropic(log_dir=tmp_path_factory.mktemp("fake-anthropic-messages"))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def gw(
    gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess, fake_anthropic: FakeAnthropicProcess
) -> GatewayProcess:
    routes = [
        {"name": "claude", "targets": [anthropic_target(fake_anthropic, max_retries=0)]},
        {"name": "chat", "targets": [openai_target(fake_upstream_server)]},
        {"name": "demo", "targets": [LOCAL_DEMO]},
        {"name": "once", "targets": [openai_target(fake_upstream_server, max_retries=0)]},
        {
            "name": "guarded-claude",
            "targets": [anthropic_target(fake_anthropic, max_retries=0)],
            "guardrails": {"output": [{"use": "no-zebra", "action": "block"}], "stream_window": 64},
        },
    ]
    guardrails = {"definitions": {"no-zebra": {"type": "regex", "options": {"words": ["zebra"]}}}}
    return gateway(routes, policy={"pricing": PRICING}, guardrails=guardrails)


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Anthropic:
    # The SDK sends the key as ``x-api-key``.
    return Anthropic(base_url=gw.url, api_key=gw.admin_key, max_retries=0, timeout=60)


def rid() -> dict[str, str]:
    return {"x-request-id": f"msg-{uuid.uuid4().hex}"}


def traced_once(gw: GatewayProcess, headers: dict[str, str]) -> dict[str, Any]:
    request_id = headers["x-request-id"]
    trace = gw.trace(request_id)
    listed = httpx.get(
        f"{gw.url}/api/traces", params={"client_request_id": request_id}, headers=gw.headers(), timeout=60
    )
    assert len(listed.json()["data"]) == 1
    assert trace["metadata"]["ingress"] == "messages" and trace["kind"] == "chat"
    return trace


def test_create_through_the_chat_translation_is_traced_once_with_cost(client: Anthropic, gw: GatewayProcess) -> None:
    headers = rid()
    message = client.messages.create(
        model="chat",
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
        metadata={"user_id": "u-1"},
        extra_headers=headers,
    )
    assert message.type == "message" and message.role == "assistant" and message.model == "chat"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 2 and message.usage.input_tokens > 0
    trace = traced_once(gw, headers)
    assert trace["input_tokens"] == message.usage.input_tokens and trace["output_tokens"] == 2
    assert trace["cost_micros"] == trace["input_tokens"] * 1 + 2 * 2
    assert trace["user"] == "u-1"


def test_stream_through_the_chat_translation(client: Anthropic, gw: GatewayProcess) -> None:
    headers = rid()
    with client.messages.stream(
        model="chat", max_tokens=64, messages=[{"role": "user", "content": "stream me please"}], extra_headers=headers
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert final.content[0].text == "stream me please"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    trace = traced_once(gw, headers)
    assert trace["stream"] is True and trace["output_tokens"] == 3
    assert final.usage.input_tokens == trace["input_tokens"] and trace["cost_micros"] > 0


def test_native_create_sends_the_original_body(
    client: Anthropic, gw: GatewayProcess, fake_anthropic: FakeAnthropicProcess
) -> None:
    headers = rid()
    system = [{"type": "text", "text": "you are terse", "cache_control": {"type": "ephemeral"}}]
    message = client.messages.create(
        model="claude",
        max_tokens=50,
        system=system,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": [{"type": "text", "text": "native hello"}]}],
        extra_headers=headers,
        extra_body={"top_k": 5},
    )
    sent = fake_anthropic.requests()[-1]
    assert sent == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": system,
        "top_k": 5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "native hello"}]}],
    }
    assert message.id.startswith("msg_fake_") and message.content[0].text == "native hello"  # type: ignore[union-attr]
    assert message.usage.cache_creation_input_tokens == 3  # the cached system prompt: priced apart
    trace = traced_once(gw, headers)
    assert trace["provider"] == "anthropic" and trace["output_tokens"] == message.usage.output_tokens
    usage = message.usage
    assert trace["input_tokens"] == usage.input_tokens + usage.cache_creation_input_tokens
    assert trace["cost_micros"] > 0


def test_output_guardrails_are_never_passed_by_a_native_answer(client: Anthropic) -> None:
    # The FAKE Anthropic upstream echoes the text: its answer holds the word the route blocks.
    ask = {"model": "guarded-claude", "max_tokens": 50, "messages": [{"role": "user", "content": "a zebra"}]}
    with pytest.raises(anthropic.APIStatusError) as blocked:
        client.messages.create(**ask)  # type: ignore[call-overload]
    assert blocked.value.status_code == 422
    with pytest.raises(anthropic.APIError), client.messages.stream(**ask) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass
    clean = client.messages.create(**{**ask, "messages": [{"role": "user", "content": "a horse"}]})  # type: ignore[call-overload]
    assert clean.content[0].text == "a horse"  # type: ignore[union-attr]
    assert not clean.id.startswith("msg_fake_")  # lmdeck's translation of a checked answer, not the fake's own


def test_native_stream_is_relayed_as_the_upstream_sent_it(
    client: Anthropic, gw: GatewayProcess, fake_anthropic: FakeAnthropicProcess
) -> None:
    headers = rid()
    stream = client.messages.create(
        model="claude",
        max_tokens=50,
        stream=True,
        messages=[{"role": "user", "content": "native stream here"}],
        extra_headers=headers,
    )
    events = list(stream)
    assert fake_anthropic.requests()[-1]["stream"] is True
    assert events[0].type == "message_start" and events[0].message.id.startswith("msg_fake_")
    assert events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "native stream here"
    trace = traced_once(gw, headers)
    assert trace["stream"] is True and trace["output_tokens"] == 3


def test_demo_model_stream_and_whole(client: Anthropic, gw: GatewayProcess) -> None:
    whole = client.messages.create(model="demo", max_tokens=8, messages=[{"role": "user", "content": "2+2"}])
    assert whole.content and whole.usage.output_tokens > 0 and whole.stop_reason in ("end_turn", "max_tokens")
    headers = rid()
    with client.messages.stream(
        model="demo", max_tokens=8, messages=[{"role": "user", "content": "2+2"}], extra_headers=headers
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0
    assert traced_once(gw, headers)["output_tokens"] == final.usage.output_tokens


@pytest.mark.parametrize("route", ["chat", "claude"])
def test_tools_round_trip(client: Anthropic, route: str) -> None:
    asked = [{"role": "user", "content": "call get_weather for Paris"}]
    first = client.messages.create(model=route, max_tokens=64, tools=[WEATHER], messages=asked)  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
    second = client.messages.create(
        model=route,
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[*asked, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}],  # type: ignore[list-item]
    )
    assert second.stop_reason == "end_turn" and second.content[0].text == "tool said: sunny"  # type: ignore[union-attr]


def test_count_tokens_native_estimated_and_tokenized(client: Anthropic, fake_anthropic: FakeAnthropicProcess) -> None:
    messages = [{"role": "user", "content": "count these four words"}]
    native = client.messages.count_tokens(model="claude", system="be brief", messages=messages)  # type: ignore[arg-type]
    assert native.input_tokens == 6  # the fake counts words: system and message
    assert fake_anthropic.counted()[-1] == {"model": "claude-sonnet-4-5", "system": "be brief", "messages": messages}
    estimated = client.messages.count_tokens(model="chat", messages=messages)  # type: ignore[arg-type]
    assert estimated.input_tokens > 0
    tokenized = client.messages.count_tokens(model="demo", messages=messages)  # type: ignore[arg-type]
    whole = client.messages.create(model="demo", max_tokens=1, messages=messages)  # type: ignore[arg-type]
    assert tokenized.input_tokens == whole.usage.input_tokens


def test_x_api_key_and_bearer_work_and_a_bad_key_gets_anthropic_401(gw: GatewayProcess) -> None:
    body = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    version = {"anthropic-version": "2023-06-01"}
    for auth in ({"x-api-key": gw.admin_key}, gw.headers()):
        answer = httpx.post(f"{gw.url}/v1/messages", json=body, headers={**auth, **version}, timeout=60)
        assert answer.status_code == 200, answer.text
    bad = Anthropic(base_url=gw.url, api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model="chat", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": caught.value.body["error"]["message"]},
    }  # type: ignore[index]
    missing = httpx.post(f"{gw.url}/v1/messages", json=body, headers=version, timeout=60)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert "x-api-key" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages.0.content.0.type"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"service_tier": "auto"}, "service_tier"),
    ],
)
def test_bad_input_is_a_400_in_anthropic_shape_naming_the_field(
    gw: GatewayProcess, change: dict[str, Any], named: str
) -> None:
    body: dict[str, Any] = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    answer = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": gw.admin_key}, timeout=60)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert named in error["error"]["message"]


def test_unknown_model_and_upstream_429_in_anthropic_shape(
    client: Anthropic, fake_upstream_server: FakeUpstreamProcess
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-route", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    fake_upstream_server.configure(script=["429:3"])
    try:
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model="once", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    finally:
        fake_upstream_server.configure(script=[])
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert limited.value.response.headers.get("retry-after") == "3"
