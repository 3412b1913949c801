"""The anthropic provider: translation both ways, against the fake Messages endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.providers.anthropic import AnthropicProvider, StreamTranslator, to_chat_response, to_messages_request
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.fake_anthropic import FakeAnthropic

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "claude", **fields})


def test_request_translation() -> None:
    request = chat(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "no jokes"},
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": [{"type": "text", "text": "and "}, {"type": "text", "text": "tomorrow?"}]},
        ],
        tools=TOOLS,
        tool_choice="required",
        stop="END",
        temperature=1.5,
        user="u-1",
    )
    body = to_messages_request(request, "claude-x", 1000)
    assert body["model"] == "claude-x" and body["max_tokens"] == 1000
    assert body["system"] == "be brief\n\nno jokes"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    # The tool result and the next user text share one user turn.
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "text", "text": "and "},
        {"type": "text", "text": "tomorrow?"},
    ]
    assert body["tools"][0]["input_schema"]["required"] == ["city"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 1.0
    assert body["metadata"] == {"user_id": "u-1"}

    named = to_messages_request(
        chat(
            messages=[{"role": "user", "content": "x"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=7,
        ),
        "m",
        1000,
    )
    assert named["tool_choice"] == {"type": "tool", "name": "get_weather"} and named["max_tokens"] == 7


def test_images_become_image_blocks() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}},
    ]
    body = to_messages_request(chat(messages=[{"role": "user", "content": parts}]), "m", 10)
    sources = [b["source"] for b in body["messages"][0]["content"]]
    assert sources == [
        {"type": "base64", "media_type": "image/png", "data": "AAAA"},
        {"type": "url", "url": "https://example.test/cat.png"},
    ]


def test_n_above_one_is_refused() -> None:
    with pytest.raises(UpstreamError) as info:
        to_messages_request(chat(messages=[{"role": "user", "content": "x"}], n=2), "m", 10)
    assert info.value.status == 400


def test_response_translation() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "let me check"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    out = to_chat_response(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "let me check"
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1" and orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert out["usage"]["prompt_tokens"] == 14 and out["usage"]["completion_tokens"] == 5
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert to_chat_response({**message, "stop_reason": "max_tokens"})["choices"][0]["finish_reason"] == "length"


def test_stream_translator_error_event() -> None:
    with pytest.raises(UpstreamError) as info:
        StreamTranslator().feed("error", {"error": {"type": "overloaded_error", "message": "busy"}})
    assert info.value.status == 529 and "busy" in info.value.message


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAnthropic, AnthropicProvider]]:
    app = FakeAnthropic(api_key="sk-ant")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        target = TargetConfig(
            provider="anthropic", model="claude-x", base_url="http://fake", headers={"x-api-key": "sk-ant"}
        )
        yield app, AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))


async def test_chat_round_trip(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    app, provider = fake
    reply = await provider.chat(
        chat(messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hello there"}])
    )
    assert reply.choices[0].message["content"] == "hello there"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert app.requests[-1]["system"] == "sys" and app.requests[-1]["max_tokens"] == 4096
    assert app.headers[-1]["anthropic-version"] == "2023-06-01"


async def test_tool_round_trip(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    _, provider = fake
    first = await provider.chat(chat(messages=[{"role": "user", "content": "call get_weather"}], tools=TOOLS))
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    call = message["tool_calls"][0]
    follow = chat(
        messages=[
            {"role": "user", "content": "call get_weather"},
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
        tools=TOOLS,
    )
    second = await provider.chat(follow)
    assert second.choices[0].message["content"] == "tool said: sunny"


async def test_stream_translation(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    _, provider = fake
    chunks = [
        c
        async for c in provider.stream_chat(chat(messages=[{"role": "user", "content": "one two three"}], stream=True))
    ]
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[0].choices[0]["delta"]["role"] == "assistant"
    finishes = [c.choices[0]["finish_reason"] for c in chunks if c.choices and c.choices[0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3 and chunks[-1].usage.prompt_tokens == 3 + 2


async def test_streamed_tool_call(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    _, provider = fake
    request = chat(messages=[{"role": "user", "content": "call get_weather"}], tools=TOOLS, stream=True)
    chunks = [c async for c in provider.stream_chat(request)]
    deltas = [d for c in chunks if c.choices for d in c.choices[0]["delta"].get("tool_calls") or []]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"].startswith("toolu_")
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert orjson.loads(arguments) == {"city": "call get_weather"}
    assert {d["index"] for d in deltas} == {0}


async def test_errors(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    app, provider = fake
    app.force_status = [529, 400]
    with pytest.raises(UpstreamError) as info:
        await provider.chat(chat(messages=[{"role": "user", "content": "x"}]))
    assert info.value.status == 529 and info.value.retryable
    with pytest.raises(UpstreamError) as info:
        [c async for c in provider.stream_chat(chat(messages=[{"role": "user", "content": "x"}], stream=True))]
    assert info.value.status == 400 and not info.value.retryable and "forced status 400" in info.value.message
    with pytest.raises(UnsupportedOperation):
        await provider.completions(CompletionRequest(model="m", prompt="x"))
    with pytest.raises(UnsupportedOperation):
        await provider.embeddings(EmbeddingRequest(model="m", input="x"))


async def test_wrong_key_is_401(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    _, provider = fake
    provider.headers["x-api-key"] = "wrong"
    with pytest.raises(UpstreamError) as info:
        await provider.chat(chat(messages=[{"role": "user", "content": "x"}]))
    assert info.value.status == 401


@pytest.mark.parametrize("body", [b"<html>", b'["not", "an", "object"]'])
async def test_an_answer_that_is_not_a_json_object_is_502(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    target = TargetConfig(provider="anthropic", model="claude-x", base_url="http://fake")
    provider = AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))
    with pytest.raises(UpstreamError) as info:
        await provider.chat(chat(messages=[{"role": "user", "content": "hi"}]))
    assert info.value.status == 502 and "http://fake/v1/messages" in info.value.message
