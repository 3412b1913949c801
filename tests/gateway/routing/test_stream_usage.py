"""StreamUsageFilter: the usage-only chunk reaches the client only when it asked for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from lmdeck.gateway.routing.usage import StreamUsageFilter, client_wants_usage
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.protocol import ChatCompletionChunk, ChatCompletionRequest, CompletionRequest
from lmdeck.protocol.traces import TraceRecord


def chunk(content: str | None, usage: bool = False) -> ChatCompletionChunk:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    data = {"id": "c", "created": 1, "model": "m", "choices": choices}
    if usage:
        data["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return ChatCompletionChunk.model_validate(data)


def context(**body: object) -> RequestContext:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, **body}
    )
    return RequestContext(kind="chat", body=request, request_id="r", trace=TraceRecord())


async def upstream_stream() -> AsyncIterator[BaseModel]:
    yield chunk("a")
    yield chunk(None, usage=True)


async def run(ctx: RequestContext) -> list[BaseModel]:
    async def terminal(_: RequestContext) -> Result:
        return Streamed(upstream_stream())

    result = await StreamUsageFilter()(ctx, terminal)
    assert isinstance(result, Streamed)
    return [c async for c in result.chunks]


async def test_usage_chunk_dropped_unless_asked() -> None:
    assert len(await run(context())) == 1
    assert len(await run(context(stream_options={"include_usage": False}))) == 1
    kept = await run(context(stream_options={"include_usage": True}))
    assert len(kept) == 2 and getattr(kept[-1], "usage", None) is not None


async def test_whole_responses_pass_untouched() -> None:
    whole = Completed(chunk("a"))

    async def terminal(_: RequestContext) -> Result:
        return whole

    assert await StreamUsageFilter()(context(), terminal) is whole


def test_completions_carry_stream_options_as_an_extra_field() -> None:
    asked = CompletionRequest.model_validate(
        {"model": "m", "prompt": "x", "stream": True, "stream_options": {"include_usage": True}}
    )
    assert client_wants_usage(asked)
    assert not client_wants_usage(CompletionRequest(model="m", prompt="x"))
