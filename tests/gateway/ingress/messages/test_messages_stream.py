"""The chat stream → Anthropic Messages events translation, and its SSE encoding."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from lmdeck.gateway.ingress.messages.stream import Event, MessageEvents, sse
from lmdeck.protocol.chat import ChatCompletionChunk
from lmdeck.protocol.messages import MessagesRequest
from lmdeck.providers.base import UpstreamError

BODY = MessagesRequest.model_validate(
    {"model": "chat", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "stream": True}
)


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None
) -> ChatCompletionChunk:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return ChatCompletionChunk(id="c", created=int(time.time()), model="m", choices=choices, usage=usage)


async def run(chunks: list[BaseModel], fail: Exception | None = None) -> list[Event]:
    async def source() -> AsyncIterator[BaseModel]:
        for c in chunks:
            yield c
        if fail is not None:
            raise fail

    return [event async for event in MessageEvents("msg_1", BODY).events(source())]


def texts(events: list[Event]) -> list[str]:
    return [
        e["delta"]["text"] for name, e in events if name == "content_block_delta" and e["delta"]["type"] == "text_delta"
    ]


async def test_text_stream_has_anthropics_order_and_final_usage() -> None:
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    events = await run(
        [
            chunk({"role": "assistant", "content": "hel"}),
            chunk({"content": "lo"}),
            chunk(finish="stop"),
            chunk(usage=usage),
        ]
    )
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_1" and events[0][1]["message"]["model"] == "chat"
    assert texts(events) == ["hel", "lo"]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 3,
        "output_tokens": 2,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }


async def test_empty_deltas_are_dropped_and_an_empty_answer_still_ends() -> None:
    events = await run([chunk({"role": "assistant", "content": ""}), chunk({"content": ""}), chunk(finish="length")])
    assert [name for name, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_a_character_split_across_chunks_is_sent_whole_and_encodes_as_utf8() -> None:
    # A character outside the BMP sent as two JSON escapes, one per chunk, decodes to two surrogate halves.
    high, low = "\ud83d", "\ude00"
    events = await run([chunk({"content": "é" + high}), chunk({"content": low + "!"}), chunk(finish="stop")])
    assert texts(events) == ["é", "\U0001f600!"]
    wire = b"".join(sse(name, event) for name, event in events)
    wire.decode("utf-8")  # every byte sequence is valid UTF-8
    assert "\U0001f600".encode() in wire


async def test_parallel_tool_calls_interleaved_become_whole_blocks_in_order() -> None:
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "add", "arguments": '{"a":'}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "mul", "arguments": '{"b":'}}
    events = await run(
        [
            chunk({"content": "working"}),
            chunk({"tool_calls": [first]}),
            chunk({"tool_calls": [second]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": " 2}"}}]}),
            chunk(finish="tool_calls"),
        ]
    )
    starts = [e for name, e in events if name == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
    assert [(s["content_block"]["id"], s["content_block"]["name"]) for s in starts[1:]] == [
        ("call_a", "add"),
        ("call_b", "mul"),
    ]
    inputs = {
        e["index"]: e["delta"]["partial_json"]
        for name, e in events
        if name == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    }
    assert {i: orjson.loads(v) for i, v in inputs.items()} == {1: {"a": 1}, 2: {"b": 2}}
    # Blocks never interleave: each stops before the next starts.
    order = [
        (name, e["index"]) for name, e in events if name.startswith("content_block") and name != "content_block_delta"
    ]
    assert order == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_stop", 2),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("failure", "status_type"),
    [
        (UpstreamError(502, "reset", kind="broken"), "api_error"),
        (UpstreamError(429, "slow down", retry_after=2), "rate_limit_error"),
        (RuntimeError("boom"), "api_error"),
    ],
)
async def test_an_upstream_failure_mid_stream_ends_with_an_error_event(failure: Exception, status_type: str) -> None:
    events = await run([chunk({"content": "partial"})], fail=failure)
    assert texts(events) == ["partial"]
    name, event = events[-1]
    assert name == "error" and event["type"] == "error" and event["error"]["type"] == status_type
    assert isinstance(event["error"]["message"], str) and event["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]


async def test_a_stop_sequence_the_upstream_names_is_reported() -> None:
    body = BODY.model_copy(update={"stop_sequences": ["END"]})
    translator = MessageEvents("msg_2", body)

    async def source() -> AsyncIterator[BaseModel]:
        yield chunk({"content": "a"})
        yield ChatCompletionChunk(
            id="c",
            created=0,
            model="m",
            choices=[{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}],
        )

    events = [e async for e in translator.events(source())]
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
