"""The anthropic provider: translation both ways, streams, failures, against the FAKE Anthropic API."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.providers.anthropic import (
    AnthropicProvider,
    StreamTranslator,
    UpstreamOverloaded,
    to_chat_response,
    to_messages_request,
)
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError, continues_answers
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.fake_anthropic import FakeAnthropic

FakePair = tuple[FakeAnthropic, AnthropicProvider]

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


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)


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
        temperature=0.3,
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
        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        {"type": "text", "text": "and "},
        {"type": "text", "text": "tomorrow?"},
    ]
    assert body["tools"][0]["input_schema"]["required"] == ["city"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.3
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


def test_a_pdf_file_becomes_a_document() -> None:
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    body = to_messages_request(chat(messages=[{"role": "user", "content": [part]}]), "m", 10)
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        }
    ]


def test_a_refusal_names_the_parameter_in_openais_shape() -> None:
    with pytest.raises(APIError) as info:
        to_messages_request(chat(messages=[{"role": "user", "content": "x"}], n=2), "m", 10)
    assert info.value.status == 400
    assert info.value.body()["error"] == {
        "message": info.value.message,
        "type": "invalid_request_error",
        "param": "n",
        "code": "unsupported_parameter",
    }
    assert "n separate requests" in info.value.message


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


def test_an_in_stream_overloaded_error_is_the_529_error() -> None:
    with pytest.raises(UpstreamOverloaded) as info:
        StreamTranslator().feed("error", {"error": {"type": "overloaded_error", "message": "busy"}})
    assert info.value.status == 529 and info.value.retryable and "busy" in info.value.message
    with pytest.raises(UpstreamError) as other:
        StreamTranslator().feed("error", {"error": {"type": "api_error", "message": "oops"}})
    assert other.value.status == 500 and other.value.retryable
    with pytest.raises(UpstreamError) as bad:
        StreamTranslator().feed("error", {"error": {"type": "invalid_request_error", "message": "no"}})
    assert bad.value.status == 400 and not bad.value.retryable


def test_nothing_is_emitted_before_the_answer_has_content() -> None:
    t = StreamTranslator()
    assert t.feed("message_start", {"message": {"id": "m", "model": "c", "usage": {"input_tokens": 2}}}) == []
    assert t.feed("ping", {}) == []
    assert t.feed("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}) == []
    first = t.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}})
    assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}


async def test_chat_round_trip(fake: FakePair) -> None:
    app, provider = fake
    reply = await provider.chat(
        chat(messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hello there"}])
    )
    assert reply.choices[0].message["content"] == "hello there"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert app.requests[-1]["system"] == "sys" and app.requests[-1]["max_tokens"] == 4096
    assert app.headers[-1]["anthropic-version"] == "2023-06-01"


async def test_tool_round_trip(fake: FakePair) -> None:
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


async def test_an_agent_loop_that_tripped_the_old_translation(fake: FakePair) -> None:
    """A conversation the old translation sent as is, and Anthropic refused (400): a tool-calling turn
    with empty text, an empty assistant turn, a final assistant turn ending in a space and a
    newline stop sequence. It now goes through, and the newline still stops the answer (the fake
    answers a tool result with ``tool said: <result>``)."""
    app, provider = fake
    messages = [
        {"role": "system", "content": "answer in one line"},
        {"role": "user", "content": "call get_weather for Paris"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny\nand warm"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "Answer: "},
    ]
    for stream in (False, True):
        request = chat(messages=messages, tools=TOOLS, stop=["\n"], stream=stream)
        if stream:
            chunks = [c async for c in provider.stream_chat(request)]
            text = text_of(chunks)
        else:
            text = (await provider.chat(request)).choices[0].message["content"]
        assert text == "tool said: sunny"
        sent = app.requests[-1]
        assert "stop_sequences" not in sent and sent["messages"][-1]["content"] == [{"type": "text", "text": "Answer:"}]


async def test_a_whitespace_stop_ends_the_answer_where_it_occurs(fake: FakePair) -> None:
    _, provider = fake
    reply = await provider.chat(chat(messages=[{"role": "user", "content": "one two\n\nthree four"}], stop="\n\n"))
    assert reply.choices[0].message["content"] == "one two" and reply.choices[0].finish_reason == "stop"
    chunks = [
        c
        async for c in provider.stream_chat(
            chat(messages=[{"role": "user", "content": "one two\n\nthree four"}], stop=["\n\n"], stream=True)
        )
    ]
    assert text_of(chunks) == "one two"
    assert [c.choices[0]["finish_reason"] for c in chunks if c.choices and c.choices[0]["finish_reason"]] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4


async def test_response_format_answers_with_json(fake: FakePair) -> None:
    _, provider = fake
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    reply = await provider.chat(chat(messages=[{"role": "user", "content": "hi there"}], response_format=fmt))
    assert orjson.loads(reply.choices[0].message["content"]) == {"text": "hi there"}
    assert reply.choices[0].finish_reason == "stop" and "tool_calls" not in reply.choices[0].message
    request = chat(messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}, stream=True)
    chunks = [c async for c in provider.stream_chat(request)]
    assert orjson.loads(text_of(chunks)) == {"echo": "hi"}
    assert not any(c.choices and c.choices[0]["delta"].get("tool_calls") for c in chunks)


async def test_stream_translation(fake: FakePair) -> None:
    _, provider = fake
    chunks = [
        c
        async for c in provider.stream_chat(chat(messages=[{"role": "user", "content": "one two three"}], stream=True))
    ]
    assert text_of(chunks) == "one two three"
    assert chunks[0].choices[0]["delta"] == {"role": "assistant", "content": "one "}
    finishes = [c.choices[0]["finish_reason"] for c in chunks if c.choices and c.choices[0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3 and chunks[-1].usage.prompt_tokens == 3


async def test_streamed_tool_call(fake: FakePair) -> None:
    _, provider = fake
    request = chat(messages=[{"role": "user", "content": "call get_weather"}], tools=TOOLS, stream=True)
    chunks = [c async for c in provider.stream_chat(request)]
    deltas = [d for c in chunks if c.choices for d in c.choices[0]["delta"].get("tool_calls") or []]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"].startswith("toolu_")
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert orjson.loads(arguments) == {"city": "call get_weather"}
    assert {d["index"] for d in deltas} == {0}


async def test_errors(fake: FakePair) -> None:
    app, provider = fake
    app.script = [529, 400]
    with pytest.raises(UpstreamOverloaded) as info:
        await provider.chat(chat(messages=[{"role": "user", "content": "x"}]))
    assert info.value.status == 529 and info.value.retryable
    with pytest.raises(UpstreamError) as error:
        [c async for c in provider.stream_chat(chat(messages=[{"role": "user", "content": "x"}], stream=True))]
    assert error.value.status == 400 and not error.value.retryable and "forced status 400" in error.value.message
    with pytest.raises(UnsupportedOperation):
        await provider.completions(CompletionRequest(model="m", prompt="x"))
    with pytest.raises(UnsupportedOperation):
        await provider.embeddings(EmbeddingRequest(model="m", input="x"))


async def test_an_error_event_before_content_is_raised_before_any_chunk(fake: FakePair) -> None:
    """The same error type as an HTTP 529, and no chunk yielded first: the dispatcher can still retry."""
    app, provider = fake
    app.script = ["error_event:overloaded_error"]
    stream = provider.stream_chat(chat(messages=[{"role": "user", "content": "hello"}], stream=True))
    with pytest.raises(UpstreamOverloaded) as info:
        await anext(stream)
    assert info.value.status == 529 and info.value.retryable


async def test_an_error_event_after_content_comes_after_that_content(fake: FakePair) -> None:
    app, provider = fake
    app.script = ["error_event_after_text:overloaded_error"]
    received: list[Any] = []
    with pytest.raises(UpstreamOverloaded):
        async for chunk in provider.stream_chat(chat(messages=[{"role": "user", "content": "one two"}], stream=True)):
            received.append(chunk)
    assert text_of(received) == "one "


async def test_wrong_key_is_401(fake: FakePair) -> None:
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


async def test_a_stream_cut_before_message_stop_is_a_retryable_failure() -> None:
    events = b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{}}}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=events, headers={"content-type": "text/event-stream"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    target = TargetConfig(provider="anthropic", model="claude-x", base_url="http://fake")
    provider = AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))
    with pytest.raises(UpstreamError) as info:
        [c async for c in provider.stream_chat(chat(messages=[{"role": "user", "content": "hi"}], stream=True))]
    assert info.value.status == 502 and info.value.retryable


@pytest.mark.parametrize(("sent", "rest"), [("one two ", "three four"), ("one two", " three four")])
async def test_a_continuation_is_a_prefill_that_goes_on_seamlessly(
    fake: tuple[FakeAnthropic, AnthropicProvider], sent: str, rest: str
) -> None:
    app, provider = fake
    assert continues_answers(provider)
    messages = [{"role": "user", "content": "one two three four"}, {"role": "assistant", "content": sent}]
    chunks = [c async for c in provider.stream_continuation(chat(messages=messages, stream=True))]
    assert app.requests[-1]["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "one two"}]}
    assert "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices) == rest
    assert sent + rest == "one two three four"


def test_prefill_can_be_turned_off_per_target() -> None:
    target = TargetConfig(provider="anthropic", model="claude-x", options={"prefill": False})
    provider = AnthropicProvider(
        target, ProviderContext(settings=Settings(), transport=HttpxTransport(httpx.AsyncClient()))
    )
    assert not continues_answers(provider)
