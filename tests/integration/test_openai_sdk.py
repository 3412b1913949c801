"""The official ``openai`` client against a real ``lmdeck serve`` in front of the fake upstream."""

from __future__ import annotations

import json
import uuid

import openai
import pytest
from openai import OpenAI

from lmdeck.testing.fake_content import embedding_vector
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess

USER = [{"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture
def gw(standard_gateway: GatewayProcess) -> GatewayProcess:
    return standard_gateway


@pytest.fixture
def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=10)


def test_chat_non_stream(client: OpenAI, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    request_id = f"sdk-{uuid.uuid4().hex}"
    reply = client.chat.completions.create(model="chat", messages=USER, extra_headers={"x-request-id": request_id})
    assert reply.choices[0].message.content == "hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 4
    assert fake_upstream.count() == 1
    sent = fake_upstream.requests()[-1]["body"]
    assert sent["model"] == "fake-model" and sent["messages"] == USER

    trace = gw.trace(request_id)
    assert trace["route"] == "chat" and trace["target"] == f"openai:fake-model@{fake_upstream.base_url}"
    assert trace["input_tokens"] == 2 and trace["output_tokens"] == 2
    assert trace["retries"] == 0 and trace["fallback_used"] is False and trace["upstream_ms"] > 0


def test_chat_stream_with_and_without_usage(client: OpenAI, gw: GatewayProcess) -> None:
    request_id = f"sdk-{uuid.uuid4().hex}"
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=USER, stream=True, extra_headers={"x-request-id": request_id}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    assert all(c.usage is None for c in chunks), "usage was not asked for"
    # The upstream was asked for usage anyway, so the trace has the token counts.
    trace = gw.trace(request_id)
    assert trace["output_tokens"] == 2 and trace["stream"] is True and trace["ttft_ms"] is not None

    chunks = list(
        client.chat.completions.create(model="chat", messages=USER, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2


def test_tools_pass_through(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "call get_weather for Paris"}]
    reply = client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "call get_weather for Paris"}  # type: ignore[union-attr]
    assert fake_upstream.requests()[-1]["body"]["tools"] == TOOLS

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    follow = client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert follow.choices[0].message.content == "tool said: sunny"

    streamed = list(
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "use get_weather"}],
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
    )
    calls = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"


def test_response_format_pass_through(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    reply = client.chat.completions.create(model="chat", messages=USER, response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content or "") == {"echo": "hello there"}
    assert fake_upstream.requests()[-1]["body"]["response_format"] == {"type": "json_object"}


def test_embeddings(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(model="vectors", input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(embedding_vector("first text", 16), abs=1e-6)
    assert fake_upstream.requests()[-1]["body"]["model"] == "fake-embed"
    floats = client.embeddings.create(model="vectors", input="first text", encoding_format="float", dimensions=4)
    assert len(floats.data[0].embedding) == 4


def test_completions(client: OpenAI) -> None:
    done = client.completions.create(model="chat", prompt="say this back", max_tokens=2)
    assert done.choices[0].text == "say this" and done.choices[0].finish_reason == "length"
    streamed = list(client.completions.create(model="chat", prompt="one two three", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "one two three"


def test_models_list(client: OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"chat", "vectors"}
    assert models["chat"].owned_by == "lmdeck"


def test_errors_are_openai_exceptions(client: OpenAI, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    keyless = OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as no_key:
        keyless.chat.completions.create(model="chat", messages=USER, extra_headers={"Authorization": openai.omit})
    assert no_key.value.code == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as bad_key:
        OpenAI(base_url=gw.base_url, api_key="sk-wrong", max_retries=0).models.list()
    assert bad_key.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="chat", messages=USER, temperature=5)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages=[])
    assert fake_upstream.count() == 0, "refused requests never reach the upstream"

    fake_upstream.configure(script=[400])
    with pytest.raises(openai.BadRequestError) as upstream:
        client.chat.completions.create(model="chat", messages=USER)
    assert "forced status 400" in upstream.value.message
