"""The openai provider against the fake upstream (in-process) and against scripted transports."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.providers.base import (
    ProviderContext,
    UpstreamError,
    UpstreamTimeout,
    continues_answers,
    retry_after_from,
)
from lmdeck.providers.openai import OpenAIProvider
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing import FakeConfig
from lmdeck.testing.fake_upstream import FakeUpstream

USER = [{"role": "user", "content": "hello big world"}]


def make(http: httpx.AsyncClient, **target: object) -> OpenAIProvider:
    config = TargetConfig.model_validate({"model": "up-model", "base_url": "http://fake/v1", **target})
    return OpenAIProvider(config, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeUpstream, httpx.AsyncClient]]:
    app = FakeUpstream(FakeConfig(api_key="sk-up"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield app, http


def chat(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "route", "messages": USER, **extra})


async def test_chat_sends_the_target_model_and_key(
    fake: tuple[FakeUpstream, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = fake
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "sk-up")
    provider = make(http, api_key={"$env": "FAKE_UPSTREAM_KEY"})
    reply = await provider.chat(chat(temperature=0.5, response_format={"type": "json_object"}))
    assert reply.choices[0].message["content"] == '{"echo":"hello big world"}'
    sent = app.state.requests[-1]["body"]
    assert sent["model"] == "up-model" and sent["stream"] is False and sent["temperature"] == 0.5
    assert app.state.requests[-1]["headers"]["authorization"] == "Bearer sk-up"


async def test_stream_always_asks_for_usage(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    app, http = fake
    provider = make(http, headers={"authorization": "Bearer sk-up"})
    chunks = [c async for c in provider.stream_chat(chat(stream=True))]
    assert app.state.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0]["delta"].get("content", "") for c in chunks if c.choices) == "hello big world"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3

    opted_out = make(http, headers={"authorization": "Bearer sk-up"}, options={"stream_usage": False})
    chunks = [c async for c in opted_out.stream_chat(chat(stream=True))]
    assert "stream_options" not in app.state.requests[-1]["body"]
    assert all(c.usage is None for c in chunks)


async def test_completions_and_embeddings(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    _, http = fake
    provider = make(http, headers={"authorization": "Bearer sk-up"})
    done = await provider.completions(CompletionRequest(model="r", prompt="one two"))
    assert done.choices[0]["text"] == "one two"
    streamed = [c async for c in provider.stream_completions(CompletionRequest(model="r", prompt="a b", stream=True))]
    assert "".join(c.choices[0]["text"] for c in streamed if c.choices) == "a b"
    vectors = await provider.embeddings(EmbeddingRequest(model="r", input=["x", "y"]))
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 16


async def test_upstream_errors_keep_status_message_and_retry_after(
    fake: tuple[FakeUpstream, httpx.AsyncClient],
) -> None:
    app, http = fake
    provider = make(http, headers={"authorization": "Bearer sk-up"})
    app.state.update({"script": ["429:3", 400]})
    with pytest.raises(UpstreamError) as info:
        await provider.chat(chat())
    assert info.value.status == 429 and info.value.retryable and info.value.retry_after == 3
    assert "forced status 429" in info.value.message
    with pytest.raises(UpstreamError) as info:
        [c async for c in provider.stream_chat(chat(stream=True))]
    assert info.value.status == 400 and not info.value.retryable

    unauthorized = make(http)
    with pytest.raises(UpstreamError) as info:
        await unauthorized.chat(chat())
    assert info.value.status == 401


def scripted(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAIProvider:
    return make(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_transport_failures_map_to_retryable_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with pytest.raises(UpstreamError) as info:
        await scripted(refuse).chat(chat())
    assert info.value.status == 502 and info.value.retryable and "base_url" in info.value.message
    with pytest.raises(UpstreamTimeout) as timeout:
        await scripted(slow).chat(chat())
    assert timeout.value.status == 504 and timeout.value.kind == "timeout"
    with pytest.raises(UpstreamError) as info:
        [c async for c in scripted(reset).stream_chat(chat(stream=True))]
    assert info.value.status == 502 and info.value.retryable


async def test_bad_upstream_answers_are_502_not_crashes() -> None:
    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    def wrong_shape(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "x", "choices": "nope"})

    def stream_error(request: httpx.Request) -> httpx.Response:
        body = b'data: {"error": {"message": "model crashed"}}\n\n'
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    for handler in (not_json, wrong_shape):
        with pytest.raises(UpstreamError) as info:
            await scripted(handler).chat(chat())
        assert info.value.status == 502
    with pytest.raises(UpstreamError) as info:
        [c async for c in scripted(stream_error).stream_chat(chat(stream=True))]
    # The upstream failed while answering: another attempt may well succeed.
    assert "model crashed" in info.value.message and info.value.retryable


async def test_sse_comments_and_multiline_events_are_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunk = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}'
        body = f": keep-alive\n\ndata:{chunk}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    chunks = [c async for c in scripted(handler).stream_chat(chat(stream=True))]
    assert [c.choices[0]["delta"]["content"] for c in chunks] == ["hi"]


def test_retry_after_forms() -> None:
    assert retry_after_from(httpx.Headers({"retry-after": "2.5"})) == 2.5
    assert retry_after_from(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after_from(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_from(httpx.Headers({})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_from(httpx.Headers({"retry-after": later}))
    assert seconds is not None and 25 <= seconds <= 30


async def test_a_continuation_asks_the_server_to_continue_the_final_message(
    fake: tuple[FakeUpstream, httpx.AsyncClient],
) -> None:
    app, http = fake
    assert not continues_answers(make(http))
    provider = make(http, headers={"authorization": "Bearer sk-up"}, options={"continue_final_message": True})
    assert continues_answers(provider)
    messages = [*USER, {"role": "assistant", "content": "hello "}]
    chunks = [c async for c in provider.stream_continuation(chat(messages=messages, stream=True))]
    sent = app.state.requests[-1]["body"]
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "hello "}
    assert "".join(c.choices[0]["delta"].get("content", "") for c in chunks if c.choices) == "big world"
