from __future__ import annotations

from typing import Any

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.replay import assemble, chunks_of, replay
from lmdeck.pipeline.context import Completed, Streamed
from lmdeck.protocol.wire import wire_dict

HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello "}),
    chunk({"content": "world"}),
    chunk({}, "stop"),
    {**HEAD, "choices": [], "usage": USAGE},
]


def test_a_stream_assembles_into_the_whole_response() -> None:
    whole = assemble("chat", STREAM)
    assert whole == {
        "id": "c1",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    assert assemble("chat", chunks_of("chat", whole)) == whole


def test_tool_call_deltas_merge_by_index() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"ci'}}
    more = {"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}
    whole = assemble(
        "chat", [chunk({"role": "assistant", "tool_calls": [call]}), chunk({"tool_calls": [more]}, "tool_calls")]
    )
    calls = whole["choices"][0]["message"]["tool_calls"]
    assert calls == [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Oslo"}'}}]
    assert assemble("chat", chunks_of("chat", whole))["choices"] == whole["choices"]


def test_text_completions_round_trip() -> None:
    whole = {
        "id": "x",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "12+7=19", "finish_reason": "stop"}],
        "usage": USAGE,
    }
    assert assemble("completions", chunks_of("completions", whole)) == whole


async def test_replay_serves_the_original_chunks_or_the_whole_response() -> None:
    entry = CacheEntry(
        key="k",
        scope="global",
        kind="chat",
        route="r",
        bundle_hash="b",
        response=assemble("chat", STREAM),
        chunks=STREAM,
        source_trace_id="t",
        created_at=0.0,
        expires_at=1.0,
    )
    streamed = replay(entry, "chat", stream=True, headers={"x-lmdeck-cache": "hit"})
    assert isinstance(streamed, Streamed) and streamed.headers == {"x-lmdeck-cache": "hit"}
    assert [wire_dict(c) async for c in streamed.chunks] == STREAM
    whole = replay(entry, "chat", stream=False, headers={})
    assert isinstance(whole, Completed) and wire_dict(whole.response) == entry.response
